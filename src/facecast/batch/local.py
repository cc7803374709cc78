"""``facecast batch``: animate thousands of clips from a folder or a manifest, resumably.

Clips are decoded in background threads, short clips are batched together into single inference calls,
long ones are streamed in bounded memory, and every output is written atomically, so an interrupted run
resumes where it stopped (finished outputs are skipped) and produces byte-identical files.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.audio import AudioError, load_audio
from facecast.export import WRITERS, write
from facecast.fileio import atomic_write
from facecast.infer.engine import NetworkOutput
from facecast.model import AnimationOptions, Model
from facecast.timing import num_frames

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
LONG_CLIP_SECONDS = 600.0
"""Clips longer than this are streamed block by block instead of decoded whole."""


@dataclass
class Job:
    """One clip to animate: where it is, where its outputs go (without suffix), its emotion."""

    audio: Path
    stem: Path
    emotion: list[str] = field(default_factory=list)


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed, "frames": self.frames}


def find_jobs(source: str | os.PathLike, out_dir: str | os.PathLike) -> list[Job]:
    """Jobs from a folder (every audio file below it) or a manifest (.txt: one path per line; .csv: columns
    ``audio`` and optionally ``output`` and ``emotion`` with ``NAME=WEIGHT[@TIME]`` specs separated by ``;``)."""
    source, out_dir = Path(source), Path(out_dir)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        return [Job(p, out_dir / p.relative_to(source).with_suffix("")) for p in files]
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such folder or manifest")
    base = source.parent
    jobs: list[Job] = []
    if source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "audio" not in reader.fieldnames:
                raise ValueError(f"{source}: a CSV manifest needs an 'audio' column")
            for row in reader:
                audio = base / row["audio"]
                stem = out_dir / (row.get("output") or Path(row["audio"]).with_suffix(""))
                specs = [s.strip() for s in (row.get("emotion") or "").split(";") if s.strip()]
                jobs.append(Job(audio, stem, specs))
    else:
        for line in source.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                jobs.append(Job(base / line, out_dir / Path(line).with_suffix("")))
    stems = [j.stem for j in jobs]
    if len(set(stems)) != len(stems):
        raise ValueError(f"{source}: two entries write the same output; give them distinct 'output' names")
    return jobs


def is_done(job: Job, formats: list[str]) -> bool:
    return all(Path(str(job.stem) + WRITERS[f][0]).exists() for f in formats)


def _load(job: Job) -> tuple[np.ndarray | None, str | None]:
    """(audio, None), (None, None) for a clip too long to decode whole, or (None, error)."""
    try:
        import soundfile as sf

        if sf.info(str(job.audio)).duration > LONG_CLIP_SECONDS:
            return None, None
        return load_audio(job.audio), None
    except (AudioError, RuntimeError, OSError, ValueError) as exc:
        return None, str(exc)


def _infer_group(model: Model, group: list[tuple[AnimationOptions, np.ndarray]]) -> list[NetworkOutput]:
    """Run the windows (or blocks) of several clips through the network in shared batches."""
    params = model.face_params(group[0][0])  # a batch animates every clip with the model's face parameters
    engine = model.engine_for(group[0][0], params)
    inputs = [engine.network_inputs(audio, 0, num_frames(len(audio), opts.fps), opts.fps, opts.explicit)
              for opts, audio in group]  # fmt: skip
    result = engine.infer(*(np.concatenate(parts) for parts in zip(*(i.arrays for i in inputs), strict=True)))
    outs, row = [], 0
    for part, (_, audio) in zip(inputs, group, strict=True):
        levels = engine.frame_levels(audio, part.targets) if params.quiet_hold > 0 else None  # for the quiet hold
        outs.append(engine.output(part, result[row : row + len(part)], levels))
        row += len(part)
    return outs


def run_batch(
    model: Model,
    jobs: list[Job],
    formats: list[str],
    fps: float = 30.0,
    workers: int = 2,
    group_clips: int = 8,
    blinks: bool = True,
    progress: bool | None = None,
) -> BatchReport:
    """Animate every job not yet done; failures are recorded, the rest go on.

    Clips are grouped by their position in ``jobs`` (``group_clips`` per group) and each group's windows are
    inferred together. The grouping does not depend on what is already done, so a resumed run computes every
    remaining clip with exactly the same batches as an uninterrupted run and writes byte-identical files.
    """
    report = BatchReport()
    options = AnimationOptions(fps=fps, blinks=blinks)
    params = model.face_params(options)
    done = [is_done(job, formats) for job in jobs]
    report.skipped = sum(done)
    groups = [list(range(i, min(i + group_clips, len(jobs)))) for i in range(0, len(jobs), group_clips)]
    groups = [g for g in groups if not all(done[i] for i in g)]
    bar = None
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(jobs) - report.skipped, desc="batch", unit="clip")

    def emit(job: Job, anim) -> None:
        job.stem.parent.mkdir(parents=True, exist_ok=True)
        write(anim, job.stem, formats)
        report.done += 1
        report.frames += len(anim)
        if bar is not None:
            bar.update(1)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        loads = {}

        def prefetch(k: int) -> None:
            if k < len(groups):
                for i in groups[k]:
                    loads[i] = pool.submit(_load, jobs[i])

        prefetch(0)
        for k, group in enumerate(groups):
            prefetch(k + 1)  # decode the next group while this one runs
            decoded = []
            for i in group:
                audio, error = loads.pop(i).result()
                if error is not None:
                    if not done[i]:
                        report.failed[str(jobs[i].audio)] = error
                        if bar is not None:
                            bar.update(1)
                elif audio is None:  # a long clip: streamed on its own, in bounded memory
                    if not done[i]:
                        emit(jobs[i], model.animate_file(jobs[i].audio, options=_job_options(options, jobs[i])))
                else:
                    decoded.append((i, audio))
            if not decoded:
                continue
            raws = _infer_group(model, [(_job_options(options, jobs[i]), a) for i, a in decoded])
            for (i, _), raw in zip(decoded, raws, strict=True):
                if not done[i]:
                    emit(jobs[i], model.finish(raw, model.pipeline.new_state(), params, options))
    if bar is not None:
        bar.close()
    return report


def _job_options(options: AnimationOptions, job: Job) -> AnimationOptions:
    """The run's options with the job's emotion."""
    return options.replace(emotion=job.emotion or None) if job.emotion else options


def write_report(path: Path, report: BatchReport) -> None:
    atomic_write(path, lambda fh: fh.write((json.dumps(report.as_dict(), indent=2) + "\n").encode()))
