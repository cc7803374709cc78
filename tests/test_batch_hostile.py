"""facecast batch on hostile entries (issue 20 items 10, 11): one bad entry never stops the others, every bad row
is reported with its manifest line, and no manifest can make the batch write outside ``-o``."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecast.batch import local
from facecast.batch.local import find_jobs, read_jobs, run_batch
from facecast.cli import main
from facecast.fileio import FileFormatError

COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _clip(path: Path, seconds: float = 0.4, seed: int = 0, value: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(16000 * seconds)
    x = np.full(n, value, np.float32) if value is not None else np.random.default_rng(seed).standard_normal(n) * 0.2
    sf.write(path, x.astype(np.float32), 16000, subtype="FLOAT" if path.suffix == ".wav" else None)
    return path


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _batch(source, out, pack, *extra) -> int:
    return main(["batch", str(source), "-o", str(out), "-m", str(pack), *extra])


# --- item 10: one bad entry --------------------------------------------------------------------------------------


def test_clip_of_huge_samples_fails_alone_and_the_rest_are_written(small_pack, small_model, tmp_path, capsys):
    """A clip of 1e30 samples among good ones: exit 1, the others written (and right), the report names it."""
    src = tmp_path / "in"
    good = [_clip(src / f"a{i}.wav", seed=i) for i in range(3)]
    _clip(src / "a1_huge.wav", value=1e30)  # sorts between the good ones: the same inference group
    out = tmp_path / "out"
    assert _batch(src, out, small_pack, "--formats", "npz,json") == 1
    captured = capsys.readouterr()
    assert "a1_huge.wav" in captured.err and "Traceback" not in captured.err
    assert "3 animated" in captured.out and "1 failed" in captured.out
    for path in good:
        assert (out / f"{path.stem}.json").is_file()
        with np.load(out / f"{path.stem}.npz") as data:
            assert np.abs(data["skin_weights"] - small_model.animate(path).skin_weights).max() < 1e-5
    assert not (out / "a1_huge.json").exists() and not (out / "a1_huge.npz").exists()
    report = json.loads((out / "batch_report.json").read_text())
    assert report["done"] == 3 and [f["audio"] for f in report["failed"]] == [str(src / "a1_huge.wav")]
    assert report["failed"][0]["error"]


def test_failed_group_inference_falls_back_clip_by_clip(small_model, tmp_path, monkeypatch):
    """When a group's shared inference raises, each clip is inferred alone: only the bad one fails."""
    src = tmp_path / "in"
    clips = [_clip(src / f"c{i}.wav", seed=10 + i) for i in range(4)]
    poison = sf.read(clips[1], dtype="float32")[0]
    real = local._infer_group

    def fussy(model, group):
        if any(len(a) == len(poison) and np.array_equal(a[:50], poison[:50]) for _, a in group):
            raise RuntimeError("the network refused this clip")
        return real(model, group)

    monkeypatch.setattr(local, "_infer_group", fussy)
    report = run_batch(small_model, find_jobs(src, tmp_path / "out"), ["npz"], group_clips=4, progress=False)
    assert report.done == 3 and [f.audio for f in report.failed] == [str(clips[1])]
    assert "refused this clip" in report.failed[0].error
    for path in (clips[0], clips[2], clips[3]):
        with np.load(tmp_path / "out" / f"{path.stem}.npz") as data:
            assert np.abs(data["skin_weights"] - small_model.animate(path).skin_weights).max() < 1e-5


def test_manifest_row_with_unknown_emotion_is_reported_with_its_line(small_pack, tmp_path, capsys):
    _clip(tmp_path / "a.wav", seed=1)
    _clip(tmp_path / "b.wav", seed=2)
    manifest = tmp_path / "list.csv"
    manifest.write_text("audio,output,emotion\na.wav,first,joy=1\nb.wav,second,happy=1\nb.wav,third,\n")
    out = tmp_path / "out"
    assert _batch(manifest, out, small_pack) == 1
    err = capsys.readouterr().err
    assert f"{manifest} line 3" in err and "happy" in err and "Traceback" not in err
    assert (out / "first.json").is_file() and (out / "third.json").is_file() and not (out / "second.json").exists()
    failed = json.loads((out / "batch_report.json").read_text())["failed"]
    assert [(f["manifest"], f["line"]) for f in failed] == [(str(manifest), 3)]


