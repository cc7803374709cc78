"""Audio2Emotion (A2E): speech -> emotion keyframes that drive Audio2Face's explicit emotion input.

:class:`AudioToEmotion` runs an Audio2Emotion-v2.2-style ONNX classifier (``input_values`` [B, T] 16 kHz
float32 -> ``output`` [B, 6] logits over :data:`A2E_CLASSES`) on long windows centred on targets spaced
``16000 / fps * (inferences_to_skip + 1)`` samples apart, then :class:`A2EPostProcessor` turns each logit
vector into a 10-emotion A2F vector. The post-processing follows the Audio2Face-3D SDK (``postprocess.cpp``
and its CUDA twin) step for step, including two details the written spec leaves open:

- "previous" in the live blend is the previous frame's blended value (after step 5, before the
  preferred-emotion blend); "previous blended" in the transition smoothing is the previous frame's value after
  the preferred blend (before the strength). On the first frame the live blend uses ``beginning_emotion`` and
  there is no transition smoothing.
- The correspondence step only overwrites the five emotions A2E predicts. The other five (amazement,
  cheekiness, grief, outofbreath, pain) keep the working buffer's value: ``beginning_emotion`` on the first
  frame, afterwards the previous *output* (after ``emotion_strength``). They therefore only become non-zero
  through ``beginning_emotion`` or the preferred emotion.

No torch here: only numpy and onnxruntime (imported when a model is opened).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from facecast.constants import DEFAULT_FPS, EMOTION_NAMES, SAMPLE_RATE
from facecast.emotion import NUM_EMOTIONS, EmotionError, EmotionTrack, _as_vector
from facecast.timing import fps_fraction

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["A2E_CLASSES", "A2EPostProcessParams", "A2EPostProcessor", "AudioToEmotion"]

A2E_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad")
"""The 6 Audio2Emotion v2.2 output classes, in logit order."""

A2E_TO_A2F: dict[str, str | None] = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "joy",
    "neutral": None,
    "sad": "sadness",
}
"""Emotion correspondence: A2E class -> A2F explicit emotion (``None``: dropped)."""

_CORRESPONDENCE = np.array(
    [-1 if A2E_TO_A2F[c] is None else EMOTION_NAMES.index(A2E_TO_A2F[c]) for c in A2E_CLASSES], dtype=np.int64
)
_MAPPED = _CORRESPONDENCE >= 0

PreferredEmotion: TypeAlias = "EmotionTrack | Mapping[str, float]"
"""A fixed preferred emotion (``{name: weight}``) or one that varies over time (:class:`EmotionTrack`)."""

INPUT_NAME = "input_values"
OUTPUT_NAME = "output"
DEFAULT_WINDOW_LEN = 60_000
DEFAULT_INFERENCES_TO_SKIP = 30


def _num(value: Any, name: str) -> float:
    """``value`` as a float (not bool, not NaN), else :class:`EmotionError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EmotionError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v):
        raise EmotionError(f"{name} must not be NaN")
    return v


def _in_range(value: Any, name: str, lo: float, hi: float) -> float:
    v = _num(value, name)
    if not lo <= v <= hi:
        raise EmotionError(f"{name} must be in [{lo:g}, {hi:g}], got {v:g}")
    return v


@dataclass(frozen=True)
class A2EPostProcessParams:
    """Audio2Emotion post-processing parameters (NIM ``emotion_post_processing_params`` / ``emotion_params``).

    ``preferred_emotion`` and ``beginning_emotion`` accept a ``{name: weight}`` mapping or 10 weights and are
    stored as tuples. Defaults are the NIM's, except ``enable_preferred_emotion`` (False here: with no user
    emotion the preferred vector is neutral and enabling it would only halve the A2E output; the NIM sample
    configs also ship False).
    """

    emotion_contrast: float = 1.0
    """Multiplies the logits before the softmax, in [0.3, 3]."""
    live_blend_coef: float = 0.7
    """Weight of the previous frame in the live blend, in [0, 1]."""
    enable_preferred_emotion: bool = False
    """Blend towards ``preferred_emotion`` after the live blend."""
    preferred_emotion_strength: float = 0.5
    """Weight of the preferred emotion, in [0, 1]."""
    preferred_emotion: tuple[float, ...] = field(default=(0.0,) * NUM_EMOTIONS)
    """The preferred emotion (10 weights in [0, 1])."""
    emotion_strength: float = 0.6
    """Final multiplier, in [0, 1]."""
    max_emotions: int = 3
    """How many A2E classes are kept (largest probabilities), in 1..6."""
    live_transition_time: float = 0.5
    """Transition smoothing time constant in seconds, > 0 (``transition_smoothing`` in model_config)."""
    fixed_dt: float = 0.033
    """Time step of the transition smoothing in seconds, > 0 (:class:`AudioToEmotion` sets it to 1/fps)."""
    beginning_emotion: tuple[float, ...] = field(default=(0.0,) * NUM_EMOTIONS)
    """Emotion the first frame is blended with (10 weights in [0, 1])."""

    def __post_init__(self) -> None:
        _in_range(self.emotion_contrast, "emotion_contrast", 0.3, 3.0)
        _in_range(self.live_blend_coef, "live_blend_coef", 0.0, 1.0)
        _in_range(self.preferred_emotion_strength, "preferred_emotion_strength", 0.0, 1.0)
        _in_range(self.emotion_strength, "emotion_strength", 0.0, 1.0)
        if not isinstance(self.enable_preferred_emotion, (bool, np.bool_)):
            got = self.enable_preferred_emotion
            raise EmotionError(f"enable_preferred_emotion must be a bool, got {got!r}")
        m = self.max_emotions
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= len(A2E_CLASSES):
            raise EmotionError(f"max_emotions must be an integer in [1, {len(A2E_CLASSES)}], got {m!r}")
        if _num(self.live_transition_time, "live_transition_time") <= 0.0:
            raise EmotionError(f"live_transition_time must be > 0 s, got {self.live_transition_time}")
        dt = _num(self.fixed_dt, "fixed_dt")
        if not (math.isfinite(dt) and dt > 0.0):
            raise EmotionError(f"fixed_dt must be finite and > 0 s, got {dt}")
        for name in ("preferred_emotion", "beginning_emotion"):
            vec = _as_vector(getattr(self, name), name, np.float64)
            object.__setattr__(self, name, tuple(float(x) for x in vec))
        object.__setattr__(self, "enable_preferred_emotion", bool(self.enable_preferred_emotion))
        object.__setattr__(self, "max_emotions", int(m))

    def replace(self, **changes: Any) -> A2EPostProcessParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


class A2EPostProcessor:
    """Per-stream Audio2Emotion post-processing: A2E logits [6] -> A2F explicit emotion [10].

    Per frame: softmax(logits * contrast); "neutral" zeroed; all but the ``max_emotions`` largest zeroed;
    mapped into the 10-vector; live blend with the previous blended value (``beginning_emotion`` on the first
    frame); optional preferred-emotion blend; transition smoothing with
    ``w = min(fixed_dt / max(T, 1e-3), 1)`` (not on the first frame); times ``emotion_strength``. See the
    module docstring for what "previous" means.
    """

    def __init__(self, params: A2EPostProcessParams | None = None) -> None:
        self.params = params if params is not None else A2EPostProcessParams()
        self.reset()

    def reset(self) -> None:
        """Start a new stream: the next frame is a first frame again."""
        self._first = True
        self._work = np.zeros(NUM_EMOTIONS, dtype=np.float64)
        self._prev = np.zeros(NUM_EMOTIONS, dtype=np.float64)
        self._prev_blended = np.zeros(NUM_EMOTIONS, dtype=np.float64)

    def step(self, logits: Sequence[float] | np.ndarray, preferred: np.ndarray | None = None) -> np.ndarray:
        """Post-process one frame of logits [6]; ``preferred`` [10] overrides ``params.preferred_emotion``."""
        p = self.params
        x = np.asarray(logits, dtype=np.float64)
        if x.shape != (len(A2E_CLASSES),):
            raise EmotionError(f"A2E logits must have shape [6] {A2E_CLASSES}, got {x.shape}")
        if not np.isfinite(x).all():
            raise EmotionError(f"A2E logits must be finite, got {x.tolist()}")
        beginning = np.asarray(p.beginning_emotion, dtype=np.float64)
        if self._first:
            self._work = beginning.copy()

        # 1. softmax with contrast
        z = x * p.emotion_contrast
        e = np.exp(z - z.max())
        prob = e / e.sum()
        # 2. classes with no A2F counterpart (neutral) are zeroed
        prob[~_MAPPED] = 0.0
        # 3. keep the max_emotions largest; ties: the lowest index is zeroed first, as in the SDK
        n_zero = len(A2E_CLASSES) - p.max_emotions
        if n_zero > 0:
            prob[np.argsort(prob, kind="stable")[:n_zero]] = 0.0
        # 4. correspondence into the 10-vector (unmapped A2F emotions keep the working value)
        self._work[_CORRESPONDENCE[_MAPPED]] = prob[_MAPPED]
        # 5. live blend with the previous blended value, or the beginning emotion on the first frame
        source = beginning if self._first else self._prev
        out = (1.0 - p.live_blend_coef) * self._work + p.live_blend_coef * source
        self._prev = out.copy()
        # 6. preferred emotion
        if p.enable_preferred_emotion:
            pref = np.asarray(p.preferred_emotion if preferred is None else preferred, dtype=np.float64)
            if pref.shape != (NUM_EMOTIONS,):
                raise EmotionError(f"preferred emotion must have {NUM_EMOTIONS} values, got {pref.shape}")
            out = (1.0 - p.preferred_emotion_strength) * out + p.preferred_emotion_strength * pref
        # 7. transition smoothing towards the previous frame's (pre-strength) value
        if not self._first:
            w = min(p.fixed_dt / max(p.live_transition_time, 1e-3), 1.0)
            out = w * out + (1.0 - w) * self._prev_blended
        self._prev_blended = out.copy()
        # 8. strength
        out = out * p.emotion_strength
        self._work = out.copy()
        self._first = False
        return out.astype(np.float32)

    def run(self, logits: np.ndarray, preferred: np.ndarray | None = None) -> np.ndarray:
        """Post-process frames [N, 6] -> [N, 10], continuing the current state (call :meth:`reset` first for a
        new stream); ``preferred`` [N, 10] gives a per-frame preferred emotion."""
        x = np.asarray(logits, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(A2E_CLASSES):
            raise EmotionError(f"A2E logits must have shape [N, {len(A2E_CLASSES)}], got {x.shape}")
        if preferred is not None:
            preferred = np.asarray(preferred, dtype=np.float64)
            if preferred.shape != (x.shape[0], NUM_EMOTIONS):
                raise EmotionError(f"preferred must have shape [{x.shape[0]}, 10], got {preferred.shape}")
        out = np.zeros((x.shape[0], NUM_EMOTIONS), dtype=np.float32)
        for i in range(x.shape[0]):
            out[i] = self.step(x[i], None if preferred is None else preferred[i])
        return out


def _fps_fraction(fps: float) -> Fraction:
    """``fps`` as an exact fraction (29.97 -> 30000/1001, like the SDK's numerator/denominator), the frame clock's
    (:func:`facecast.timing.fps_fraction`), so inference times fall on the animation's frame times."""
    v = _num(fps, "fps")
    try:
        return fps_fraction(v)
    except ValueError as exc:
        raise EmotionError(str(exc)) from None


def _dim_text(dim: Any) -> str:
    return str(dim) if isinstance(dim, int) else "dynamic"


class AudioToEmotion:
    """An Audio2Emotion ONNX classifier plus post-processing: 16 kHz audio -> :class:`EmotionTrack`.

    Inference ``k`` is centred on sample ``target_k = floor(k * 16000 * (inferences_to_skip + 1) / fps)`` for
    every ``target_k`` inside the clip; its window is ``[target_k - window_len // 2, ... + window_len)``,
    zero-padded outside the clip. Each post-processed vector becomes a key at ``target_k / 16000`` seconds. As
    in the SDK executor, the transition smoothing's ``fixed_dt`` is replaced by ``1 / fps``.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        params: A2EPostProcessParams | None = None,
        *,
        fps: float = DEFAULT_FPS,
        inferences_to_skip: int = DEFAULT_INFERENCES_TO_SKIP,
        window_len: int = DEFAULT_WINDOW_LEN,
        input_strength: float = 1.0,
        batch_size: int = 8,
        providers: Sequence[str] | None = None,
    ) -> None:
        self._fps = _fps_fraction(fps)
        k = inferences_to_skip
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise EmotionError(f"inferences_to_skip must be an integer >= 0, got {k!r}")
        if isinstance(window_len, bool) or not isinstance(window_len, (int, np.integer)) or window_len <= 0:
            raise EmotionError(f"window_len must be a positive number of samples, got {window_len!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise EmotionError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.inferences_to_skip = int(k)
        self.window_len = int(window_len)
        self.input_strength = _num(input_strength, "input_strength")
        stride = self.stride_samples
        if stride > self.window_len:
            raise EmotionError(
                f"stride {float(stride):.1f} samples (16000/fps*(inferences_to_skip+1)) exceeds window_len "
                f"{self.window_len}: audio between windows would never be seen"
            )
        base = params if params is not None else A2EPostProcessParams()
        self.params = base.replace(fixed_dt=float(1 / self._fps))
        self.model_path = Path(model_path)
        self._session = self._open(self.model_path, providers)
        self._batch, self._fixed_batch = self._check_io(self._session, int(batch_size))

    @property
    def fps(self) -> float:
        """Frame rate the inference spacing and ``fixed_dt`` are derived from."""
        return float(self._fps)

    @property
    def stride_samples(self) -> Fraction:
        """Exact spacing of the inference targets in samples."""
        return SAMPLE_RATE * (self.inferences_to_skip + 1) / self._fps

    def _open(self, path: Path, providers: Sequence[str] | None) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        if not path.is_file():
            raise FileNotFoundError(f"Audio2Emotion model not found: {path}")
        try:
            return ort.InferenceSession(str(path), providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as err:  # onnxruntime raises its own exception types
            raise EmotionError(f"cannot load Audio2Emotion ONNX {path}: {err}") from err

    def _check_io(self, sess: onnxruntime.InferenceSession, batch_size: int) -> tuple[int, bool]:
        """Validate the model's input/output names and shapes; return (batch size, whether it is fixed)."""
        src = self.model_path
        inputs = sess.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise EmotionError(
                f"{src}: expected one input {INPUT_NAME!r} [batch, samples], got {[i.name for i in inputs]}"
            )
        inp = inputs[0]
        if inp.type != "tensor(float)" or len(inp.shape) != 2:
            got = f"{inp.type} {inp.shape}"
            raise EmotionError(f"{src}: input {INPUT_NAME!r} must be a 2-D float tensor, got {got}")
        outputs = {o.name: o for o in sess.get_outputs()}
        if OUTPUT_NAME not in outputs:
            raise EmotionError(f"{src}: expected an output {OUTPUT_NAME!r} [batch, 6], got {sorted(outputs)}")
        out = outputs[OUTPUT_NAME]
        n_cls = out.shape[-1] if out.shape else None
        if len(out.shape) != 2 or (isinstance(n_cls, int) and n_cls != len(A2E_CLASSES)):
            raise EmotionError(
                f"{src}: output {OUTPUT_NAME!r} must have shape [batch, {len(A2E_CLASSES)}] "
                f"({', '.join(A2E_CLASSES)}), got {out.shape}"
            )
        b_dim, t_dim = inp.shape
        if isinstance(t_dim, int) and t_dim != self.window_len:
            raise EmotionError(
                f"{src}: input {INPUT_NAME!r} has a fixed length of {t_dim} samples but window_len is "
                f"{self.window_len}; pass window_len={t_dim}"
            )
        if isinstance(b_dim, int) and b_dim > 0:
            return b_dim, True
        return batch_size, False

    def targets(self, num_samples: int) -> np.ndarray:
        """Centre samples of the inferences for a clip of ``num_samples`` samples (int64, ascending)."""
        num, den = self._fps.numerator, self._fps.denominator
        step_num = SAMPLE_RATE * den * (self.inferences_to_skip + 1)
        # target_k = floor(k * step_num / num) < num_samples  <=>  k < num_samples * num / step_num
        count = -(-max(int(num_samples), 0) * num // step_num)
        return np.arange(count, dtype=np.int64) * step_num // num

    def windows(self, audio: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The zero-padded model input windows [K, window_len] float32 centred on ``targets``."""
        half = self.window_len // 2
        padded = np.zeros(half + audio.shape[0] + self.window_len, dtype=np.float32)
        padded[half : half + audio.shape[0]] = audio * np.float32(self.input_strength)
        # window of target t starts at sample t - half, i.e. at index t of ``padded``
        idx = targets[:, None] + np.arange(self.window_len)[None, :]
        return padded[idx]

    def logits(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw classifier output: (key times in seconds [K], logits [K, 6])."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise EmotionError(f"audio must be mono 1-D samples at {SAMPLE_RATE} Hz, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise EmotionError("audio contains NaN or infinite samples")
        targets = self.targets(x.shape[0])
        out = np.zeros((targets.shape[0], len(A2E_CLASSES)), dtype=np.float32)
        for s in range(0, targets.shape[0], self._batch):
            win = self.windows(x, targets[s : s + self._batch])
            n = win.shape[0]
            if n < self._batch and self._fixed_batch:
                win = np.concatenate([win, np.zeros((self._batch - n, self.window_len), np.float32)])
            res = np.asarray(self._session.run([OUTPUT_NAME], {INPUT_NAME: win})[0])
            if res.ndim != 2 or res.shape[1] != len(A2E_CLASSES) or res.shape[0] < n:
                raise EmotionError(
                    f"{self.model_path}: output {OUTPUT_NAME!r} has shape {list(res.shape)} for a batch of "
                    f"{win.shape[0]}, expected [{win.shape[0]}, {len(A2E_CLASSES)}]"
                )
            out[s : s + n] = res[:n]
        return targets.astype(np.float64) / SAMPLE_RATE, out

    def track(self, audio: np.ndarray, preferred: PreferredEmotion | None = None) -> EmotionTrack:
        """Emotion keyframes for a whole clip (fresh post-processing state).

        ``preferred`` (used only when ``params.enable_preferred_emotion``) is a fixed emotion or a track
        sampled at each inference time, like the NIM's per-clip emotion keyframes.
        """
        times, logits = self.logits(audio)
        pref = None
        if self.params.enable_preferred_emotion and preferred is not None:
            if isinstance(preferred, EmotionTrack):
                pref = preferred.sample(times)
            else:
                pref = np.tile(_as_vector(preferred, "preferred emotion"), (times.shape[0], 1))
        values = A2EPostProcessor(self.params).run(logits, pref)
        track = EmotionTrack()
        for t, v in zip(times, values, strict=True):
            track.add(float(t), np.clip(v, 0.0, 1.0))
        return track

    def __repr__(self) -> str:
        shape = [_dim_text(d) for d in self._session.get_inputs()[0].shape]
        return (
            f"AudioToEmotion({str(self.model_path)!r}, input {shape}, fps={self.fps:g}, "
            f"inferences_to_skip={self.inferences_to_skip}, window_len={self.window_len})"
        )
