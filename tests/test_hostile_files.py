"""Regression tests for hostile files (red-team issue items 2, 3, 4 and 13).

2: FIFOs, devices, sockets and directories where a file is read: refused by what they are, fast.
3: symbolic links out of a pack, fallbacks and fixed names included: refused.
4: ``.npz`` bombs: refused from the ``.npy`` headers, in bounded memory.
13: values a pack may not hold (NaN, out of range, wrong dtype, endless lists): refused at ``load_pack`` time,
    naming file and field, in a message of bounded length; the CLI says so in one line and exits 2.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hostile import (
    PACK_FILES,
    GiB,
    copy_pack,
    fails_fast,
    load_pack_in_child,
    make_char_device,
    make_fifo,
    make_socket,
    npy_header,
    npz_with,
    peak_rss_bytes,
    readers_on,
    replace_with_link,
    run_limited,
    zeros_member,
)

from facecast.fileio import FileFormatError, read_npz
from facecast.pack import PackError, load_pack

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, devices and symlinks as on POSIX")


@pytest.fixture()
def pack(small_pack, tmp_path):
    return copy_pack(small_pack, tmp_path / "pack")


def _edit_json(path: Path, fn) -> None:
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _edit_npz(path: Path, fn) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    fn(arrays)
    np.savez(path, **arrays)


def _refused(pack: Path, *needles: str, fifos: tuple[Path, ...] = ()) -> str:
    with pytest.raises(PackError) as err:
        fails_fast(lambda: load_pack(pack), fifos=fifos)
    text = str(err.value)
    for needle in needles:
        assert needle in text, text
    return text


def _cli(capsys, argv: list[str], fifos: tuple[Path, ...] = ()) -> str:
    """Run the CLI (failing the test if it hangs); it must exit 2 with exactly one line on stderr."""
    from facecast.cli import main

    code = fails_fast(lambda: main(argv), fifos=fifos)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_the_pack_file_list_is_complete(small_pack):
    assert tuple(sorted(p.name for p in small_pack.iterdir())) == PACK_FILES


# ------------------------------------------------------------------------------------------------------------
# 2: devices, FIFOs, sockets


@pytest.mark.parametrize("name", ["model.json", "network_info.json", "trt_info.json", "model_data.npz", "network.onnx"])
def test_fifo_in_a_pack_is_refused_fast(pack, name):
    fifo = make_fifo(pack / name)
    _refused(pack, name, "FIFO", fifos=(fifo,))


def test_device_in_a_pack_is_refused(pack):
    make_char_device(pack / "model_config.json")  # reads like /dev/zero: loaded in a child with capped memory
    said, _, _ = load_pack_in_child(pack)
    assert said.startswith("REFUSED") and "model_config.json" in said and "character device" in said, said


@pytest.mark.parametrize("name", ["model.json", "trt_info.json"])
def test_link_to_dev_zero_is_refused_in_bounded_memory(pack, name):
    """Today's code read /dev/zero until memory ran out: run where memory is capped."""
    replace_with_link(pack / name, "/dev/zero")
    said, _, _ = load_pack_in_child(pack)
    assert said.startswith("REFUSED") and name in said and "outside the pack" in said, said


@pytest.mark.parametrize("kind", ["fifo", "device", "socket", "directory", "link_to_device"])
def test_readers_name_what_they_refuse(tmp_path, kind):
    """Every reader refuses, fast and by name, what is not a regular file (links followed: a user's own paths)."""
    path = tmp_path / "thing.json"
    if kind == "fifo":
        make_fifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "socket":
        make_socket(path)
    elif kind == "link_to_device":
        replace_with_link(path, "/dev/zero")
    else:
        path.mkdir()
    words = {"fifo": "FIFO", "device": "character device", "socket": "socket", "directory": "directory",
             "link_to_device": "character device"}[kind]  # fmt: skip
    said = readers_on(path)
    assert set(said) == {"read_json", "read_npz", "load_audio", "stream_audio"}
    for reader, text in said.items():
        error = "AudioError" if "audio" in reader else "FileFormatError"
        assert text.startswith(error) and words in text and "empty" not in text, (reader, text)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc")
def test_sizes_are_counted_not_taken_from_stat():
    """/proc files are regular files that stat as 0 bytes: the cap must still hold."""
    from facecast.fileio import read_bytes

    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(FileFormatError, match="larger than 16 bytes"):
        read_bytes("/proc/self/status", 16)
    assert b"Name" in read_bytes("/proc/self/status", 1 << 20)