def test_every_problem_of_a_manifest_is_listed_before_any_work(tmp_path, capsys, monkeypatch):
    """All rows bad: each is named with its line on stderr and in the report; the model is never loaded."""
    _clip(tmp_path / "a.wav")
    manifest = tmp_path / "list.csv"
    rows = ["audio,output,emotion", "a.wav,x,joy=2", "missing.wav,,", "a.wav,../up,", "a.wav,/abs,", ",y,",
            "a.wav,z,joy=nan", "a.wav,w,joy=0.5@-1", "a.wav,v,sadness=abc"]  # fmt: skip
    manifest.write_text("\n".join(rows) + "\n")
    import facecast.model

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(facecast.model, "load_model", no_model)
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    for line in range(2, len(rows) + 1):
        assert f"{manifest} line {line}" in err
    failed = json.loads((tmp_path / "out" / "batch_report.json").read_text())["failed"]
    assert [f["line"] for f in failed] == list(range(2, len(rows) + 1))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"output,emotion\nx,joy=1\n", "needs an 'audio' column"),
        (b"audio\n\xff\xfe\xfa.wav\n", "UTF-8"),
        (b"audio\n" + b"x" * 200_000 + b"\n", "not valid CSV"),
    ],
)
def test_broken_manifest_is_one_line_naming_it(tmp_path, capsys, content, needle):
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(content)
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and str(manifest) in err and len(err.splitlines()) == 1


def test_fifo_as_manifest_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "list.txt"
    os.mkfifo(fifo)
    assert main(["batch", str(fifo), "-o", str(tmp_path / "out")]) == 2
    assert "FIFO" in capsys.readouterr().err


def test_full_disk_mid_batch_stops_with_one_line_and_resumes(small_pack, tmp_path, capsys, monkeypatch):
    """ENOSPC while writing the second clip: exit 2, one line naming the file, the first kept; a rerun resumes."""
    src = tmp_path / "in"
    for i in range(3):
        _clip(src / f"f{i}.wav", seed=20 + i)
    real = local.write

    def full_on_f1(anim, stem, formats):
        if Path(stem).name == "f1":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(anim, stem, formats)

    monkeypatch.setattr(local, "write", full_on_f1)
    out = tmp_path / "out"
    assert _batch(src, out, small_pack) == 2
    err = capsys.readouterr().err
    assert "f1.json" in err and "no space left" in err and "resume" in err and "Traceback" not in err
    assert (out / "f0.json").is_file() and not (out / "f1.json").exists()
    assert json.loads((out / "batch_report.json").read_text())["stopped"]
    monkeypatch.setattr(local, "write", real)
    assert _batch(src, out, small_pack) == 0
    assert "2 animated, 1 already done" in capsys.readouterr().out


def test_unwritable_entry_fails_alone(small_pack, tmp_path, capsys):
    """An output whose folder is a file (ENOTDIR) fails that entry only."""
    _clip(tmp_path / "a.wav")
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocker").write_text("a file where a folder is needed")
    manifest = tmp_path / "list.csv"
    manifest.write_text("audio,output\na.wav,blocker/x\na.wav,fine\n")
    assert _batch(manifest, out, small_pack) == 1
    assert "line 2" in capsys.readouterr().err
    assert (out / "fine.json").is_file() and (out / "blocker").is_file()


# --- item 11: outputs stay under -o -------------------------------------------------------------------------------


