"""facecast: speech to 3D facial animation, an open implementation of NVIDIA Audio2Face-3D.

``facecast.load_model(path=None)`` opens a model (the built-in one by default) and ``Model.animate(audio)`` turns
speech into an :class:`~facecast.animation.Animation` of ARKit weights. Both are imported on first use, so the
command line starts quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["AnimationOptions", "Model", "load_model", "__version__"]

if TYPE_CHECKING:
    from facecast.model import AnimationOptions, Model, load_model


def __getattr__(name: str) -> Any:
    if name in ("AnimationOptions", "Model", "load_model"):
        from facecast import model

        return getattr(model, name)
    raise AttributeError(f"module 'facecast' has no attribute {name!r}")
