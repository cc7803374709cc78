"""Start and stop the gRPC server: the event-loop thread, the shared scheduler, TLS, auth and health."""

from __future__ import annotations

import asyncio
import logging
import threading

import grpc
from nvidia_audio2face_3d import a2x_export_config_pb2_grpc

from facecast.model import Model, builtin_pack, load_model
from facecast.pack import ModelPack, load_pack
from facecast.pack_v3 import is_diffusion_folder
from facecast.server.config import ConfigError, ServerConfig
from facecast.server.grpc_service import A2FControllerServicer, BearerTokenInterceptor, ExportConfigServicer
from facecast.server.guard import Drainer
from facecast.server.health import SERVING, HealthServicer, add_health_servicer_to_server
from facecast.server.scheduler import BatchScheduler
from facecast.server.session_v3 import join_jobs, split_answers
from facecast.server.tls import TlsFiles, check_tls_files
from facecast.server.wire import add_controller

log = logging.getLogger("facecast.server")

SERVICE_NAMES = (
    "nvidia_ace.services.a2f_controller.v1.A2FControllerService",
    "nvidia_ace.services.a2x_export_config.v1.A2XExportConfigService",
)


class _SharedLoop:
    """The one asyncio loop thread every server in this process runs on (grpc.aio's poller serves one loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def acquire(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._users == 0:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._run, args=(self._loop,), name="facecast-grpc", daemon=True)
                self._thread.start()
            self._users += 1
            return self._loop

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


_LOOP = _SharedLoop()


def server_frames_per_pass(cfg: ServerConfig, pack: ModelPack) -> int | None:
    """The server's frames per pass, capped at what the pack's chunk network was trained for."""
    if cfg.frames_per_pass is None:
        return None
    return max(1, min(cfg.frames_per_pass, pack.chunk_frames or 1))


def server_context_frames(cfg: ServerConfig, pack: ModelPack) -> int | None:
    """The server's context frames: none for a pack without a chunk network."""
    if not pack.chunk_frames:
        return 0
    return cfg.context_frames


def _load(cfg: ServerConfig) -> Model:
    """The configured model: a v2.3 pack (or the built-in model) or a v3.0 folder."""
    if cfg.model is not None and is_diffusion_folder(cfg.model):
        return load_model(cfg.model, device=cfg.device, backend=cfg.backend, threads=cfg.threads,
                          precision=cfg.precision, identity=cfg.identity, fold=cfg.fold, noise_seed=cfg.noise_seed,
                          constant_noise=cfg.constant_noise)  # fmt: skip
    if cfg.identity is not None or cfg.fold or cfg.noise_seed or not cfg.constant_noise:
        raise ConfigError("identity, fold and the noise settings apply to v3.0 diffusion models only")
    pack = load_pack(cfg.model if cfg.model is not None else builtin_pack())
    return load_model(pack, device=cfg.device, backend=cfg.backend, threads=cfg.threads, batch_size=cfg.max_batch,
                      precision=cfg.precision, frames_per_pass=server_frames_per_pass(cfg, pack),
                      context_frames=server_context_frames(cfg, pack))  # fmt: skip


def _scheduler(model: Model, cfg: ServerConfig) -> BatchScheduler:
    """One scheduler for every stream: window rows (or blocks) batched, or v3.0 windows of many GRU tracks."""
    wait = cfg.batch_wait_ms / 1000.0
    if model.is_diffusion:
        return BatchScheduler(model.backend, cfg.max_batch or 8, wait, join=join_jobs, split=split_answers)
    blocks = model.engine.uses_blocks
    run = model.backend.run_chunks if blocks else model.backend.run
    max_batch = cfg.max_batch or (64 if blocks else 32)
    return BatchScheduler(run, max(1, max_batch // model.frames_per_pass), wait)


class RunningServer:
    """A gRPC server on the process's gRPC event-loop thread, with one model and one batching scheduler.

    Use :func:`serve` (or :meth:`start`), then :meth:`stop`; also a context manager.
    """

    def __init__(self, config: ServerConfig, model: Model | None = None) -> None:
        self.config = config.validate()
        self.model = model
        self.port: int | None = None
        self.scheduler: BatchScheduler | None = None
        self.controller: A2FControllerServicer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._health: HealthServicer | None = None
        self._stopped = threading.Event()
        self._tls: TlsFiles | None = None

    @property
    def address(self) -> str:
        """``host:port`` to dial."""
        host = self.config.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{host}:{self.port}"

    @property
    def active_streams(self) -> int:
        return self.controller.active if self.controller else 0

    def start(self) -> RunningServer:
        """Load the model (unless given), start the scheduler and the server; returns ``self`` once serving."""
        cfg = self.config
        token = cfg.resolved_token()
        self._tls = check_tls_files(cfg)  # before the model loads: a bad certificate is one clear line, at once
        if self.model is None:
            self.model = _load(cfg)
        self.scheduler = _scheduler(self.model, cfg).start()
        self._loop = _LOOP.acquire()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._start(token), self._loop).result()
        except BaseException:
            _LOOP.release()
            self._loop = None
            self.scheduler.stop()
            raise
        log.info("serving on %s", self.address)
        return self

    async def _start(self, token: str | None) -> int:
        cfg = self.config
        options = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        drainer = Drainer()
        interceptors = [BearerTokenInterceptor(token, drainer)] if token else []
        server = grpc.aio.server(options=options, interceptors=interceptors)
        self.controller = A2FControllerServicer(self.model, self.scheduler, cfg, drainer)
        add_controller(self.controller, server)
        a2x_export_config_pb2_grpc.add_A2XExportConfigServiceServicer_to_server(
            ExportConfigServicer(self.model, cfg), server
        )
        self._health = HealthServicer()
        add_health_servicer_to_server(self._health, server)
        address = f"{cfg.host}:{cfg.port}" if ":" not in cfg.host else f"[{cfg.host.strip('[]')}]:{cfg.port}"
        try:
            if self._tls is not None:
                port = server.add_secure_port(address, _credentials(self._tls))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc}") from None
        if not port:
            raise ConfigError(f"cannot listen on {address} (port in use or address not local?)")
        await server.start()
        for name in ("",) + SERVICE_NAMES:
            await self._health.set(name, SERVING)
        self._server = server
        return port

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving (calls in progress get ``grace`` seconds), then the scheduler. Safe to call twice."""
        if self._loop is None or self._stopped.is_set():
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._stop(grace), self._loop).result()
        _LOOP.release()
        if self.scheduler is not None:
            self.scheduler.stop()
        self._stopped.set()

    async def _stop(self, grace: float) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has run (from another thread or a signal handler); False on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> RunningServer:
        return self if self.port is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    ca = tls.client_ca
    return grpc.ssl_server_credentials([(tls.key, tls.cert)], root_certificates=ca, require_client_auth=ca is not None)


def serve(config: ServerConfig | None = None, model: Model | None = None) -> RunningServer:
    """Start an ACE-compatible Audio2Face-3D gRPC server and return its handle (call ``.stop()`` when done)."""
    return RunningServer(config or ServerConfig(), model).start()
