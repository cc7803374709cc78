"""An ACE-compatible Audio2Face-3D gRPC server: ``A2FControllerService.ProcessAudioStream`` on facecast models.

Needs the ``nvidia-audio2face-3d``, ``nvidia-ace`` and ``grpcio`` packages (``pip install "facecast[server]"``;
the standard gRPC health service is facecast's own, :mod:`facecast.server.health`)::

    from facecast.server import ServerConfig, serve

    server = serve(ServerConfig(port=52000, model="path/to/pack"))
    ...
    server.stop()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facecast.server.app import RunningServer, serve
    from facecast.server.config import ConfigError, ServerConfig

__all__ = ["ConfigError", "RunningServer", "ServerConfig", "serve"]


def __getattr__(name: str) -> Any:
    """Import on first use, so ``facecast.server.config`` loads without gRPC installed."""
    if name in ("RunningServer", "serve"):
        from facecast.server import app

        return getattr(app, name)
    if name in ("ConfigError", "ServerConfig"):
        from facecast.server import config

        return getattr(config, name)
    raise AttributeError(f"module 'facecast.server' has no attribute {name!r}")
