"""The live browser viewer: an animated head in WebGL2, animation files, uploads and live WebSocket streams.

from facecast import load_model
from facecast.web import serve_http
server = serve_http(load_model(), port=8080, folder="out")   # open server.url; server.stop() ends it
"""

from __future__ import annotations

from facecast.web.app import HttpResponse, ViewerApp
from facecast.web.server import ViewerServer, serve_http

__all__ = ["HttpResponse", "ViewerApp", "ViewerServer", "serve_http"]
