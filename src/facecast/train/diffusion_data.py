"""Training data of the v3.0 diffusion recipe: several identities, each a dataset in NVIDIA's layout, no PCA.

Each identity is read with :func:`facecast.train.dataset.load_dataset` (its own ``root``, default
``dataset.root``); an identity with a ``scale`` is derived from its dataset by scaling every position, delta and
blendshape per axis (tongue frames are jaw-stabilised first), so one corpus (``facecast synth``) gives a
multi-identity model with no capture data. Targets are per-frame vertex deltas ``[skin | tongue | jaw 15 |
eyes 4]`` at the dataset's frame rate; :func:`frames_at` samples them at the model's 60 fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.constants import EMOTION_NAMES, SAMPLE_RATE
from facecast.pack import BlendshapeSet
from facecast.train.config import DiffusionIdentity, TrainConfig
from facecast.train.dataset import A2FDataset, DatasetError, load_dataset
from facecast.train.pca import stabilize

NATIVE_FPS = 60.0


@dataclass
class DiffusionShot:
    """One shot: 16 kHz audio, per-frame deltas at ``fps`` and its explicit emotion (10 values)."""

    name: str
    audio: np.ndarray
    targets: np.ndarray
    emotion: np.ndarray

    @property
    def native_frames(self) -> int:
        """60 fps frames of the clip: ceil(3 N / 800)."""
        return -(-3 * len(self.audio) // 800)


@dataclass
class IdentityTrainingData:
    """One identity: its static geometry (flattened as ``model_data_<Id>.npz`` holds it), shots, blendshapes."""

    name: str
    fps: float
    model_data: dict[str, np.ndarray]
    shots: list[DiffusionShot]
    lip_verts: tuple[list[int], list[int]] | None = None
    eye_verts: list[int] | None = None
    bs_skin: BlendshapeSet | None = None
    bs_tongue: BlendshapeSet | None = None


@dataclass
class DiffusionData:
    """Every identity, in the order of the deployed ``params.identities``."""

    identities: list[IdentityTrainingData]
    skin_size: int
    tongue_size: int

    @property
    def output_size(self) -> int:
        return self.skin_size + self.tongue_size + 15 + 4

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.identities]

    def summary(self) -> str:
        shots = sum(len(i.shots) for i in self.identities)
        seconds = sum(len(s.audio) for i in self.identities for s in i.shots) / SAMPLE_RATE
        return (f"{len(self.identities)} identities ({', '.join(self.names)}), {shots} shots, {seconds:.1f} s of "
                f"audio; {self.skin_size // 3} skin and {self.tongue_size // 3} tongue vertices")  # fmt: skip


def emotion_vector(label: str) -> np.ndarray:
    """The explicit emotion of a shot label: one-hot over the 10 emotions, zeros for neutral."""
    out = np.zeros(len(EMOTION_NAMES), np.float32)
    if label in EMOTION_NAMES:
        out[EMOTION_NAMES.index(label)] = 1.0
    return out


def _scaled_bs(bs: BlendshapeSet | None, scale: np.ndarray) -> BlendshapeSet | None:
    if bs is None:
        return None
    neutral, deltas = (bs.neutral * scale).astype(np.float32), (bs.deltas * scale).astype(np.float32)
    return BlendshapeSet(list(bs.names), neutral, deltas, dict(bs.config), bs.frontal_mask, bs.rig_version)


def identity_data(ds: A2FDataset, spec: DiffusionIdentity, muted_seconds: float = 0.0) -> IdentityTrainingData:
    """The deltas of every shot of ``ds`` as identity ``spec`` (scaled per axis), plus an optional muted shot."""
    geo = ds.geometry
    if geo.tongue_neutral is None or geo.tongue_rigid_verts is None:
        raise DatasetError([f"{ds.root}: a diffusion model needs the tongue (geom/tongue/neutral_pose.npy)"])
    scale = np.asarray(spec.scale, np.float32)
    shots = []
    for shot in ds.shots:
        skin = (ds.skin(shot) - geo.skin_neutral) * scale
        tongue_frames = ds.tongue(shot)
        assert tongue_frames is not None
        tongue = (stabilize(tongue_frames, geo.tongue_neutral, geo.tongue_rigid_verts) - geo.tongue_neutral) * scale
        jaw = ds.jaw_deltas(shot).reshape(-1, 5, 3) * scale
        eyes = ds.eye_rotations(shot)
        n = min(len(skin), len(tongue), len(jaw), len(eyes))
        parts = [skin[:n].reshape(n, -1), tongue[:n].reshape(n, -1), jaw[:n].reshape(n, -1), eyes[:n]]
        targets = np.concatenate(parts, axis=1).astype(np.float32)
        shots.append(DiffusionShot(shot.name, ds.audio(shot), targets, emotion_vector(shot.emotion)))
    if muted_seconds > 0:
        rng = np.random.default_rng(len(shots))
        samples = round(muted_seconds * SAMPLE_RATE)
        width = shots[0].targets.shape[1] if shots else 0
        frames = int(np.ceil(muted_seconds * ds.fps)) + 1
        audio = (rng.standard_normal(samples) * 1e-3).astype(np.float32)
        shots.append(DiffusionShot("muted", audio, np.zeros((frames, width), np.float32), emotion_vector("neutral")))
    model_data = {
        "neutral_skin": (geo.skin_neutral * scale).reshape(-1),
        "neutral_tongue": (geo.tongue_neutral * scale).reshape(-1),
        "neutral_jaw": (geo.jaw_neutral * scale).reshape(-1),
        "lip_open_pose_delta": (geo.lip_open_pose_delta * scale).reshape(-1),
        "eye_close_pose_delta": (geo.eye_close_pose_delta * scale).reshape(-1),
        "saccade_rot_matrix": geo.saccade,
    }
    lips = geo.lip_dist_verts
    return IdentityTrainingData(
        name=spec.name,
        fps=ds.fps,
        model_data={k: np.asarray(v, np.float32) for k, v in model_data.items()},
        shots=shots,
        lip_verts=(lips["upper"], lips["lower"]) if lips else None,
        eye_verts=(geo.eye_dist_verts["upper"] + geo.eye_dist_verts["lower"]) if geo.eye_dist_verts else None,
        bs_skin=_scaled_bs(ds.bs_skin, scale),
        bs_tongue=_scaled_bs(ds.bs_tongue, scale),
    )


def load_diffusion_data(cfg: TrainConfig) -> DiffusionData:
    """Read every identity of ``cfg.diffusion`` (each dataset read once); all must share vertex counts."""
    d = cfg.dataset
    specs = cfg.diffusion.identities or [DiffusionIdentity(d.actor)]
    read: dict[str, A2FDataset] = {}
    out = []
    for spec in specs:
        root = spec.root or d.root
        if str(root) not in read:
            read[str(root)] = load_dataset(root, fps=d.fps, shots=d.shots or None, shots_file=d.shots_file,
                                           emotions=d.emotions, frame_tolerance=d.frame_tolerance)  # fmt: skip
        out.append(identity_data(read[str(root)], spec, cfg.diffusion.muted_seconds))
    sizes = {(i.model_data["neutral_skin"].size, i.model_data["neutral_tongue"].size) for i in out}
    if len(sizes) != 1:
        raise DatasetError([f"identities {', '.join(i.name for i in out)}: one network needs the same skin and "
                            f"tongue vertex counts in every dataset, got {sorted(sizes)}"])  # fmt: skip
    skin, tongue = sizes.pop()
    return DiffusionData(out, int(skin), int(tongue))


def frames_at(shot: DiffusionShot, fps: float, frames: np.ndarray) -> np.ndarray:
    """Targets at 60 fps frames ``frames`` (frame n at n / 60 s), linear between the dataset's frames; frames
    before 0 or past the clip's end are the neutral face (zero deltas), as the silence the SDK pads with."""
    frames = np.asarray(frames, np.int64)
    out = np.zeros((len(frames), shot.targets.shape[1]), np.float32)
    inside = (frames >= 0) & (frames < shot.native_frames)
    pos = np.clip(frames[inside] * fps / NATIVE_FPS, 0, len(shot.targets) - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(shot.targets) - 1)
    frac = (pos - i0)[:, None].astype(np.float32)
    out[inside] = shot.targets[i0] * (1 - frac) + shot.targets[i1] * frac
    return out


