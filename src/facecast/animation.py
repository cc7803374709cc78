"""The result of animating a clip: per-frame ARKit weights, tongue weights, jaw and eye transforms, emotion."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecast.infer.engine import NetworkOutput


@dataclass
class Animation:
    """Frames at ``fps`` starting at t = 0; every array has one row per frame.

    ``skin_weights`` are the blendshape weights in ``skin_names`` order (Apple ARKit camelCase for the 52 ARKit
    poses), ``tongue_weights`` likewise for ``tongue_names``. ``jaw`` holds rigid 4x4 transforms of the lower
    teeth (column vectors; :attr:`jaw_column_major` flattens them as the SDK does), ``eyes`` the SDK's 6 floats per
    frame (right x, right y, 0, left x, left y, 0; degrees). ``emotion`` is the explicit emotion the network saw.
    """

    fps: float
    times: np.ndarray
    skin_names: tuple[str, ...]
    skin_weights: np.ndarray | None
    tongue_names: tuple[str, ...]
    tongue_weights: np.ndarray | None
    jaw: np.ndarray
    eyes: np.ndarray
    emotion: np.ndarray
    blink: np.ndarray
    raw: NetworkOutput
    skin_geometry: np.ndarray | None = None
    tongue_geometry: np.ndarray | None = None
    actor: str = ""
    random_weights: bool = False
    audio: np.ndarray | None = field(default=None, repr=False)
    """The 16 kHz mono audio that was animated, when known (for video and echo)."""

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        return float(len(self) / self.fps)

    @property
    def jaw_column_major(self) -> np.ndarray:
        """[N, 16] column-major jaw transforms, as the SDK reports them."""
        return np.ascontiguousarray(self.jaw.transpose(0, 2, 1)).reshape(len(self), 16)

    def weights(self, name: str) -> np.ndarray:
        """The curve of one skin or tongue pose by name."""
        if self.skin_weights is not None and name in self.skin_names:
            return self.skin_weights[:, self.skin_names.index(name)]
        if self.tongue_weights is not None and name in self.tongue_names:
            return self.tongue_weights[:, self.tongue_names.index(name)]
        raise KeyError(f"no pose named {name!r}")

    @classmethod
    def concatenate(cls, parts: list[Animation]) -> Animation:
        """Join consecutive pieces of one stream (as returned by an animation stream's push/close)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]

        def cat(name: str):
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else np.concatenate(values)

        return cls(
            fps=first.fps,
            times=cat("times"),
            skin_names=first.skin_names,
            skin_weights=cat("skin_weights"),
            tongue_names=first.tongue_names,
            tongue_weights=cat("tongue_weights"),
            jaw=cat("jaw"),
            eyes=cat("eyes"),
            emotion=cat("emotion"),
            blink=cat("blink"),
            raw=NetworkOutput.concatenate([p.raw for p in parts], first.raw),
            skin_geometry=cat("skin_geometry"),
            tongue_geometry=cat("tongue_geometry"),
            actor=first.actor,
            random_weights=first.random_weights,
            audio=cat("audio"),
        )
