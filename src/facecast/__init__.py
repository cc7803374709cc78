"""facecast: speech to 3D facial animation, an open implementation of NVIDIA Audio2Face-3D."""

from .model import Model, load_model

__all__ = ["Model", "load_model", "__version__"]
__version__ = "0.1.0"
