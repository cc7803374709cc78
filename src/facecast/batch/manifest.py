"""The entries of a batch: every audio file below a folder, or the rows of a manifest, checked before any work.

Every output stays under the output folder:

- a folder's files are mirrored below it;
- a manifest entry without an ``output`` names its output after its path relative to the manifest's folder, and
  an entry outside that folder (an absolute path, or one climbing out with ``..``) after its file name alone, at
  the top of the output folder;
- an ``output`` that is absolute or climbs out of the output folder (``..``) is refused, as are two entries
  writing the same output (the later ones) and an entry named like the report (``batch_report``).

A refused row is a :class:`Failure` (manifest, line, reason); the other rows still run.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from facecast.emotion import EmotionTrack
from facecast.fileio import FileFormatError, check_regular, read_bytes

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
REPORT_NAME = "batch_report.json"
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
COLUMNS = ("audio", "output", "emotion")


@dataclass
class Job:
    """One clip to animate: where it is, where its outputs go (without suffix), its emotion, and where it was
    listed (``manifest`` and its 1-based ``line``; None for a folder's files). ``root``: the output folder the
    outputs must stay in (checked again, with links resolved, when they are written)."""

    audio: Path
    stem: Path
    emotion: list[str] = field(default_factory=list)
    manifest: Path | None = None
    line: int | None = None
    root: Path | None = None

    @property
    def where(self) -> str:
        """The entry in words: ``list.csv line 3 (clip.wav)``, or the audio path."""
        return entry_name(self.manifest, self.line, str(self.audio))


def printable(text: str) -> str:
    """``text`` with control characters escaped (a hostile name cannot drive the terminal)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def entry_name(manifest: Path | None, line: int | None, audio: str | None) -> str:
    """``MANIFEST line N (AUDIO)``, or ``AUDIO`` for a folder's file; control characters escaped."""
    if manifest is None:
        return printable(audio or "?")
    return printable(f"{manifest} line {line}" + (f" ({audio})" if audio else ""))


@dataclass
class Failure:
    """An entry that was not written, and why (``error``: the reason, without the entry's name)."""

    error: str
    audio: str | None = None
    output: str | None = None
    manifest: str | None = None
    line: int | None = None

    @classmethod
    def of(cls, job: Job, error: str) -> Failure:
        """The failure of ``job``; an error that starts with the audio path loses that prefix."""
        prefix = f"{job.audio}: "
        error = error[len(prefix) :] if error.startswith(prefix) else error
        manifest = None if job.manifest is None else str(job.manifest)
        return cls(" ".join(error.split()), str(job.audio), str(job.stem), manifest, job.line)

    def __str__(self) -> str:
        where = entry_name(None if self.manifest is None else Path(self.manifest), self.line, self.audio)
        return f"{where}: {printable(self.error)}"

    def as_dict(self) -> dict:
        return {"audio": self.audio, "output": self.output, "manifest": self.manifest, "line": self.line,
                "error": self.error}  # fmt: skip


@dataclass
class JobList:
    """The entries that will run and those refused up front (every problem of the manifest, with its line)."""

    jobs: list[Job]
    refused: list[Failure]


def _folder_jobs(source: Path, out_dir: Path) -> list[Job | Failure]:
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    entries: list[Job | Failure] = []
    for path in files:
        job = Job(path, out_dir / path.relative_to(source).with_suffix(""), root=out_dir)
        clash = job.stem == out_dir / Path(REPORT_NAME).stem
        entries.append(Failure.of(job, "its outputs would be named like the batch report") if clash else job)
    return entries


def _relative_inside(value: str) -> PurePosixPath | None:
    """``value`` as a normalised relative path that stays inside its folder, or None (absolute, ``..``, empty)."""
    if not value or "\0" in value or Path(value).anchor or PurePosixPath(value).anchor:
        return None
    norm = posixpath.normpath(value.replace(os.sep, "/"))
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        return None
    return PurePosixPath(norm)


def _output_stem(audio: str, output: str, out_dir: Path) -> tuple[Path | None, str]:
    """(stem, "") or (None, the reason the row is refused)."""
    if output:
        rel = _relative_inside(output)
        if rel is None:
            return None, f"output {output!r} is not a relative path inside the output folder (no absolute paths, no ..)"
    else:
        rel = _relative_inside(audio)
        rel = rel.with_suffix("") if rel is not None else PurePosixPath(PurePosixPath(audio.replace(os.sep, "/")).stem)
        if rel.name in ("", ".", ".."):
            return None, f"audio {audio!r} gives no output name; add an 'output' column"
    if rel.as_posix() == Path(REPORT_NAME).stem:
        return None, f"output {rel.as_posix()!r} is the name of the batch report; choose another"
    return out_dir / rel, ""


def _entry(manifest: Path, line: int, audio: str, output: str, emotion: str, out_dir: Path) -> Job | Failure:
    """One manifest row checked: a Job, or the Failure naming its line and every problem of it."""
    problems, specs, stem = [], [s.strip() for s in emotion.split(";") if s.strip()], None
    if not audio:
        problems.append("no audio path")
    elif "\0" in audio:
        problems.append("the audio path holds a NUL character")
    else:
        stem, problem = _output_stem(audio, output, out_dir)
        problems += [problem] if problem else []
        try:
            check_regular(manifest.parent / audio)
        except FileFormatError as exc:
            problems.append("audio " + str(exc).removeprefix(f"{manifest.parent / audio}: "))
    if specs:
        try:
            EmotionTrack.parse(specs)
        except ValueError as exc:
            problems.append(f"bad emotion: {exc}")
    if problems:
        return Failure("; ".join(" ".join(p.split()) for p in problems), audio or None, None, str(manifest), line)
    assert stem is not None
    return Job(manifest.parent / audio, stem, specs, manifest, line, out_dir)


def _manifest_text(source: Path) -> str:
    data = read_bytes(source, MAX_MANIFEST_BYTES)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError([f"{source}: a manifest must be UTF-8 text ({exc.reason} at byte {exc.start})"]) from None


def _csv_rows(source: Path, text: str) -> list[tuple[int, str, str, str, str]]:
    """(line, audio, output, emotion, extra) per data row; a malformed header or CSV syntax ends the run."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "audio" not in header:
            raise FileFormatError([f"{source}: a CSV manifest needs an 'audio' column (columns: {', '.join(COLUMNS)})"])
        index = {name: header.index(name) for name in COLUMNS if name in header}
        rows = []
        start = reader.line_num + 1
        for values in reader:
            if any(v.strip() for v in values):
                cell = [values[index[n]].strip() if n in index and index[n] < len(values) else "" for n in COLUMNS]
                extra = "" if len(values) <= len(header) or not any(v.strip() for v in values[len(header) :]) else (
                    f"{len(values)} fields, the header has {len(header)}")  # fmt: skip
                rows.append((start, *cell, extra))
            start = reader.line_num + 1
        return rows
    except csv.Error as exc:
        raise FileFormatError([f"{source} line {reader.line_num}: not valid CSV ({exc})"]) from None


def read_jobs(source: str | os.PathLike, out_dir: str | os.PathLike) -> JobList:
    """The entries of a folder (every audio file below it) or a manifest (``.txt``: one path per line, ``#``
    comments; ``.csv``: a header with ``audio`` and optionally ``output`` and ``emotion``, ``NAME=WEIGHT[@TIME]``
    specs separated by ``;``; other columns are ignored). Relative paths are relative to the manifest's folder.

    Every row is checked before any work (audio a regular file, emotion specs, the output inside ``out_dir``,
    no two rows writing the same output); refused rows come back in ``refused``, each naming its line. An
    unreadable manifest, one that is not UTF-8 or not CSV, or a CSV without an ``audio`` column raises
    :class:`~facecast.fileio.FileFormatError`."""
    source, out_dir = Path(source), Path(out_dir)
    if source.is_dir():
        entries = _folder_jobs(source, out_dir)
    elif not os.path.lexists(source):
        raise FileFormatError([f"{source}: no such folder or manifest"])
    elif source.suffix.lower() in AUDIO_SUFFIXES:
        raise FileFormatError([f"{source}: is an audio file; batch takes a folder or a manifest (one file: animate)"])
    else:
        text = _manifest_text(source)
        entries = []
        if source.suffix.lower() == ".csv":
            for line, audio, output, emotion, extra in _csv_rows(source, text):
                entry = _entry(source, line, audio, output, emotion, out_dir)
                if extra and isinstance(entry, Job):
                    entry = Failure(extra, audio, None, str(source), line)
                entries.append(entry)
        else:
            for line, raw in enumerate(text.splitlines(), 1):
                raw = raw.strip()
                if raw and not raw.startswith("#"):
                    entries.append(_entry(source, line, raw, "", "", out_dir))
    return _unique(entries)


def _unique(entries: list[Job | Failure]) -> JobList:
    """Refuse every entry that would write the outputs of an earlier one (the first keeps them)."""
    jobs: list[Job] = []
    refused: list[Failure] = []
    first: dict[Path, Job] = {}
    for entry in entries:
        if isinstance(entry, Failure):
            refused.append(entry)
            continue
        earlier = first.setdefault(entry.stem, entry)
        if earlier is entry:
            jobs.append(entry)
        else:
            refused.append(Failure.of(entry, f"writes the same outputs ({entry.stem}.*) as {earlier.where}"))
    refused.sort(key=lambda f: f.line or 0)
    return JobList(jobs, refused)


def find_jobs(source: str | os.PathLike, out_dir: str | os.PathLike) -> list[Job]:
    """:func:`read_jobs`, strictly: any refused entry raises FileFormatError listing them all."""
    listing = read_jobs(source, out_dir)
    if listing.refused:
        raise FileFormatError([str(f) for f in listing.refused])
    return listing.jobs