def test_manifest_cannot_write_outside_the_output_folder(small_pack, tmp_path, capsys):
    """``output`` of ``../x``, an absolute path, ``.``, and ``.txt`` lines with absolute or ``..`` inputs."""
    work = tmp_path / "work"
    clip = _clip(work / "clips" / "a.wav")
    _clip(tmp_path / "elsewhere" / "b.wav", seed=3)
    csv_manifest = work / "list.csv"
    csv_manifest.write_text(
        f"audio,output\nclips/a.wav,../escaped\nclips/a.wav,{tmp_path / 'abs'}\nclips/a.wav,.\n"
        "clips/a.wav,sub/../../escaped2\nclips/a.wav,kept\n"
    )
    txt_manifest = work / "list.txt"
    txt_manifest.write_text(f"{clip}\n../elsewhere/b.wav\nclips/a.wav\n")
    before = _files(tmp_path)
    out = work / "out"
    assert _batch(csv_manifest, out, small_pack) == 1
    assert _batch(txt_manifest, out / "t", small_pack) == 0
    new = _files(tmp_path) - before
    assert new and all(p.is_relative_to(out) for p in new), sorted(map(str, new))
    assert (out / "kept.json").is_file()
    assert (out / "t" / "a.json").is_file()  # an absolute input: its name, at the top of -o
    assert (out / "t" / "b.json").is_file()  # an input outside the manifest's folder: the same
    assert (out / "t" / "clips" / "a.json").is_file()  # inside: mirrored
    err = capsys.readouterr().err
    for line in (2, 3, 4, 5):
        assert f"{csv_manifest} line {line} " in err


def test_link_in_the_output_folder_does_not_carry_outputs_out(small_pack, tmp_path):
    _clip(tmp_path / "a.wav")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside)
    manifest = tmp_path / "list.csv"
    manifest.write_text("audio,output\na.wav,link/x\na.wav,y\n")
    assert _batch(manifest, out, small_pack) == 1
    assert not list(outside.iterdir()) and (out / "y.json").is_file()
    failed = json.loads((out / "batch_report.json").read_text())["failed"]
    assert failed[0]["line"] == 2 and "outside the output folder" in failed[0]["error"]


def test_same_stem_in_a_folder_is_refused_not_overwritten(tmp_path):
    _clip(tmp_path / "in" / "a.wav")
    _clip(tmp_path / "in" / "a.flac")
    _clip(tmp_path / "in" / "batch_report.wav")
    listing = read_jobs(tmp_path / "in", tmp_path / "out")
    assert [j.audio.name for j in listing.jobs] == ["a.flac"]
    assert sorted(Path(f.audio).name for f in listing.refused) == ["a.wav", "batch_report.wav"]
    with pytest.raises(FileFormatError, match="a.wav"):
        find_jobs(tmp_path / "in", tmp_path / "out")


# --- fuzzing: manifest rows ---------------------------------------------------------------------------------------

_AUDIO = st.sampled_from(["a.wav", "sub/b.wav", "./a.wav", "sub/../a.wav", "../outside/c.wav", "ABS", "missing.wav",
                          "", " ", "ünï cødé.wav", "sub", "..", ".", "a.wav\x00x", "a.txt", "LINK"])  # fmt: skip
_OUTPUT = st.one_of(
    st.sampled_from(["", "../x", "../../x", "/tmp/x", "ABS", ".", "..", "a/../../x", "a/./b", "sub/", "batch_report",
                     "ünï/cødé", "x" * 300, "a\\..\\b", "~/x", "link/x", "C:/x", "//x", "a\x00b"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),
)  # fmt: skip
_SPEC = st.one_of(
    st.sampled_from(["joy=1", "anger=0.5@1", "happy=1", "joy=2", "joy=-1", "joy=nan", "joy=inf", "joy=1e400",
                     "joy=abc", "joy=1@-1", "joy=1@nan", "=1", "joy", "joy=0.5;joy=0.7", "JOY=1", "joy=1;anger=1"]),
    st.text(max_size=12),
)  # fmt: skip
_ROW = st.tuples(_AUDIO, _OUTPUT, _SPEC)


def _fuzz_tree(root: Path) -> tuple[Path, Path]:
    """A manifest folder with clips, one clip outside it, a link out of the output folder; (manifest dir, out)."""
    work = root / "work"
    if not work.exists():
        _clip(work / "a.wav", 0.25)
        _clip(work / "sub" / "b.wav", 0.25, seed=1)
        _clip(root / "outside" / "c.wav", 0.25, seed=2)
        (work / "a.txt").write_text("not audio")
        (work / "LINK").symlink_to(work / "a.wav")
    return work, work / "out"


def _resolve_row(value: str, work: Path) -> str:
    return value.replace("ABS", str(work / "a.wav"))


def _check_listing(manifest: Path, out: Path, rows: int) -> None:
    try:
        listing = read_jobs(manifest, out)
    except FileFormatError as exc:  # a manifest-level problem: one error naming the manifest
        assert str(manifest) in str(exc)
        _count("manifest_refused")
        return
    assert len(listing.jobs) + len(listing.refused) <= rows
    stems = [j.stem for j in listing.jobs]
    assert len(set(stems)) == len(stems)
    for job in listing.jobs:
        rel = os.path.relpath(os.path.abspath(job.stem), os.path.abspath(out))
        assert not rel.startswith("..") and rel != "." and not os.path.isabs(rel), job
        assert job.stem.name not in ("", ".", "..")
    for failure in listing.refused:
        assert failure.line is not None and failure.error and str(manifest) in str(failure)
    _count("rows_ok" if listing.jobs else "rows_all_refused")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=6), txt=st.booleans())
