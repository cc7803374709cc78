"""The v3.0 diffusion model's inference loop, as NVIDIA's SDK runs it (spec v3 section 4).

Windows of ``buffer_len`` (16000) samples every ``stride`` (8000) samples, the first starting ``padding_left``
(16000) samples before the clip (a warm-up on zeros), zeros past the end; each window gives 60 frames at 60 fps
of which the centre 30 are kept, so the kept frames tile the timeline; frames before 0 or past the clip's end
are computed and dropped. The GRU state (``output_latents``) of one window is the next one's ``input_latents``,
so a track's windows run strictly in order. Each kept frame's emotion is read at its own time. Audio is scaled
by ``input_strength``.

Noise: one generator per track, a Philox counter-based normal generator (numpy's ``Philox``, seeded by ``seed``;
it is not bit-identical to cuRAND's Philox4_32_10 ordering); ``reset`` rewinds it. ``constant_noise`` (the SDK's
default) draws one noise tensor and reuses it for every window of every track; it is drawn once per engine and
seed (64 MB at full size), not per window.

Native frame n is at sample floor(n * 800 / 3); a clip of N samples has ceil(3N / 800) frames. Another output
rate resamples the kept frames linearly at each output frame's exact time k / fps (30 fps picks every other
frame exactly). A :class:`DiffusionEngine` is one track: :meth:`DiffusionEngine.with_options` gives a fresh one,
so :class:`~facecast.infer.stream.StreamSession` streams it unchanged and any push sizes give the offline frames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facecast.audio import frame_levels, level_span
from facecast.constants import SAMPLE_RATE
from facecast.infer.engine import ExplicitEmotion, NetworkOutput, explicit_rows
from facecast.pack_v3 import DiffusionInfo
from facecast.timing import fps_fraction, frame_targets, num_frames

Runner = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(window, identity, emotion, input_latents, noise) -> (prediction, output_latents), the graph's interface."""


class OnnxDiffusionRunner:
    """``network.onnx`` through ONNX Runtime on ``device`` (``auto``, ``cpu``, ``cuda``, or ``tensorrt`` with fp16
    engines, cached beside the network). GPU providers run with I/O binding (``io_binding``, default on for them):
    outputs stay on the device until copied back once, and a noise tensor used again (constant noise, one track per
    call) is copied to the device once and kept there."""

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, device: str = "cpu", io_binding: bool | None = None
    ) -> None:
        import onnxruntime as ort

        from facecast.infer.backends import _providers

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = _providers(device, ort.get_available_providers(), Path(path).parent)
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.providers = self.session.get_providers()
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        self.name = f"onnxruntime:{self.providers[0].replace('ExecutionProvider', '').lower()}"
        self.io_binding = (not on_cpu) if io_binding is None else bool(io_binding)
        self._device = "cpu" if on_cpu else "cuda"
        self._noise: tuple[np.ndarray, object] | None = None
        self.takes_noise = "noise" in {i.name for i in self.session.get_inputs()}
        """False for a folded graph (:mod:`facecast.network.diffusion_folded`): its noise is built in."""
        self.folded_seed: int | None = None
        """The noise seed built into a folded graph, where known (engines refuse other noise)."""

    def __call__(self, window, identity, emotion, latents, noise) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"window": window, "identity": identity, "emotion": emotion, "input_latents": latents}
        if not self.io_binding:
            if self.takes_noise:
                feeds["noise"] = noise
            prediction, latents_out = self.session.run(["prediction", "output_latents"], feeds)
            return prediction, latents_out
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value, np.float32))
        if self.takes_noise:
            binding.bind_ortvalue_input("noise", self._device_noise(noise))
        for name in ("prediction", "output_latents"):
            binding.bind_output(name, self._device)
        self.session.run_with_iobinding(binding)
        prediction, latents_out = binding.copy_outputs_to_cpu()
        return prediction, latents_out

    def _device_noise(self, noise: np.ndarray):
        """``noise`` on the device: the same array as last time is not copied again."""
        import onnxruntime as ort

        if self._noise is None or self._noise[0] is not noise:
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(noise, np.float32), self._device, 0)
            self._noise = (noise, value)
        return self._noise[1]


