"""Parameters out of range (red-team issue item 5): every documented range is checked before any work, one line,
exit 2; the library refuses the same values with a ValueError.

Ranges: ``--fps`` 1 to 240; ``--batch-size`` 1 to 4096; ``--frames-per-pass`` 1 to what the chunk network was
trained for, and frames per pass + context frames at most that; a pack's ``buffer_len`` must be what its network
takes (probed once on silence at load); samples beyond +-1000 are refused.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from hostile import copy_pack, run_limited
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecast.audio import AudioError
from facecast.cli import main
from facecast.constants import MAX_BATCH_SIZE, MAX_FPS, MIN_FPS

CASES: dict[str, int] = {}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(4800)).astype(np.float32), 16000)
    return path


@pytest.mark.parametrize(
    "option",
    [["--fps", "0.001"], ["--fps", "0"], ["--fps", "nan"], ["--fps", "1e9"], ["--context-frames", "1000000"],
     ["--frames-per-pass", "100000"], ["--batch-size", "0"], ["--batch-size", "100000000"],
     ["--frames-per-pass", "1.5"]],
)  # fmt: skip
def test_cli_ranges_refused_before_any_work(small_pack, wav, tmp_path, capsys, monkeypatch, option):
    """Refused at parse time: the model is never loaded, nothing is written, one line."""
    import facecast.model

    monkeypatch.setattr(facecast.model, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, err = _run(["animate", str(wav), "-m", str(small_pack), "-o", str(tmp_path / "o"), *option], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and option[0] in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_tiny_fps_no_longer_exhausts_memory(small_pack, wav, tmp_path):
    """Through the library (no argparse): fps 0.001 is refused in a child capped at 1.5 GiB (was 10.9 GB)."""
    code = (f"from facecast import load_model\nm = load_model({str(small_pack)!r})\ntry:\n"
            f"    m.animate({str(wav)!r}, fps=0.001)\nexcept ValueError as e:\n    print('REFUSED', e)")  # fmt: skip
    done = run_limited(code, memory=3 << 29, timeout=300)
    assert "REFUSED fps must be from 1 to 240" in done.stdout, done.stderr[-2000:]


def test_cli_and_library_ranges_agree():
    from facecast.cli.options import FPS, bounded
    from facecast.timing import fps_fraction

    assert FPS("1") == MIN_FPS and FPS("240") == MAX_FPS
    fps_fraction(MIN_FPS), fps_fraction(MAX_FPS)
    for bad in (MIN_FPS / 2, MAX_FPS + 1):
        with pytest.raises(ValueError, match="fps must be from 1 to 240"):
            fps_fraction(bad)
    with pytest.raises(Exception, match="must be from 1 to 4096"):
        bounded(int, 1, MAX_BATCH_SIZE)(str(MAX_BATCH_SIZE + 1))


def test_frames_per_pass_within_training(chunk_pack):
    """The chunk network of ``chunk_pack`` was trained for up to 4 frames per pass: 5, or 2 + 3 context, are
    refused naming the pack; 2 + 2 runs."""
    from facecast import load_model

    with pytest.raises(ValueError, match=r"frames_per_pass must be from 1 to 4 for this model") as info:
        load_model(chunk_pack, frames_per_pass=5)
    assert str(chunk_pack) in str(info.value)
    with pytest.raises(ValueError, match=r"frames_per_pass \+ context_frames must be at most 4.*2 \+ 3"):
        load_model(chunk_pack, frames_per_pass=2, context_frames=3)
    model = load_model(chunk_pack, frames_per_pass=2, context_frames=2)
    assert model.engine.context_frames == 2
    with pytest.raises(ValueError, match="frames_per_pass must be from 1 to 4"):
        model.engine.with_options(frames_per_pass=8)
    with pytest.raises(ValueError, match="batch_size must be from 1 to 4096"):
        load_model(chunk_pack, batch_size=10**8)


def test_buffer_len_the_network_does_not_take_is_refused_at_load(small_pack, tmp_path):
    """A ``buffer_len`` inside the format's range but not what ``network.onnx`` takes: refused by ``load_model``
    naming the pack (was: an ONNX Runtime traceback in the middle of ``animate``)."""
    from facecast import load_model

    pack = copy_pack(small_pack, tmp_path / "pack")
    info_path = pack / "network_info.json"
    info = json.loads(info_path.read_text())
    info["audio_params"]["buffer_len"] = info["audio_params"]["buffer_len"] - 320
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="the network does not run on the inputs network_info.json describes") as e:
        load_model(pack)
    assert str(pack) in str(e.value) and len(str(e.value)) < 600


@pytest.mark.parametrize("value", [0, 10**12])
def test_buffer_len_out_of_range_refused_by_info(small_pack, tmp_path, capsys, value):
    pack = copy_pack(small_pack, tmp_path / "pack")
    info_path = pack / "network_info.json"
    info = json.loads(info_path.read_text())
    info["audio_params"]["buffer_len"] = value
    info_path.write_text(json.dumps(info))
    code, err = _run(["info", str(pack)], capsys)
    assert code == 2 and "buffer_len" in err and "network_info.json" in err


def test_absurd_samples_refused_everywhere(small_model, tmp_path):
    """Samples of 1e30 (finite in float32) are refused naming the input, by the file reader, ``animate`` on an
    array and a stream (was: "target contains non-finite values" from the solver)."""
    loud = np.full(8000, 1e30, np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, loud.astype(np.float64), 16000, subtype="DOUBLE")
    with pytest.raises(AudioError, match=r"'.*loud.wav' holds samples up to 1e\+30"):
        small_model.animate(path)
    with pytest.raises(AudioError, match=r"audio holds samples up to 1e\+30"):
        small_model.animate(loud)
    with pytest.raises(AudioError, match=r"audio chunk holds samples up to 1e\+30"):
        small_model.animation_stream().push(loud)
    loudish = np.full(8000, 3.0, np.float32)  # hot but plausible float audio still animates
    assert np.isfinite(small_model.animate(loudish).skin_weights).all()


NUMERIC_OPTIONS = ["--fps", "--batch-size", "--frames-per-pass", "--context-frames"]
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["0", "1", "-1", "240", "241", "4096", "4097", "1e-300", "0x10", "", " 2", "1_000", "٣"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.sampled_from(NUMERIC_OPTIONS), VALUES), min_size=1, max_size=3))
def test_fuzz_parameter_ranges(small_pack, tmp_path_factory, capsys, pairs):
    """Random numeric options: exit 0 with outputs, or exit 2 with one line and nothing written; never a
    traceback."""
    CASES["parameter_ranges"] = CASES.get("parameter_ranges", 0) + 1
    out = tmp_path_factory.mktemp("ranges")
    wav = out / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    argv = ["animate", str(wav), "-m", str(small_pack), "-o", str(out / "o"), "--formats", "json", "-q"]
    for name, value in pairs:
        argv += [name, value]
    code, err = _run(argv, capsys)
    assert "Traceback" not in err
    if code == 0:
        assert (out / "o" / "a.json").exists()
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert not list(out.glob("o/*"))
    shutil.rmtree(out, ignore_errors=True)


def test_report_parameter_fuzz_cases():
    print("fuzz cases:", json.dumps(CASES))
    assert CASES.get("parameter_ranges", 0) > 0
