"""Training samples (spec 10.4): pairs of consecutive frames with their audio windows, time-shift augmentation
and muted shots.

Randomness comes from ``numpy.random.default_rng([seed, epoch, index])`` for each sample, so any sample of any
epoch can be rebuilt exactly; that makes resumed and distributed runs reproducible.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from facecast.constants import EMOTION_NAMES, SAMPLE_RATE
from facecast.timing import block_length
from facecast.train.config import TrainConfig
from facecast.train.dataset import NEUTRAL
from facecast.train.preprocess import TrainingData

SEQ_LEN = 2
MIC_NOISE_DBFS = -80.0


@dataclass
class TableShot:
    """One shot of the implicit emotion table: real (``source`` empty) or muted (frozen ``source`` frame)."""

    name: str
    emotion: str
    row: int
    """First row of the shot in the implicit emotion table."""
    frames: int
    train: bool = True
    source: str = ""
    source_frame: int = 0

    @property
    def muted(self) -> bool:
        return bool(self.source)


def table_layout(cfg: TrainConfig, data: TrainingData) -> list[TableShot]:
    """Every shot of the cache (in order), then the muted shots; rows of the implicit emotion table."""
    names = {s.name for s in data.shots}
    for name in cfg.train.exclude_shots:
        if name not in names:
            raise ValueError(f"train.exclude_shots: no shot {name!r} in the training data")
    layout = [
        TableShot(s.name, s.emotion, s.start, s.frames, s.name not in cfg.train.exclude_shots) for s in data.shots
    ]
    row = int(data.targets.shape[0])
    muted = [(m.source_shot, m.source_frame, m.frames, m.emotion) for m in cfg.train.muted_shots]
    if cfg.train.muted_frames_per_emotion > 0:
        firsts: dict[str, str] = {}
        for s in data.shots:
            firsts.setdefault(s.emotion, s.name)
        muted += [(shot, 0, cfg.train.muted_frames_per_emotion, emo) for emo, shot in firsts.items()]
    for source, frame, frames, emotion in muted:
        if source not in names:
            raise ValueError(f"train.muted_shots: source shot {source!r} is not in the training data")
        src = data.shot(source)
        if not 0 <= frame < src.frames:
            raise ValueError(f"train.muted_shots: frame {frame} is outside shot {source!r} (0..{src.frames - 1})")
        layout.append(TableShot(f"muted_{source}_{frame}", emotion or src.emotion, row, frames, True, source, frame))
        row += frames
    return layout


def layout_to_json(layout: list[TableShot]) -> list[dict]:
    return [asdict(s) for s in layout]


def layout_from_json(items: list[dict]) -> list[TableShot]:
    return [TableShot(**item) for item in items]


def explicit_emotion(label: str) -> np.ndarray:
    """One-hot 10-vector of an emotion label; neutral is all zeros."""
    vec = np.zeros(len(EMOTION_NAMES), np.float32)
    if label != NEUTRAL:
        vec[EMOTION_NAMES.index(label)] = 1.0
    return vec


def mic_noise(length: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Faint microphone-like hiss (about -80 dBFS RMS): random-phase noise whose log spectrum falls off from the
    low frequencies (39 exp(-f / 300 Hz) dB above a flat floor, 5.85 dB random spread per bin)."""
    freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
    level_db = 39.0 * np.exp(-freqs / 300.0) + rng.normal(0.0, 5.85, len(freqs))
    spectrum = 10.0 ** (level_db / 20.0) * np.exp(2j * np.pi * rng.uniform(size=len(freqs)))
    noise = np.fft.irfft(spectrum, n=length)
    noise /= max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    return (noise * 10.0 ** (MIC_NOISE_DBFS / 20.0)).astype(np.float32)


