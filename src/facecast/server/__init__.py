"""An ACE-compatible Audio2Face-3D gRPC server: ``A2FControllerService.ProcessAudioStream`` on facecast models.

Needs the ``nvidia-audio2face-3d``, ``nvidia-ace``, ``grpcio`` and ``grpcio-health-checking`` packages::

    from facecast.server import ServerConfig, serve

    server = serve(ServerConfig(port=52000, model="path/to/pack"))
    ...
    server.stop()
"""

from facecast.server.app import RunningServer, serve
from facecast.server.config import ConfigError, ServerConfig

__all__ = ["ConfigError", "RunningServer", "ServerConfig", "serve"]