class TorchDiffusionRunner:
    """facecast's torch module (for instance imported from ``network.onnx``)."""

    name = "torch"

    def __init__(self, network) -> None:
        self.network = network.eval()

    def __call__(self, window, identity, emotion, latents, noise) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(a)) for a in (window, identity, emotion, latents, noise)]
            prediction, latents_out = self.network(*args)
        return prediction.numpy(), latents_out.numpy()

    def run_track(self, windows, identity, emotion, latents, noise) -> tuple[np.ndarray, np.ndarray]:
        """Consecutive windows of one track at once (:meth:`DiffusionNetwork.run_track`): kept frames [W, C, D]."""
        import torch

        with torch.inference_mode():
            t = [torch.from_numpy(np.ascontiguousarray(a)) for a in (windows, identity, emotion, latents)]
            noise_t = {id(n): torch.from_numpy(n) for n in noise}
            kept, latents_out = self.network.run_track(*t, [noise_t[id(n)] for n in noise])
        return kept.numpy(), latents_out.numpy()


class WindowInputs(NamedTuple):
    """One window of one track, as the graph takes it (batch of one)."""

    window: np.ndarray
    identity: np.ndarray
    emotion: np.ndarray
    latents: np.ndarray
    noise: np.ndarray | None
    """None for a folded graph (its noise is built in)."""


def join_windows(parts: list[WindowInputs]) -> WindowInputs:
    """Windows of several tracks as one batch: everything along the batch axis (axis 2 of the GRU state)."""
    if len(parts) == 1:
        return parts[0]
    *columns, noises = zip(*parts, strict=True)
    joined = [np.concatenate(c, axis=2 if i == 3 else 0) for i, c in enumerate(columns)]
    noise = None if any(n is None for n in noises) else np.concatenate(noises)  # None: a folded graph's
    return WindowInputs(*joined, noise)


