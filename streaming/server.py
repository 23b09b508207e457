"""Server assembly and lifecycle: build the model and batcher, serve, drain on shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from client.api.v1 import stream_classifier_pb2, stream_classifier_pb2_grpc
from streaming import __version__
from streaming.batcher import Batcher
from streaming.config import ServerConfig
from streaming.errors import ConfigError
from streaming.metrics import ServerMetrics
from streaming.model import Classifier, load_classifier
from streaming.service import LegacyInferenceService, StreamClassifierService

logger = logging.getLogger(__name__)

T = TypeVar("T")

STREAM_SERVICE = stream_classifier_pb2.DESCRIPTOR.services_by_name["StreamClassifier"].full_name
LEGACY_SERVICE = sc_service_pb2.DESCRIPTOR.services_by_name["sc_service"].full_name


class StreamServer:
    """The gRPC server: streaming API, old unary API, health and reflection on one port.

    Example:
        >>> server = StreamServer(ServerConfig(address="127.0.0.1:0"))   # doctest: +SKIP
        >>> await server.start(); print(server.port)                    # doctest: +SKIP
        >>> await server.stop()                                         # doctest: +SKIP
    """

    def __init__(self, config: ServerConfig, classifier: Classifier | None = None) -> None:
        self.config = config
        self._classifier = classifier
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._stopped = asyncio.Event()
        self.port = 0
        self.batcher: Batcher | None = None
        self._stream_service: StreamClassifierService | None = None
        self._legacy_service: LegacyInferenceService | None = None
        self.metrics = ServerMetrics()
        self.metrics_port: int | None = None

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            raise RuntimeError("the server has not started")
        return self._classifier

    async def start(self) -> None:
        """Load and warm up the model, then listen. Raises ConfigError when the address is taken."""
        loop = asyncio.get_running_loop()
        if self._classifier is None:
            # Loading TensorFlow and the model takes seconds: keep the loop responsive meanwhile.
            self._classifier = await loop.run_in_executor(None, load_classifier, self.config.model)
        description = self._classifier.description
        self.batcher = Batcher(self._classifier, self.config, self.metrics)
        await self.batcher.start()
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                # A second server on the same port must fail, not silently share it.
                ("grpc.so_reuseport", 0),
            ]
        )
        self._stream_service = StreamClassifierService(
            self.batcher, description, self.config, self.metrics
        )
        self._legacy_service = LegacyInferenceService(self.batcher, self.config)
        stream_classifier_pb2_grpc.add_StreamClassifierServicer_to_server(
            self._stream_service, server
        )
        sc_service_pb2_grpc.add_sc_serviceServicer_to_server(self._legacy_service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (STREAM_SERVICE, LEGACY_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            self.port = server.add_insecure_port(self.config.address)
        except RuntimeError as exc:
            await self.batcher.stop()
            raise ConfigError(f"cannot listen on {self.config.address}: {exc}") from exc
        self.metrics.set_build_info(
            version=__version__,
            model=description.model_name,
            device=description.device,
            labels=len(description.labels),
        )
        metrics_at = self.config.metrics_host_port
        if metrics_at is not None:
            try:
                self.metrics_port = self.metrics.start_http_server(*metrics_at)
            except ConfigError:
                await server.stop(None)
                await self.batcher.stop()
                raise
        await server.start()
        self._server = server
        for name in ("", STREAM_SERVICE, LEGACY_SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("listening on %s (port %d)", self.config.address, self.port)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING, refuse new streams, answer what was received, then close."""
        if self._server is None or self.batcher is None:
            return
        grace = self.config.grace_s if grace is None else grace
        logger.info("shutting down: answering received frames (grace %.1f s)", grace)
        await self._health.enter_graceful_shutdown()
        self.batcher.begin_drain()
        assert self._stream_service is not None and self._legacy_service is not None
        self._stream_service.drain()
        try:
            await asyncio.wait_for(self.batcher.wait_idle(), timeout=grace)
        except TimeoutError:
            logger.warning(
                "grace period over with %d frames unanswered", self.batcher.pending_count
            )
        # Streams end by themselves once their last answer is sent; stop() cancels stragglers.
        await self._server.stop(grace=min(grace, 1.0) if grace else None)
        self._legacy_service.close()
        await self.batcher.stop()
        # Last, so a final scrape during the drain still sees the answered frames.
        self.metrics.stop()
        self._server = None
        self._stopped.set()
        logger.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def serve(
    config: ServerConfig, classifier: Classifier | None = None, on_started: Any = None
) -> None:
    """Run until SIGINT or SIGTERM, then drain and return."""
    server = StreamServer(config, classifier)
    await server.start()
    if on_started is not None:
        on_started(server)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await stop_requested.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await server.stop()


class BackgroundServer:
    """A server running on its own event loop in a thread: for tests, notebooks and benchmarks.

    Example:
        >>> with BackgroundServer(ServerConfig(address="127.0.0.1:0")) as running:   # doctest: +SKIP
        ...     print(running.address)
    """

    def __init__(self, config: ServerConfig, classifier: Classifier | None = None) -> None:
        self.server = StreamServer(config, classifier)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sc-server", daemon=True
        )

    @property
    def config(self) -> ServerConfig:
        return self.server.config

    @property
    def address(self) -> str:
        host = self.config.address.rsplit(":", 1)[0]
        host = "127.0.0.1" if host in ("[::]", "0.0.0.0", "") else host
        return f"{host}:{self.server.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, timeout: float = 120.0) -> BackgroundServer:
        self._thread.start()
        try:
            self.call(self.server.start(), timeout)
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self, grace: float | None = None, timeout: float = 60.0) -> None:
        if self._thread.is_alive():
            try:
                self.call(self.server.stop(grace), timeout)
            finally:
                self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