def test_cli_info_on_a_fifo_model_json(pack, capsys):
    fifo = make_fifo(pack / "model.json")
    line = _cli(capsys, ["info", str(pack)], fifos=(fifo,))
    assert "model.json" in line and "FIFO" in line


def test_cli_plot_on_a_fifo(tmp_path, capsys):
    fifo = make_fifo(tmp_path / "anim.json")
    line = _cli(capsys, ["plot", str(fifo), "-o", str(tmp_path / "p.png")], fifos=(fifo,))
    assert "anim.json" in line and "FIFO" in line


def test_cli_plot_on_a_link_to_dev_zero(tmp_path):
    link = replace_with_link(tmp_path / "anim.json", "/dev/zero")
    proc = run_limited(
        "import sys\nfrom facecast.cli import main\n"
        f"sys.exit(main(['plot', {str(link)!r}, '-o', {str(tmp_path / 'p.png')!r}]))\n",
        timeout=180,
        memory=6 * GiB,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "character device" in lines[0], proc.stderr[-2000:]


def test_cli_animate_with_fifo_audio(small_pack, tmp_path, capsys):
    fifo = make_fifo(tmp_path / "speech.wav")
    line = _cli(capsys, ["animate", str(fifo), "-m", str(small_pack), "-o", str(tmp_path / "o")], fifos=(fifo,))
    assert "speech.wav" in line and "FIFO" in line and "empty" not in line


# ------------------------------------------------------------------------------------------------------------
# 3: symbolic links out of the pack


def test_network_onnx_linked_outside_under_the_default_layout(pack, tmp_path):
    """model.json names network.trt (NVIDIA's layout), so network.onnx is the fallback: it is checked too."""
    assert json.loads((pack / "model.json").read_text())["networkPath"] == "network.trt"
    outside = tmp_path / "elsewhere.onnx"
    os.replace(pack / "network.onnx", outside)
    replace_with_link(pack / "network.onnx", outside)
    _refused(pack, "network.onnx", "outside the pack")


@pytest.mark.parametrize("target", ["/etc/passwd", "outside.json"])
def test_trt_info_linked_outside_is_refused(pack, tmp_path, target):
    if target == "outside.json":
        target = tmp_path / target
        target.write_text((pack / "trt_info.json").read_text())  # valid, but not the pack's
    replace_with_link(pack / "trt_info.json", target)
    _refused(pack, "trt_info.json", "outside the pack")


def test_model_json_linked_outside_is_refused(pack, tmp_path):
    outside = tmp_path / "model.json"
    os.replace(pack / "model.json", outside)
    replace_with_link(pack / "model.json", outside)
    _refused(pack, "model.json", "outside the pack")


def test_links_inside_the_pack_still_load(pack):
    (pack / "real").mkdir()
    for name in ("network.onnx", "trt_info.json", "model_data.npz"):
        os.replace(pack / name, pack / "real" / name)
        (pack / name).symlink_to(Path("real") / name)
    loaded = load_pack(pack)
    assert loaded.network_path == (pack / "real" / "network.onnx").resolve()
    assert loaded.trt_info is not None


# ------------------------------------------------------------------------------------------------------------
# 4: npz bombs


def test_npz_bomb_is_refused_from_its_headers_in_bounded_memory(pack):
    """A 3.2 MB model_data.npz with an extra member of 3 GiB of deflated zeros (the red team's file)."""
    npz_with(pack / "model_data.npz", zeros_member("extra", (3 * GiB // 4,)))
    assert (pack / "model_data.npz").stat().st_size < 5_000_000
    said, grown_kib, seconds = load_pack_in_child(pack)
    assert said.startswith("REFUSED") and "model_data.npz" in said and "'extra'" in said, said
    assert grown_kib < 100 * 1024 and seconds < 10, (grown_kib, seconds)


def test_npz_member_declaring_more_than_the_format_allows(pack):
    """A named member inflating to 1 GiB, and a lying header: refused before anything is decompressed."""
    lie = npy_header((10**6, 10**6)) + bytes(16)
    npz_with(pack / "implicit_emo_db.npz", zeros_member("emo_db", (GiB // 64, 16)),
             ("lie.npy", lie, zlib.crc32(lie), len(lie), 0), drop=("emo_db",))  # fmt: skip
    before = peak_rss_bytes()
    text = _refused(pack, "implicit_emo_db.npz", "emo_db has shape (16777216, 16)", "'lie' declares shape")
    assert peak_rss_bytes() - before < 200 * 2**20, text


def test_read_npz_total_cap(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, a=np.zeros(1000), b=np.zeros(1000))
    with pytest.raises(FileFormatError, match="more than the 10000 allowed"):
        read_npz(path, max_bytes=10_000)
    assert set(read_npz(path)) == {"a", "b"}


# ------------------------------------------------------------------------------------------------------------
# 13: values, checked by load_pack (and so by `facecast info`)


def _nan_multiplier(pack: Path) -> None:
    text = (pack / "bs_skin_config.json").read_text()
    doc = json.loads(text)
    n = len(doc["blendshape_params"]["bsWeightMultipliers"])
    doc["blendshape_params"]["bsWeightMultipliers"] = [float("nan")] * n
    (pack / "bs_skin_config.json").write_text(json.dumps(doc))  # writes the literal NaN, as json allows


def test_nan_multipliers_fail_info_and_animate(pack, tmp_path, capsys):
    _nan_multiplier(pack)
    line = _cli(capsys, ["info", str(pack)])
    assert "bs_skin_config.json" in line and "bsWeightMultipliers" in line and "finite" in line
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(3200, np.float32), 16000)
    line = _cli(capsys, ["animate", str(wav), "-m", str(pack), "-o", str(tmp_path / "o")])
    assert "bsWeightMultipliers" in line


def test_nan_emotion_database(pack):
    _edit_npz(pack / "implicit_emo_db.npz", lambda a: a["emo_db"].__setitem__((3, 2), np.nan))
    _refused(pack, "implicit_emo_db.npz", "emo_db holds NaN")


def test_nan_blendshape_neutral(pack):
    _edit_npz(pack / "bs_skin.npz", lambda a: a["neutral"].__setitem__((0, 0), np.nan))
    _refused(pack, "bs_skin.npz", "neutral holds NaN")


def test_string_dtype_shape_matrix(pack, capsys):
    def strings(arrays):
        arrays["shapes_matrix_skin"] = arrays["shapes_matrix_skin"].astype("U12")

    _edit_npz(pack / "model_data.npz", strings)
    _refused(pack, "model_data.npz", "shapes_matrix_skin has dtype <U12, expected floating point numbers")
    line = _cli(capsys, ["info", str(pack)])
    assert "shapes_matrix_skin" in line


def test_string_dtype_pose(pack):
    _edit_npz(pack / "bs_tongue.npz", lambda a: a.update(tongueUp=a["tongueUp"].astype("U8")))
    _refused(pack, "bs_tongue.npz", "'tongueUp'", "floating point")


def test_ten_thousand_explicit_emotions(pack, capsys):
    def many(info):
        info["params"]["explicit_emotions"] = [f"e{i}" for i in range(10_000)]
        info["params"]["default_emotion"] = [0.0] * 10_000

    _edit_json(pack / "network_info.json", many)
    line = _cli(capsys, ["info", str(pack)])
    assert "network_info.json" in line and "explicit_emotions" in line and len(line) < 600


def test_bad_default_emotion_and_bs_strength(pack):
    _edit_json(pack / "network_info.json", lambda i: i["params"]["default_emotion"].__setitem__(0, 7))
    _edit_json(pack / "bs_tongue_config.json", lambda c: c["blendshape_params"].update(strengthL2regularization="x"))
    text = _refused(pack, "default_emotion", "strengthL2regularization")
    assert "network_info.json" in text and "bs_tongue_config.json" in text


def test_two_hundred_thousand_pose_names_give_a_short_message(pack, capsys):
    names = np.array([b"neutral"] + [f"p{i}".encode() for i in range(200_000)])
    _edit_npz(pack / "bs_skin.npz", lambda a: a.update(poseNames=names))
    line = _cli(capsys, ["info", str(pack)])
    assert "bs_skin.npz" in line and "poseNames" in line and len(line) < 600


def test_problem_lists_are_capped():
    err = FileFormatError([f"x: problem {i} " + "y" * 5000 for i in range(1000)])
    lines = str(err).splitlines()
    assert len(lines) == 21 and lines[-1] == "... and 980 more problems"
    assert all(len(line) <= 400 for line in lines) and len(err.problems) == 1000
    assert len(str(FileFormatError(["a\nb\nc"])).splitlines()) == 1