def read_window(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """``audio[start : start + length]`` with zeros outside the clip."""
    out = np.zeros(length, np.float32)
    lo, hi = max(start, 0), min(start + length, len(audio))
    if hi > lo:
        out[lo - start : hi - start] = audio[lo:hi]
    return out


def shifted_targets(targets: np.ndarray, frames: np.ndarray, shift: float) -> np.ndarray:
    """Targets at ``frames + shift`` (|shift| <= 1), interpolated linearly between neighbours, clamped at ends."""
    last = len(targets) - 1
    if shift >= 0.0:
        a, b, w = frames, frames + 1, min(shift, 1.0)
    else:
        a, b, w = frames - 1, frames, max(shift + 1.0, 0.0)
    a, b = np.clip(a, 0, last), np.clip(b, 0, last)
    return (targets[a] * (1.0 - w) + targets[b] * w).astype(np.float32)


class SequenceDataset(torch.utils.data.Dataset):
    """Every pair of consecutive frames of every training shot, real and muted."""

    def __init__(self, cfg: TrainConfig, data: TrainingData, layout: list[TableShot]) -> None:
        self.data = data
        self.seed = cfg.train.seed
        self.epoch = 0
        self.fps = data.fps
        self.buffer_len = cfg.network.buffer_len
        self.buffer_ofs = cfg.network.buffer_ofs
        self.time_shift = cfg.train.time_shift
        self.frame_offset = cfg.train.frame_time_offset
        self.noise_scale = cfg.train.muted_noise_scale
        self.num_skin = data.num_shapes_skin
        self.shots = [s for s in layout if s.train and s.frames >= SEQ_LEN]
        counts = [s.frames - SEQ_LEN + 1 for s in self.shots]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._real = {s.name: data.shot(s.name) for s in data.shots}
        self.chunk = 0
        """Frames per sample: 0 or 1 gives pairs of separate windows; K >= 2 gives K frames of one chunk."""

    def set_chunk(self, frames: int) -> None:
        self.chunk = int(frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        shot = self.shots[which]
        first = index - int(self.offsets[which])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.chunk >= 2:
            return self._chunk_item(shot, first, rng)
        frames = np.arange(first, first + SEQ_LEN)
        explicit = np.repeat(explicit_emotion(shot.emotion)[None], SEQ_LEN, axis=0)
        rows = (shot.row + frames).astype(np.int64)
        if shot.muted:
            src = self._real[shot.source]
            target = self.data.shot_targets(src)[shot.source_frame].copy()
            if shot.emotion == NEUTRAL:
                target[: self.num_skin] = 0.0
            local = rng.uniform() * self.noise_scale
            x = np.stack([mic_noise(self.buffer_len, rng) * np.float32(local) for _ in range(SEQ_LEN)])
            y = np.repeat(target[None], SEQ_LEN, axis=0)
            return {"x": x, "y": y, "rows": rows, "explicit": explicit, "volume": np.abs(x).mean(axis=-1)}
        info = self._real[shot.name]
        shift = (rng.uniform() - 0.5) * self.time_shift
        audio = self.data.shot_audio(info)
        centres = np.floor((frames + self.frame_offset + shift) * SAMPLE_RATE / self.fps + 1e-6).astype(np.int64)
        x = np.stack([read_window(audio, int(c) - self.buffer_ofs, self.buffer_len) for c in centres])
        y = shifted_targets(self.data.shot_targets(info), frames, shift)
        return {"x": x, "y": y, "rows": rows, "explicit": explicit, "volume": np.abs(x).mean(axis=-1)}

    def _chunk_item(self, shot: TableShot, first: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The pair of frames ``first, first + 1`` seen from a block of K = ``self.chunk`` frames that holds it at a
        random position: the chunk of audio the block's encoder pass reads, and the pair's window offsets in it.

        Only the pair is decoded, so a step costs about what a step of window pairs costs, over as many samples.
        """
        k = self.chunk
        slot = int(rng.integers(0, k - 1))  # the pair is frames slot, slot + 1 of the block
        start = max(first - slot, 0)
        slot = first - start
        frames = np.arange(first, first + SEQ_LEN)
        rows = (shot.row + frames).astype(np.int64)
        explicit = np.repeat(explicit_emotion(shot.emotion)[None], SEQ_LEN, axis=0)
        length = block_length(k, self.fps, self.buffer_len)
        block = np.arange(start, start + k)
        if shot.muted:
            src = self._real[shot.source]
            target = self.data.shot_targets(src)[shot.source_frame].copy()
            if shot.emotion == NEUTRAL:
                target[: self.num_skin] = 0.0
            centres = chunk_offsets(start, k, self.fps)
            x = mic_noise(length, rng) * np.float32(rng.uniform() * self.noise_scale)
            y = np.repeat(target[None], SEQ_LEN, axis=0)
        else:
            info = self._real[shot.name]
            shift = (rng.uniform() - 0.5) * self.time_shift
            centres = np.floor((block + self.frame_offset + shift) * SAMPLE_RATE / self.fps + 1e-6).astype(np.int64)
            x = read_window(self.data.shot_audio(info), int(centres[0]) - self.buffer_ofs, length)
            y = shifted_targets(self.data.shot_targets(info), frames, shift)
        offsets = (centres - centres[0]).astype(np.int64)
        x[int(offsets[-1]) + self.buffer_len :] = 0.0  # a block's chunk ends with its last frame's window
        pair = offsets[slot : slot + SEQ_LEN]
        volume = np.array([np.abs(x[o : o + self.buffer_len]).mean() for o in pair], np.float32)
        return {"x": x, "y": y, "rows": rows, "explicit": explicit, "offsets": pair, "volume": volume}


def chunk_offsets(first: int, count: int, fps: float) -> np.ndarray:
    """Window starts of frames ``first .. first + count - 1`` relative to the first one (the SDK's frame timing)."""
    centres = (np.arange(first, first + count, dtype=np.int64) * SAMPLE_RATE / fps + 1e-6).astype(np.int64)
    return centres - centres[0]


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack samples into batch tensors."""
    return {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in items[0]}


def frame_windows(
    data: TrainingData, shot_name: str, buffer_len: int, buffer_ofs: int, frame_offset: float = 0.0
) -> np.ndarray:
    """Unshifted audio windows [F, buffer_len] of every frame of a shot (for evaluation)."""
    info = data.shot(shot_name)
    audio = data.shot_audio(info)
    centres = np.floor((np.arange(info.frames) + frame_offset) * SAMPLE_RATE / data.fps + 1e-6).astype(np.int64)
    return np.stack([read_window(audio, int(c) - buffer_ofs, buffer_len) for c in centres])


def batches_per_epoch(num_samples: int, world_size: int, batch_size: int) -> int:
    """Full batches each rank runs per epoch (DistributedSampler pads ranks to equal length; last partial batch
    dropped, but never fewer than one batch)."""
    per_rank = math.ceil(num_samples / world_size)
    return max(1, per_rank // batch_size)
