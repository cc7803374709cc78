"""``facecast batch``: animate thousands of clips from a folder or a manifest, resumably.

Clips are decoded in background threads, short clips are batched together into single inference calls,
long ones are streamed in bounded memory, and every output is written atomically, so an interrupted run
resumes where it stopped (finished outputs are skipped) and produces byte-identical files.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.audio import load_audio
from facecast.batch.manifest import AUDIO_SUFFIXES, REPORT_NAME, Failure, Job, JobList, find_jobs, read_jobs
from facecast.export import WRITERS, write
from facecast.fileio import FULL_ERRNOS, OutputError, atomic_write, check_regular, writing
from facecast.infer.engine import NetworkOutput
from facecast.model import AnimationOptions, Model
from facecast.timing import num_frames

__all__ = ["AUDIO_SUFFIXES", "REPORT_NAME", "BatchReport", "Failure", "Job", "JobList", "find_jobs", "read_jobs",
           "run_batch", "write_report"]  # fmt: skip

LONG_CLIP_SECONDS = 600.0
"""Clips longer than this are streamed block by block instead of decoded whole."""
ENTRY_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError, ArithmeticError, MemoryError,
                                                 EOFError)  # fmt: skip
"""What a bad clip may raise (decoding, non-finite audio, a solve, writing one entry): that entry fails, the rest
go on."""


@dataclass
class BatchReport:
    """What a batch did: entries written, already done (skipped), failed (each naming its file, manifest line and
    reason), frames written; ``stopped``: why the run stopped early (a full or read-only output), else None."""

    done: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    frames: int = 0
    stopped: str | None = None

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": [f.as_dict() for f in self.failed],
                "frames": self.frames, "stopped": self.stopped}  # fmt: skip


class _Stop(Exception):
    """The output place is full or read-only: every later write would fail too."""


def is_done(job: Job, formats: list[str]) -> bool:
    """Whether every output of ``job`` exists (a rerun skips it)."""
    return all(Path(str(job.stem) + WRITERS[f][0]).exists() for f in formats)


def _load(job: Job) -> tuple[np.ndarray | None, str | None]:
    """(audio, None), (None, None) for a clip too long to decode whole, or (None, error)."""
    try:
        import soundfile as sf

        check_regular(job.audio)  # never hand a FIFO or a device to the decoder by name
        if sf.info(str(job.audio)).duration > LONG_CLIP_SECONDS:
            return None, None
        return load_audio(job.audio), None
    except ENTRY_ERRORS as exc:
        return None, str(exc) or exc.__class__.__name__


def _infer_group(model: Model, group: list[tuple[AnimationOptions, np.ndarray]]) -> list[NetworkOutput]:
    """Run the windows (or blocks) of several clips through the network in shared batches."""
    params = model.face_params(group[0][0])  # a batch animates every clip with the model's face parameters
    engine = model.engine_for(group[0][0], params)
    if not hasattr(engine, "network_inputs"):  # a v3.0 diffusion engine: each clip is its own GRU track
        from facecast.infer.diffusion import run_tracks

        engines = [model.engine_for(opts, params) for opts, _ in group]
        fps = group[0][0].fps  # a batch animates every clip at one rate
        return run_tracks(engines, [a for _, a in group], fps, [o.explicit for o, _ in group], len(group))
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
    """Animate every job not yet done. A bad clip (undecodable, non-finite, failing to write) is a failure in
    the report naming its file and line, and the rest go on; a full or read-only output stops the run
    (``report.stopped``), since every later write would fail too.

    Clips are grouped by their position in ``jobs`` (``group_clips`` per group) and each group's windows are
    inferred together (clip by clip when the group fails, so one bad clip cannot sink the others). The grouping
    does not depend on what is already done, so a resumed run computes every remaining clip with exactly the
    same batches as an uninterrupted run and writes byte-identical files.
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

    def fail(job: Job, error: BaseException | str) -> None:
        report.failed.append(Failure.of(job, str(error) or error.__class__.__name__))
        if bar is not None:
            bar.update(1)

    def emit(job: Job, make_anim: Callable[[], Animation]) -> None:
        """Animate (``make_anim()``) and write one job; its own errors make it a failure."""
        try:
            anim = make_anim()
            _write_job(anim, job, formats)
        except OutputError as exc:
            if exc.errno in FULL_ERRNOS:
                raise _Stop(str(exc)) from None
            return fail(job, str(exc))
        except ENTRY_ERRORS as exc:
            return fail(job, exc)
        report.done += 1
        report.frames += len(anim)
        if bar is not None:
            bar.update(1)

    try:
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
                            fail(jobs[i], error)
                    elif audio is None:  # a long clip: streamed on its own, in bounded memory
                        if not done[i]:
                            emit(
                                jobs[i],
                                lambda i=i: model.animate_file(jobs[i].audio, options=_job_options(options, jobs[i])),
                            )
                    else:  # done clips are inferred too: the same batches as an uninterrupted run
                        decoded.append((i, audio))
                for i, raw in _infer_each(model, [(i, _job_options(options, jobs[i]), a) for i, a in decoded]):
                    if done[i]:
                        continue
                    if isinstance(raw, BaseException):
                        fail(jobs[i], raw)
                    else:
                        emit(jobs[i], lambda raw=raw: model.finish(raw, model.pipeline.new_state(), params, options))
    except _Stop as stop:
        report.stopped = str(stop)
    finally:
        if bar is not None:
            bar.close()
    return report


def _infer_each(
    model: Model, group: list[tuple[int, AnimationOptions, np.ndarray]]
) -> list[tuple[int, NetworkOutput | BaseException]]:
    """The network outputs of a group's clips, inferred together; when that fails, clip by clip, so that each
    bad clip gets its own error and the others their results."""
    if not group:
        return []
    try:
        return list(zip([i for i, _, _ in group], _infer_group(model, [(o, a) for _, o, a in group]), strict=True))
    except ENTRY_ERRORS:
        if len(group) == 1:
            raise
    out: list[tuple[int, NetworkOutput | BaseException]] = []
    for i, opts, audio in group:
        try:
            out.append((i, _infer_group(model, [(opts, audio)])[0]))
        except ENTRY_ERRORS as exc:
            out.append((i, exc))
    return out


def _write_job(anim: Animation, job: Job, formats: list[str]) -> None:
    """Write one job's files, each an OutputError naming it when it fails; outputs must stay inside
    ``job.root`` with links resolved (a link below the output folder cannot carry them out)."""
    for name in formats:
        target = Path(str(job.stem) + WRITERS[name][0])
        with writing(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            if job.root is not None and not target.parent.resolve().is_relative_to(job.root.resolve()):
                raise OutputError(target, f"its folder resolves outside the output folder {job.root}", errno.EXDEV)
            write(anim, job.stem, [name])


def _job_options(options: AnimationOptions, job: Job) -> AnimationOptions:
    """The run's options with the job's emotion."""
    return options.replace(emotion=job.emotion or None) if job.emotion else options


def write_report(path: Path, report: BatchReport) -> None:
    """Write the report as JSON, atomically."""
    with writing(path):
        atomic_write(path, lambda fh: fh.write((json.dumps(report.as_dict(), indent=2) + "\n").encode()))
