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
from facecast.emotion import EmotionTrack
from facecast.export import WRITERS, write
from facecast.fileio import atomic_write
from facecast.infer.engine import NetworkOutput, extract_windows, frame_targets, num_frames
from facecast.model import Model

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


def _levels(model: Model, audio: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
    """Audio levels for the quiet hold, when the model's face parameters turn it on (batch uses them as they are)."""
    return model.engine.frame_levels(audio, targets) if model.pipeline.default_params.quiet_hold > 0 else None


def _infer_group(model: Model, group: list[tuple[Job, np.ndarray]], fps: float) -> list[NetworkOutput]:
    """Run the windows (or blocks) of several clips through the network in shared batches."""
    engine, info = model.engine, model.info
    if engine.uses_blocks:
        return _infer_group_blocks(model, group, fps)
    windows, emotions, sizes = [], [], []
    for job, audio in group:
        count = num_frames(len(audio), fps)
        targets = frame_targets(0, count, fps)
        windows.append(extract_windows(audio, targets - info.buffer_ofs, info.buffer_len, 0, engine.input_strength))
        emo = np.zeros((count, info.emotion_len), np.float32)
        emo[:, : info.implicit_emotion_len] = engine.implicit_emotion
        if job.emotion:
            emo[:, info.implicit_emotion_len :] = EmotionTrack.parse(job.emotion).sample(targets / 16000)
        emotions.append(emo)
        sizes.append((count, targets, audio))
    result = engine.infer(np.concatenate(windows), np.concatenate(emotions))
    outs, start = [], 0
    for (count, targets, audio), emo in zip(sizes, emotions, strict=True):
        outs.append(NetworkOutput(np.arange(count), targets, result[start : start + count], emo,
                                  info.num_shapes_skin, info.num_shapes_tongue, float(fps),
                                  levels=_levels(model, audio, targets)))  # fmt: skip
        start += count
    return outs


def _infer_group_blocks(model: Model, group: list[tuple[Job, np.ndarray]], fps: float) -> list[NetworkOutput]:
    engine, info, k = model.engine, model.info, model.engine.frames_per_pass
    inputs, sizes = [], []
    for job, audio in group:
        count = num_frames(len(audio), fps)
        explicit = EmotionTrack.parse(job.emotion) if job.emotion else None
        inputs.append(engine.block_inputs(audio, 0, -(-count // k), fps, explicit, 0))
        sizes.append((count, audio))
    chunks, offsets, emotion = (np.concatenate(parts) for parts in zip(*inputs, strict=True))
    result = engine.infer_blocks(chunks, offsets, emotion)
    outs, start = [], 0
    for (count, audio), (_, _, emo) in zip(sizes, inputs, strict=True):
        rows = result[start : start + len(emo)].reshape(-1, result.shape[-1])[:count]
        targets = frame_targets(0, count, fps)
        outs.append(NetworkOutput(np.arange(count), targets, rows, emo.reshape(-1, emo.shape[-1])[:count],
                                  info.num_shapes_skin, info.num_shapes_tongue, float(fps),
                                  levels=_levels(model, audio, targets)))  # fmt: skip
        start += len(emo)
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
    done = [is_done(job, formats) for job in jobs]
    report.skipped = sum(done)
    groups = [list(range(i, min(i + group_clips, len(jobs)))) for i in range(0, len(jobs), group_clips)]
    groups = [g for g in groups if not all(done[i] for i in g)]
    bar = None
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(jobs) - report.skipped, desc="batch", unit="clip")

    def emit(job: Job, anim) -> None:
        anim.random_weights = model.random_weights
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
                        emit(jobs[i], model.animate_file(jobs[i].audio, fps, emotion=jobs[i].emotion or None,
                                                         blinks=blinks))  # fmt: skip
                else:
                    decoded.append((i, audio))
            if not decoded:
                continue
            raws = _infer_group(model, [(jobs[i], a) for i, a in decoded], fps)
            for (i, _), raw in zip(decoded, raws, strict=True):
                if not done[i]:
                    emit(jobs[i], model.pipeline.process(raw, model.pipeline.new_state(), blinks=_blink_params(blinks)))
    if bar is not None:
        bar.close()
    return report


def _blink_params(blinks: bool):
    from facecast.face.blinks import BlinkParams

    return BlinkParams() if blinks else None


def write_report(path: Path, report: BatchReport) -> None:
    atomic_write(path, lambda fh: fh.write((json.dumps(report.as_dict(), indent=2) + "\n").encode()))