def test_fuzz_manifest_rows_stay_inside_and_bad_rows_are_reported(tmp_path_factory, rows, txt):
    """Every job a manifest yields writes below -o (lexically; links are checked at write time), no two jobs
    share outputs, every refused row names the manifest and its line, and only manifest-level problems raise."""
    work, out = _fuzz_tree(tmp_path_factory.getbasetemp() / "fuzz_rows")
    if txt:
        manifest = work / "list.txt"
        manifest.write_text("\n".join(_resolve_row(a, work).replace("\n", " ") for a, _, _ in rows) + "\n")
    else:
        manifest = work / "list.csv"
        with open(manifest, "w", newline="", encoding="utf-8", errors="surrogatepass") as fh:
            writer = csv.writer(fh)
            writer.writerow(["audio", "output", "emotion"])
            writer.writerows([_resolve_row(a, work), _resolve_row(o, work), e] for a, o, e in rows)
    _check_listing(manifest, out, len(rows))
    _count("manifest_rows")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzz_raw_manifest_bytes(tmp_path_factory, data):
    """Arbitrary bytes as a CSV manifest: rows refused or accepted, or one manifest-level error; never a crash."""
    work, out = _fuzz_tree(tmp_path_factory.getbasetemp() / "fuzz_bytes")
    manifest = work / "raw.csv"
    manifest.write_bytes(b"audio,output,emotion\n" + data)
    _check_listing(manifest, out, data.count(b"\n") + data.count(b"\r") + 1)
    _count("manifest_bytes")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=4))
def test_fuzz_batch_end_to_end_writes_only_under_the_output_folder(small_pack, tmp_path_factory, rows):
    """The whole command on fuzzed manifests: exit 0 or 1 (or 2 naming the manifest), every new file under -o."""
    root = tmp_path_factory.mktemp("fuzz_e2e")
    work, out = _fuzz_tree(root)
    (out / "link").parent.mkdir(parents=True, exist_ok=True)
    if not (out / "link").exists():
        (out / "link").symlink_to(root / "outside")
    manifest = work / "list.csv"
    with open(manifest, "w", newline="", encoding="utf-8", errors="surrogatepass") as fh:
        csv.writer(fh).writerows([["audio", "output", "emotion"], *([_resolve_row(a, work), o, e] for a, o, e in rows)])
    before = _files(root)
    code = _batch(manifest, out, small_pack)
    assert code in (0, 1, 2)
    new = _files(root) - before
    assert all(p.is_relative_to(out) and not p.is_relative_to(out / "link") for p in new), sorted(map(str, new))
    if code != 2:
        report = json.loads((out / "batch_report.json").read_text())
        listed = sum(1 for row in rows if any(v.strip() for v in row))  # blank rows are skipped
        assert report["done"] + len(report["failed"]) == listed
    _count("batch_end_to_end")


def test_report_batch_fuzz_counts():
    """Runs last here: print the cases per class (``pytest -s`` shows them); every fuzzer must have run."""
    print("batch fuzz cases:", json.dumps(COUNTS, sort_keys=True))
    for name in ("manifest_rows", "manifest_bytes", "batch_end_to_end"):
        assert COUNTS.get(name, 0) > 0, name
