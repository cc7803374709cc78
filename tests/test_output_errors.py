"""File-system errors while writing outputs (issue 20 item 12): one line naming the file and exit 2, never a
traceback; SIGTERM cleans up like Ctrl-C (exit 143); a later run removes stale temporaries of its own outputs.

A full disk is simulated with errno (``OSError(ENOSPC)`` from ``fsync``), the file-size limit (``EFBIG`` from the
MP4 muxer, in a child) and, where this machine allows a private mount namespace, a real 64 KiB tmpfs; read-only
with ``EROFS`` from the writability probe and, where allowed, a read-only tmpfs (root bypasses ``chmod``).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from exporthelpers import make_animation

from facecast.cli import EXIT_TERMINATED, main, run_command
from facecast.fileio import (
    OutputError,
    describe_os_error,
    output_file,
    output_folder,
    remove_stale_temporaries,
    temporary_path,
)


def _wav(path: Path, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).standard_normal(int(16000 * seconds)) * 0.2
    sf.write(path, x.astype(np.float32), 16000)
    return path


def _one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("facecast: NOTE")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _anim_json(tmp_path: Path) -> Path:
    from facecast.export.json import write_json

    return write_json(make_animation(n=20), tmp_path / "anim.json")


def _head(tmp_path: Path) -> Path:
    from gltfheads import small_scene

    from facecast.export.glb import write_glb

    return write_glb(small_scene(), tmp_path / "head.glb")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _no_temporaries(folder: Path) -> None:
    hidden = [p.name for p in folder.rglob(".*")] if folder.exists() else []
    assert not hidden, hidden


# --- the output place is not usable ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["existing_file", "below_a_file"])
def test_animate_and_batch_with_output_on_a_file(small_pack, tmp_path, capsys, where):
    clip = _wav(tmp_path / "clip.wav")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" if where == "existing_file" else tmp_path / "afile" / "sub"
    assert main(["animate", str(clip), "-m", str(small_pack), "-o", str(out)]) == 2
    _one_line(capsys.readouterr().err, str(out), "cannot write")
    assert main(["batch", str(tmp_path), "-o", str(out)]) == 2
    _one_line(capsys.readouterr().err, str(out), "cannot write")
    assert (tmp_path / "afile").read_text() == "x"


def test_read_only_output_is_one_line_before_any_work(small_pack, tmp_path, capsys, monkeypatch):
    """EROFS at the writability probe (root ignores chmod, a read-only file system does not)."""
    import facecast.fileio as fileio

    def read_only(folder):
        raise OSError(errno.EROFS, "Read-only file system", str(Path(folder) / ".facecast-probe.x"))

    monkeypatch.setattr(fileio, "_probe", read_only)
    clip = _wav(tmp_path / "clip.wav")
    assert main(["animate", str(clip), "-m", str(small_pack), "-o", str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, str(tmp_path / "out"), "read-only file system")
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "out2"), "-m", str(small_pack)]) == 2
    _one_line(capsys.readouterr().err, "out2", "read-only")
    with pytest.raises(OutputError, match="read-only"):
        output_file(tmp_path / "plot.png")


def test_plot_and_retarget_refuse_a_folder_as_output(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    anim = _anim_json(tmp_path)
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["plot", str(anim), "-o", str(folder)]) == 2
    _one_line(capsys.readouterr().err, str(folder), "is a folder")
    assert main(["retarget", str(anim), "--head", str(_head(tmp_path)), "-o", str(folder)]) == 2
    _one_line(capsys.readouterr().err, str(folder), "is a folder")
    assert list(folder.iterdir()) == []


# --- the disk fills up while writing ----------------------------------------------------------------------------


def _full_fsync(monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)


def test_full_disk_in_animate_plot_and_retarget(small_pack, tmp_path, capsys, monkeypatch):
    clip = _wav(tmp_path / "clip.wav")
    anim, head = _anim_json(tmp_path), _head(tmp_path)
    _full_fsync(monkeypatch)
    out = tmp_path / "out"
    assert main(["animate", str(clip), "-m", str(small_pack), "-o", str(out), "--formats", "csv"]) == 2
    _one_line(capsys.readouterr().err, str(out / "clip.csv"), "no space left")
    assert main(["retarget", str(anim), "--head", str(head), "-o", str(out / "r.glb")]) == 2
    _one_line(capsys.readouterr().err, str(out / "r.glb"), "no space left")
    if importlib.util.find_spec("matplotlib"):
        assert main(["plot", str(anim), "-o", str(out / "p.png")]) == 2
        _one_line(capsys.readouterr().err, str(out / "p.png"), "no space left")
    assert list(out.iterdir()) == []  # nothing half-written, no temporaries


_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
from facecast.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_mp4_hitting_the_file_size_limit_is_one_line(small_pack, tmp_path):
    """A real write failure inside the MP4 muxer (EFBIG from RLIMIT_FSIZE): exit 2, one line, no temporary."""
    pytest.importorskip("av")
    clip = _wav(tmp_path / "clip.wav", 1.5)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _CHILD, "animate", str(clip), "-m", str(small_pack), "--formats",
                           "mp4", "-o", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    _one_line(proc.stderr, str(out / "clip.mp4"), "file too large")
    assert not (out / "clip.mp4").exists()
    _no_temporaries(out)


def _unshare_ok() -> bool:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d; rc=$?; rmdir $d; exit $rc"
    return subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="mount namespaces are Linux only")
@pytest.mark.parametrize("kind", ["full", "read_only"])
def test_real_full_and_read_only_file_systems(small_pack, tmp_path, kind):
    """A real 64 KiB tmpfs (ENOSPC while writing the MP4 and the JSON) and a read-only one (EROFS), each in a
    private mount namespace so nothing outlives the test."""
    if not _unshare_ok():
        pytest.skip("no private mount namespace here (unshare -rm)")
    clip = _wav(tmp_path / "clip.wav", 1.0)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = "size=64k" if kind == "full" else "ro,size=64k"
    formats = "json,mp4" if kind == "full" and importlib.util.find_spec("av") else "json"
    fill = f"head -c 56k /dev/zero > {mnt}/filler && " if kind == "full" else ""  # 8 KiB left
    animate = f"{sys.executable} -m facecast animate {clip} -m {small_pack} -o {mnt}/out --formats {formats}"
    listing = f"rm -f {mnt}/filler; ls -a {mnt} {mnt}/out 2>/dev/null"
    script = f"mount -t tmpfs -o {opts} tmpfs {mnt} && {fill}{animate}; rc=$?; {listing}; exit $rc"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    _one_line(proc.stderr, str(mnt), "no space left" if kind == "full" else "read-only file system")
    assert ".clip." not in proc.stdout  # no temporary left on the full file system


# --- SIGTERM and stale temporaries ------------------------------------------------------------------------------


def test_sigterm_runs_finally_blocks_and_exits_143(tmp_path, capsys):
    """In process: SIGTERM inside a command raises like Ctrl-C, its finally-blocks run, the exit code is 143."""
    marker = tmp_path / "tmp-file"

    def command(args: argparse.Namespace) -> int:
        marker.write_text("partial")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # interrupted at once by the signal
            return 0
        finally:
            marker.unlink()

    previous = signal.getsignal(signal.SIGTERM)
    assert run_command(argparse.Namespace(func=command)) == EXIT_TERMINATED == 143
    assert not marker.exists() and "terminated" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is put back


def test_sigterm_while_writing_mp4_leaves_no_temporary(tmp_path):
    """The built-in model animates in a second; rendering the 10 s preview takes several more, so the SIGTERM
    sent once the temporary appears lands while the MP4 is being written."""
    pytest.importorskip("av")
    clip = _wav(tmp_path / "clip.wav", 10.0)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "facecast", "animate", str(clip), "--formats", "mp4", "-o", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(2400):  # until the MP4's temporary exists (or the command ended)
            if proc.poll() is not None or list(out.glob(".clip.*.tmp.mp4")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    _no_temporaries(out)
    assert not (out / "clip.mp4").exists()


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path):
    target = tmp_path / "clip.mp4"
    dead = _dead_pid()
    ours = temporary_path(target)
    host = ours.name.split(".")[3]
    stale = [tmp_path / f".clip.{dead}.{host}.tmp.mp4", tmp_path / f".clip.{dead}.tmp.mp4"]  # and the old form
    kept = [
        tmp_path / f".clip.{os.getppid()}.{host}.tmp.mp4",  # a live writer
        tmp_path / f".clip.{dead}.otherhost.tmp.mp4",  # another machine's writer (shared storage)
        tmp_path / f".clipx.{dead}.{host}.tmp.mp4",  # another output
        tmp_path / f".clip.{dead}.{host}.tmp.usdc",  # another suffix
    ]
    for path in stale + kept:
        path.write_bytes(b"half")
    assert sorted(remove_stale_temporaries(target)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert ours.name == f".clip.{os.getpid()}.{host}.tmp.mp4" and not ours.exists()


def test_usd_writer_removes_stale_temporaries(tmp_path):
    pytest.importorskip("pxr")
    from exporthelpers import make_character

    from facecast.export.usd import write_usd

    target = tmp_path / "anim.usda"
    host = temporary_path(target).name.split(".")[3]
    stale = tmp_path / f".anim.{_dead_pid()}.{host}.tmp.usda"
    stale.write_bytes(b"half")
    write_usd(make_animation(n=4), target, make_character())
    assert target.is_file() and not stale.exists()


# --- the helpers -------------------------------------------------------------------------------------------------


def test_messages_name_the_output_not_the_temporary(tmp_path):
    err = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".x.json.abc123"))
    from facecast.fileio import output_error

    assert (
        str(output_error(tmp_path / "x.json", err))
        == f"{tmp_path / 'x.json'}: cannot write (no space left on the file system)"
    )
    assert describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/x")) == "/x: permission denied"
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="not a folder"):
        output_folder(tmp_path / "f")
    with pytest.raises(OutputError, match="a part of the path is a file|a file is in the way"):
        output_folder(tmp_path / "f" / "sub")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        output_file(tmp_path / "f" / "x.png")
    assert output_folder(tmp_path / "new" / "deep").is_dir() and not list((tmp_path / "new" / "deep").iterdir())


def test_other_commands_get_one_line_for_os_errors(capsys):
    def command(args: argparse.Namespace) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/root/somewhere")

    assert run_command(argparse.Namespace(func=command)) == 2
    _one_line(capsys.readouterr().err, "/root/somewhere", "permission denied")