def pitch_shift(x: np.ndarray, semitones: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """``x`` shifted by ``semitones`` at the same length: a phase-vocoder time stretch by 2^(s/12), then
    resampled back to ``len(x)`` samples."""
    if not semitones or len(x) < n_fft:
        return x
    from scipy import signal

    rate = 2.0 ** (-semitones / 12.0)
    _, _, z = signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop)
    steps = np.arange(0, z.shape[1] - 1, rate)
    expected = 2 * np.pi * hop * np.arange(z.shape[0]) / n_fft
    k = steps.astype(np.int64)
    frac = (steps - k)[None]
    mag = (1 - frac) * np.abs(z[:, k]) + frac * np.abs(z[:, k + 1])
    dphi = np.angle(z[:, k + 1]) - np.angle(z[:, k]) - expected[:, None]
    dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
    phase = np.angle(z[:, :1]) + np.concatenate([np.zeros((len(expected), 1)), np.cumsum(
        expected[:, None] + dphi, axis=1)[:, :-1]], axis=1)  # fmt: skip
    _, y = signal.istft(mag * np.exp(1j * phase), nperseg=n_fft, noverlap=n_fft - hop)
    return signal.resample(y, len(x)).astype(np.float32)


def segment(shot: DiffusionShot, start: int, windows: int, window: int = 16000, semitones: float = 0.0) -> np.ndarray:
    """Audio of ``windows`` consecutive SDK windows whose kept frames begin at 60 fps frame ``start`` (a
    multiple of 3): window k starts at sample (start + 30 k) * 800 / 3 - window / 4, zeros outside the clip;
    the span they cover pitch-shifted by ``semitones`` first."""
    stride = window // 2
    a = start * 800 // 3 - window // 4
    region = np.zeros(window + (windows - 1) * stride, np.float32)
    lo, hi = max(a, 0), min(a + len(region), len(shot.audio))
    if hi > lo:
        region[lo - a : hi - a] = shot.audio[lo:hi]
    region = pitch_shift(region, semitones)
    return np.stack([region[k * stride : k * stride + window] for k in range(windows)])
