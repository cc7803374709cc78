"""Run the viewer: HTTP pages and the ``/ws`` WebSocket on one port, on an event loop in a background thread.

Built on ``websockets`` (its ``process_request`` hook answers plain GET requests; ``/ws`` upgrades). Blocking
work (model calls, file reads) runs on a small thread pool so the loop stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from facecast.characters.character import Character
from facecast.model import Model
from facecast.web.app import HttpResponse, ViewerApp
from facecast.web.live import MAX_UPLOAD_BYTES, LiveSession

log = logging.getLogger("facecast.web")

WS_PATH = "/ws"


def _require_websockets():
    try:
        from websockets.asyncio.server import serve
    except ImportError:
        raise RuntimeError('the web viewer needs websockets 13 or newer: pip install "facecast[web]"') from None
    return serve


def _same_origin(headers: Any) -> bool:
    """A browser's WebSocket must come from a page of this server (Origin matches Host); tools send no Origin."""
    origin = headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == headers.get("Host", "")


class ViewerServer:
    """The viewer's server; :meth:`start` binds and returns once it listens, :meth:`stop` shuts it down."""

    def __init__(self, app: ViewerApp, host: str = "127.0.0.1", port: int = 0, workers: int = 4) -> None:
        self.app = app
        self.host = host
        self.port = int(port)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facecast-web")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> ViewerServer:
        """Bind and serve in a background thread; raises if the port cannot be bound."""
        if self._thread is not None:
            return self
        serve = _require_websockets()
        self._thread = threading.Thread(target=self._main, args=(serve,), name="facecast-web", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"cannot serve the viewer on {self.host}:{self.port}: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then the worker threads."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=15)
        self._thread = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    def wait(self) -> None:
        """Block until the server stops (for the command line)."""
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ViewerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- loop thread ----------------------------------------------------------------------------------

    def _main(self, serve) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve(serve))
        except BaseException as exc:  # reported to start() when binding failed
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("viewer server failed")
        finally:
            self._ready.set()
            self._loop.close()

    async def _serve(self, serve) -> None:
        self._stopped = asyncio.Event()
        server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_UPLOAD_BYTES + 1024,
            open_timeout=300,  # /animation of a long clip is answered inside the handshake hook
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            await server.wait_closed()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

    async def run(self, fn, *args: Any) -> Any:
        """Run blocking ``fn(*args)`` on the worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _process_request(self, connection, request):
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = urlsplit(request.path).path
        if path == WS_PATH:
            if not _same_origin(request.headers):
                return connection.respond(403, "cross-origin WebSocket refused\n")
            return None  # go on with the WebSocket handshake
        try:
            answer = await self.run(self.app.handle, request.path)
        except Exception as exc:  # a bug, not a user error: keep serving
            log.exception("request %s failed", request.path)
            answer = HttpResponse.error(500, f"internal error: {exc}")
        headers = Headers(
            [
                ("Content-Type", answer.content_type),
                ("Content-Length", str(len(answer.body))),
                ("Connection", "close"),
                *answer.headers.items(),
            ]
        )
        return Response(answer.status, HTTPStatus(answer.status).phrase, headers, answer.body)

    async def _handler(self, websocket) -> None:
        from websockets.exceptions import ConnectionClosed

        session = LiveSession(self.app, websocket.send, self.run)
        try:
            async for message in websocket:
                try:
                    await session.on_message(message)
                except ConnectionClosed:
                    raise
                except Exception as exc:
                    log.exception("stream message failed")
                    await session.error(f"internal error: {exc}")
        except ConnectionClosed:
            pass
        finally:
            await session.close()


def serve_http(
    model: Model,
    host: str = "127.0.0.1",
    port: int = 0,
    folder: str | os.PathLike | None = None,
    fps: float = 30.0,
    character: Character | None = None,
) -> ViewerServer:
    """Start the browser viewer for ``model``; returns the running server (``.port``, ``.url``, ``.stop()``).

    ``folder`` is where ``/animation?file=`` and ``/audio?file=`` may read (nothing outside it); ``port=0``
    picks a free port. The default character is built (and cached) on the first page load.
    """
    app = ViewerApp(model, Path(folder) if folder is not None else None, character, fps)
    return ViewerServer(app, host, port).start()