def split_results(result: tuple[np.ndarray, np.ndarray], count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A joined batch's (prediction, output_latents), back to each of its ``count`` tracks."""
    prediction, latents = result
    return [(prediction[i : i + 1], latents[:, :, i : i + 1]) for i in range(count)]


def run_tracks(
    engines: list[DiffusionEngine], audios: list[np.ndarray], fps: float, explicits: list[ExplicitEmotion],
    batch: int = 8,
) -> list[NetworkOutput]:  # fmt: skip
    """Whole clips, each on a fresh track of its engine (all sharing one runner), with window ``w`` of up to
    ``batch`` tracks joined into one network call: the same frames as :meth:`DiffusionEngine.run` clip by clip,
    in fewer, larger calls."""
    tracks = [engine.with_options() for engine in engines]
    audios = [np.asarray(a, np.float32).reshape(-1) for a in audios]
    counts = [track.frames_ready(len(a), fps, final=True) for track, a in zip(tracks, audios, strict=True)]
    runner = engines[0].runner if engines else None
    while True:
        todo = [i for i, track in enumerate(tracks) if track.frames_computed(fps) < counts[i]]
        if not todo:
            break
        for lo in range(0, len(todo), max(1, batch)):
            chunk = todo[lo : lo + max(1, batch)]
            inputs = [tracks[i].window_inputs(audios[i], 0, explicits[i]) for i in chunk]
            answers = split_results(runner(*join_windows(inputs)), len(chunk))
            for i, (prediction, latents) in zip(chunk, answers, strict=True):
                tracks[i].accept_window(prediction, latents)
    return [track.run_frames(a, np.arange(n), fps, e) for track, a, n, e in zip(tracks, audios, counts, explicits,
                                                                                    strict=True)]  # fmt: skip


@dataclass
class NoiseOptions:
    """How a track's noise is made."""

    seed: int = 0
    constant: bool = True
    """One draw reused for every window (the SDK's default); else a fresh draw per window."""


class NoiseSource:
    """The noise of one track: ``[1, steps + 1, frames, D]`` float32 per window."""

    def __init__(self, shape: tuple[int, ...], options: NoiseOptions, cache: dict | None = None) -> None:
        self.shape = shape
        self.options = options
        self._cache = cache if cache is not None else {}
        self.reset()

    def reset(self) -> None:
        """Rewind the generator: the same sequence again."""
        self._rng = np.random.Generator(np.random.Philox(self.options.seed))

    def next(self) -> np.ndarray:
        if self.options.constant:
            key = (self.options.seed, self.shape)
            if key not in self._cache:
                rng = np.random.Generator(np.random.Philox(self.options.seed))
                self._cache[key] = rng.standard_normal(self.shape, dtype=np.float32)
            return self._cache[key]
        return self._rng.standard_normal(self.shape, dtype=np.float32)


@dataclass
class _Track:
    """What one stream carries from window to window."""

    latents: np.ndarray
    noise: NoiseSource
    next_window: int = 0
    rows: np.ndarray | None = None
    """Kept native frames computed and still needed, from ``row_start``."""
    row_start: int = 0
    chunks: list = field(default_factory=list)
    """Kept frames computed after ``rows``, joined to it when read (one copy, not one per window)."""
    pending: int = 0
    """Frames in ``chunks``."""
    total: int = 0
    final: bool = False
    windows_run: int = field(default=0)


class DiffusionEngine:
    """One track of the SDK's diffusion loop for one identity; the interface :class:`Model` and
    :class:`StreamSession` use (``run``, ``run_frames``, ``frames_ready``, ``first_sample``, ``with_options``)."""

    frames_per_pass = 1
    rest_result = None

    def __init__(
        self, runner: Runner, info: DiffusionInfo, identity_index: int = 0, input_strength: float = 1.0,
        noise: NoiseOptions | None = None, noise_cache: dict | None = None,
    ) -> None:  # fmt: skip
        self.runner = runner
        self.info = info
        self.identity_index = int(identity_index)
        self.input_strength = float(input_strength)
        self.noise_options = noise or NoiseOptions()
        self._noise_cache = noise_cache if noise_cache is not None else {}
        built_in = getattr(runner, "folded_seed", None)
        if not getattr(runner, "takes_noise", True) and built_in is not None:
            wanted = self.noise_options
            if not wanted.constant or wanted.seed != built_in:
                raise ValueError(f"this model runs a folded graph with the constant noise of seed {built_in} built "
                                 "in; load it with fold=False (--no-fold) for other noise")  # fmt: skip
        f = info.frames_per_window
        self.native_fps = info.fps
        self.pad_frames = info.padding_left * f // info.buffer_len
        self.identity = np.zeros((1, len(info.identities)), np.float32)
        self.identity[0, self.identity_index] = 1.0
        self.reset()

    # -- track state ----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start the track again: GRU state zero, noise generator rewound, nothing computed."""
        info = self.info
        shape = (1, info.num_diffusion_steps + 1, info.frames_per_window, info.output_size)
        latents = np.zeros((info.num_diffusion_steps, info.num_gru_layers, 1, info.gru_latent_dim), np.float32)
        self.track = _Track(latents, NoiseSource(shape, self.noise_options, self._noise_cache))

    def with_options(
        self, input_strength: float | None = None, frames_per_pass: int | None = None,
        context_frames: int | None = None, noise: NoiseOptions | None = None,
    ) -> DiffusionEngine:  # fmt: skip
        """A fresh track with these settings (``frames_per_pass``/``context_frames`` do not apply: always 1)."""
        strength = self.input_strength if input_strength is None else input_strength
        return DiffusionEngine(self.runner, self.info, self.identity_index, strength, noise or self.noise_options,
                               self._noise_cache)  # fmt: skip

    # -- the frame clock ------------------------------------------------------------------------------------

    def native_count(self, num_samples: int) -> int:
        """Native frames of a finished clip: ceil(3 N / 800) at 60 fps."""
        return num_frames(num_samples, self.native_fps)

    def window_start(self, w: int) -> int:
        return w * self.info.stride - self.info.padding_left

    def window_of(self, n: int) -> int:
        """The window whose kept frames hold native frame ``n``."""
        info = self.info
        return (n + self.pad_frames - info.num_frames_left_truncate) // info.num_frames_center

    def native_available(self, windows: int) -> int:
        """Native frames (from 0) kept by windows ``0 .. windows - 1``."""
        info = self.info
        return max(0, windows * info.num_frames_center - self.pad_frames + info.num_frames_left_truncate)

    def _position(self, k: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
        """Native frame and fraction of output frames ``k``."""
        rate, native = fps_fraction(fps), fps_fraction(self.native_fps)
        num = k * native.numerator * rate.denominator
        den = native.denominator * rate.numerator
        return num // den, (num % den) / den

    @property
    def lookahead_samples(self) -> int:
        """The most audio a kept frame waits for after its own time (750 ms: its window must be complete)."""
        return int(math.ceil(self.info.lookahead_seconds[1] * SAMPLE_RATE))

    def latency_samples(self, fps: float) -> int:
        """The most audio a frame waits for after its own time (the window must be complete)."""
        return int(math.ceil(self.info.lookahead_seconds[1] * SAMPLE_RATE))

    def frames_ready(self, total: int, fps: float, final: bool = False) -> int:
        t = self.track
        t.total, t.final = int(total), bool(final)
        if final:
            return num_frames(total, fps)
        complete = (total - self.window_start(0) - self.info.buffer_len) // self.info.stride + 1
        avail = self.native_available(max(complete, 0))
        if avail < 1:
            return 0
        rate, native = fps_fraction(fps), fps_fraction(self.native_fps)
        # output frame k needs native frame ceil(k * native / fps) <= avail - 1
        last = ((avail - 1) * native.denominator * rate.numerator) // (native.numerator * rate.denominator)
        return int(min(last + 1, num_frames(total, fps)))

    def first_sample(self, end: int, fps: float) -> int:
        return max(0, self.window_start(self.track.next_window))

    # -- running --------------------------------------------------------------------------------------------

    def run(self, audio: np.ndarray, fps: float = 60.0, explicit: ExplicitEmotion = None) -> NetworkOutput:
        """A whole clip on a fresh track (this engine's track is left as it is)."""
        engine = self.with_options()
        audio = np.asarray(audio, np.float32).reshape(-1)
        count = engine.frames_ready(len(audio), fps, final=True)
        if count and hasattr(self.runner, "run_track"):  # all windows known: batch what does not need the GRU
            i0, frac = engine._position(np.array([count - 1]), fps)
            last = min(int(i0[0] + (frac[0] > 0)), engine.native_count(len(audio)) - 1)
            engine._run_windows(engine.window_of(last) + 1, audio, explicit)
        return engine.run_frames(audio, np.arange(count), fps, explicit)

    def _run_windows(self, count: int, audio: np.ndarray, explicit: ExplicitEmotion) -> None:
        """Windows ``0 .. count - 1`` of a fresh track in one batched call; their kept frames become the rows."""
        t = self.track
        windows = np.stack([self.window_audio(w, audio, 0) for w in range(count)])
        emotion = np.stack([explicit_rows(explicit, np.maximum(self.kept_times(w), 0.0)) for w in range(count)])
        noise = [t.noise.next() for _ in range(count)]
        kept, t.latents = self.runner.run_track(windows, self.identity, emotion.astype(np.float32), t.latents, noise)
        flat = kept.reshape(-1, kept.shape[-1])
        start = self.pad_frames - self.info.num_frames_left_truncate  # kept rows before frame 0
        t.rows, t.row_start = flat[start:], 0
        t.next_window = count
        t.windows_run += count

    def run_frames(
        self, audio: np.ndarray, frames: np.ndarray, fps: float, explicit: ExplicitEmotion = None, origin: int = 0
    ) -> NetworkOutput:
        """Output frames ``frames`` (consecutive, continuing the track) from ``audio`` (absolute samples
        ``origin ..``); windows are computed as they become needed."""
        frames = np.asarray(frames, np.int64)
        targets = frame_targets(int(frames[0]), len(frames), fps) if len(frames) else np.zeros(0, np.int64)
        width = self.info.output_size
        if not len(frames):
            return self._output(frames, targets, np.zeros((0, width), np.float32), explicit, fps, audio, origin)
        t = self.track
        total = max(t.total, origin + len(audio))
        native_total = self.native_count(total) if t.final else None
        i0, frac = self._position(frames, fps)
        i1 = i0 + (frac > 0)
        if native_total is not None:
            i1 = np.minimum(i1, native_total - 1)
        self._compute_until(int(i1.max()), audio, origin, explicit)
        rows = self._rows()
        result = rows[i0 - t.row_start]  # a copy; frames between two native ones are blended below
        between = np.nonzero(frac > 0)[0]  # none at 60 or 30 fps (a full-size frame is 355 kB: copy little)
        if len(between):
            low = result[between]
            step = rows[i1[between] - t.row_start] - low
            result[between] = low + step * frac[between, None].astype(np.float32)
        keep = int(i0[-1]) if len(i0) else t.row_start
        if keep > t.row_start:  # rows before the last frame's are never needed again
            t.rows, t.row_start = rows[keep - t.row_start :], keep
        return self._output(frames, targets, result, explicit, fps, audio, origin)

    def _output(self, frames, targets, result, explicit, fps, audio, origin) -> NetworkOutput:
        emotion = explicit_rows(explicit, targets / SAMPLE_RATE)
        span = level_span(int(self.info.lookahead_seconds[0] * SAMPLE_RATE))  # audio every kept frame has
        levels = frame_levels(audio, targets, origin, span)  # for the quiet hold
        return NetworkOutput(frames, targets, result, emotion, self.info.skin_size, self.info.tongue_size, float(fps),
                             levels=levels)  # fmt: skip

    def _compute_until(self, last: int, audio: np.ndarray, origin: int, explicit: ExplicitEmotion) -> None:
        while self._available() <= last:
            prediction, latents = self.runner(*self.window_inputs(audio, origin, explicit))
            self.accept_window(prediction, latents)

    def window_inputs(self, audio: np.ndarray, origin: int, explicit: ExplicitEmotion) -> WindowInputs:
        """The graph's inputs for the track's next window (batch of one): window, identity, emotion, GRU state,
        noise. Run them (alone, or joined with other tracks' by :func:`join_windows`), then :meth:`accept_window`."""
        w, t = self.track.next_window, self.track
        window = self.window_audio(w, audio, origin)[None]
        emotion = explicit_rows(explicit, np.maximum(self.kept_times(w), 0.0))[None].astype(np.float32)
        noise = t.noise.next() if getattr(self.runner, "takes_noise", True) else None  # folded: built in
        return WindowInputs(window, self.identity, emotion, t.latents, noise)

    def accept_window(self, prediction: np.ndarray, latents: np.ndarray) -> None:
        """The network's answer for the next window: carry the GRU state and keep the centre frames needed."""
        info, t = self.info, self.track
        t.latents = np.asarray(latents, np.float32)
        t.windows_run += 1
        lo = 0 if prediction.shape[1] == info.num_frames_center else info.num_frames_left_truncate  # folded: centre
        kept = np.asarray(prediction[0, lo : lo + info.num_frames_center], np.float32)
        first = self.native_available(t.next_window)  # first native frame >= 0 this window keeps
        new = kept[first - (self.native_available(t.next_window + 1) - len(kept)) :]
        if len(new):
            if t.rows is None and not t.chunks:
                t.row_start = first
            t.chunks.append(new)
            t.pending += len(new)
        t.next_window += 1

    def _available(self) -> int:
        """Native frames 0 .. n - 1 known (computed, possibly dropped since); 0 before any."""
        t = self.track
        if t.rows is None and not t.chunks:
            return 0
        return t.row_start + (0 if t.rows is None else len(t.rows)) + t.pending

    def _rows(self) -> np.ndarray:
        """The kept frames from ``row_start``, pending chunks joined in."""
        t = self.track
        if t.chunks:
            t.rows = np.concatenate(([t.rows] if t.rows is not None else []) + t.chunks)
            t.chunks, t.pending = [], 0
        return t.rows

    def frames_computed(self, fps: float) -> int:
        """Output frames (from 0) that the windows run so far can give without running another."""
        t = self.track
        avail = self._available()  # native frames 0 .. avail - 1 are known
        if not avail:
            return 0
        if t.final:
            native_total = self.native_count(t.total)
            if avail >= native_total:
                return num_frames(t.total, fps)
        rate, native = fps_fraction(fps), fps_fraction(self.native_fps)
        last = ((avail - 1) * native.denominator * rate.numerator) // (native.numerator * rate.denominator)
        count = int(last + 1)
        return min(count, num_frames(t.total, fps)) if t.final else count

    def window_audio(self, w: int, audio: np.ndarray, origin: int) -> np.ndarray:
        """Window ``w``'s samples (zero outside what was received), times input_strength."""
        start, length = self.window_start(w), self.info.buffer_len
        out = np.zeros(length, np.float32)
        lo, hi = max(start, origin), min(start + length, origin + len(audio), self.track.total or 1 << 62)
        if hi > lo:
            out[lo - start : hi - start] = audio[lo - origin : hi - origin]
        return out * np.float32(self.input_strength)

    def kept_times(self, w: int) -> np.ndarray:
        """Times (s) of window ``w``'s kept frames (negative before the clip)."""
        info = self.info
        n = np.arange(info.num_frames_center) + w * info.num_frames_center - self.pad_frames
        n = n + info.num_frames_left_truncate
        return np.floor(n * SAMPLE_RATE / self.native_fps) / SAMPLE_RATE
