"""Server assembly and lifecycle: build the model and batcher, serve, drain on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from streaming import __version__
from streaming.server.auth import Credentials
from streaming.server.batcher import Batcher
from streaming.server.legacy_service import (
    LEGACY_SERVICE,
    LegacyInferenceService,
    add_legacy_service,
)
from streaming.server.model import Classifier, load_classifier
from streaming.server.model_versions import ModelSlot, ModelVersions
from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import ConfigError
from streaming.server.server_metrics import ServerMetrics
from streaming.server.stream_service import (
    STREAM_SERVICE,
    StreamClassifierService,
    add_stream_service,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The end of --grace kept to send the statuses of the streams cut off (UNAVAILABLE and where to
# resume): streams are cut off this long before the grace ends, so every stream has the
# server's own status before the process exits.
CUT_OFF_S = 0.5
# How long no new Classify call must have arrived before the drain closes the port.
SETTLE_S = 0.2


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel arguments of the server: message limit, keepalive, calls per connection, window."""
    limit = config.effective_max_message_bytes
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        # A second server on the same port must fail, not silently share it; only the
        # processes of one `serve --processes N` share theirs.
        ("grpc.so_reuseport", 1 if config.shared_port else 0),
        # Ping idle connections: a peer that vanished (power cut, NAT timeout) is found and its
        # streams freed instead of holding their slots for ever.
        ("grpc.keepalive_time_ms", int(config.keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        # Recent gRPC cores time pings out by this argument (default one minute), not the above.
        ("grpc.http2.ping_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_concurrent_streams", config.max_calls_per_connection),
        *receive_window_options(config.receive_window_bytes),
    ]


def receive_window_options(window_bytes: int) -> list[tuple[str, int]]:
    """A fixed HTTP/2 receive window per stream (the bench's echo serves with it too).

    With bandwidth probing gRPC grows each stream's window to tens of MiB and receives that
    much of a stream the server is not reading, outside the memory budget (BENCHMARKS.md,
    session 11).
    """
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window_bytes)]


def exposure_warning(config: ServerConfig) -> str | None:
    """Why listening on ``config.address`` is risky, or ``None`` (loopback, or TLS and tokens)."""
    security = config.security
    if security.tls and security.auth_tokens is not None:
        return None
    host = config.address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost" or host.startswith("unix:"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: assume it is reachable from elsewhere
    missing = " and ".join(
        what
        for what, absent in (
            ("TLS", not security.tls),
            ("tokens", security.auth_tokens is None),
        )
        if absent
    )
    return (
        f"listening on {config.address}, reachable from other machines, without {missing}: "
        "see SECURITY.md"
    )


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
        self._credentials: Credentials | None = None
        self._models: ModelSlot | None = None
        # --model-dir: the version watcher, its thread and its polling task.
        self.model_versions: ModelVersions | None = None
        self._model_thread: ThreadPoolExecutor | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._check_now = asyncio.Event()

    @property
    def classifier(self) -> Classifier:
        """The model served now (it changes when a new version is swapped in)."""
        return self.models.current.classifier

    @property
    def models(self) -> ModelSlot:
        if self._models is None:
            raise RuntimeError("the server has not started")
        return self._models

    @property
    def stream_service(self) -> StreamClassifierService:
        if self._stream_service is None:
            raise RuntimeError("the server has not started")
        return self._stream_service

    @property
    def legacy_service(self) -> LegacyInferenceService:
        if self._legacy_service is None:
            raise RuntimeError("the server has not started")
        return self._legacy_service

    async def start(self) -> None:
        """Load and warm up the model, then listen.

        Raises:
            ConfigError: the address is taken, or a certificate or token file is unusable.
        """
        config = self.config
        # Read the credentials first: a bad file should fail before the model loads.
        self._credentials = credentials = Credentials(config.security)
        loop = asyncio.get_running_loop()
        # Loading TensorFlow and the model takes seconds: keep the loop responsive meanwhile.
        if self._classifier is not None:
            self._models = ModelSlot.single(self._classifier)
        elif config.model.model_dir is not None:
            self.model_versions = ModelVersions(config.model, config.max_batch, self.metrics)
            self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-model-versions")
            self._models = await loop.run_in_executor(
                self._model_thread, self.model_versions.load_first
            )
        else:
            classifier = await loop.run_in_executor(None, load_classifier, config.model)
            self._models = ModelSlot.single(classifier)
        models = self._models
        if self.model_versions is None:
            self.metrics.serving_version(models.current.version)
        description = models.current.description
        # The services bound the streams they open: max_streams (the streaming service) and
        # legacy_max_windows (the old API), so the batcher has no cap of its own.
        self.batcher = Batcher(models, config, self.metrics)
        await self.batcher.start()
        interceptors = [credentials.interceptor] if credentials.interceptor is not None else []
        server = grpc.aio.server(options=grpc_options(config), interceptors=interceptors)
        self._stream_service = StreamClassifierService(
            self.batcher, models, config, credentials, metrics=self.metrics
        )
        self._legacy_service = LegacyInferenceService(
            self.batcher, config, credentials, metrics=self.metrics
        )
        add_stream_service(server, self._stream_service)
        add_legacy_service(server, self._legacy_service)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if config.security.reflection:
            reflection.enable_server_reflection(
                (STREAM_SERVICE, LEGACY_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
                server,
            )
        server_credentials = credentials.server_credentials()
        try:
            if server_credentials is None:
                self.port = server.add_insecure_port(config.address)
            else:
                self.port = server.add_secure_port(config.address, server_credentials)
        except RuntimeError as exc:
            await self.batcher.stop()
            raise ConfigError(f"cannot listen on {config.address}: {exc}") from exc
        self.metrics.set_build_info(
            version=__version__,
            model=description.model_name,
            device=description.device,
            labels=len(description.labels),
        )
        metrics_at = config.metrics_host_port
        if metrics_at is not None:
            try:
                self.metrics_port = self.metrics.start_http_server(*metrics_at)
            except ConfigError:
                await server.stop(None)
                await self.batcher.stop()
                raise
        await server.start()
        self._server = server
        self._legacy_service.start()
        for name in ("", STREAM_SERVICE, LEGACY_SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.model_versions is not None:
            self._poll_task = asyncio.create_task(self._poll_models(), name="sc-model-poll")
        logger.info(
            "listening on %s (port %d, %s%s)",
            config.address,
            self.port,
            "mTLS" if config.security.tls_client_ca else "TLS" if credentials.tls else "plaintext",
            ", tokens" if credentials.interceptor is not None else "",
        )

    async def check_models(self) -> bool:
        """Look at --model-dir now (as SIGHUP does): load, warm up and swap in a new version.

        Returns:
            Whether the served version changed (always False without --model-dir).
        """
        versions = self.model_versions
        if versions is None:
            return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model_thread, versions.check)

    def request_model_check(self) -> None:
        """Check --model-dir soon, on the polling task (SIGHUP; safe from a signal handler)."""
        self._check_now.set()

    async def _poll_models(self) -> None:
        poll_s = self.config.model.model_poll_s
        while True:
            with contextlib.suppress(TimeoutError):  # the poll interval passed
                await asyncio.wait_for(self._check_now.wait(), poll_s if poll_s > 0 else None)
            self._check_now.clear()
            try:
                await self.check_models()
            except Exception:  # a bug in one check must not stop the next ones
                logger.exception("checking the model directory failed")

    def reload(self) -> None:
        """SIGHUP: re-read the credentials and check the model directory."""
        self.reload_credentials()
        self.request_model_check()

    def reload_credentials(self) -> bool:
        """Re-read the token file and certificates (SIGHUP); open streams are not touched.

        Returns:
            Whether the new files were taken; on an error the old ones stay and it is logged.
        """
        if self._credentials is None:
            return False
        try:
            self._credentials.reload()
        except ConfigError as exc:
            logger.error("reload failed, keeping the current credentials: %s", exc)
            return False
        return True

    async def stop(self, grace: float | None = None) -> None:
        """Drain within ``grace`` seconds, whatever the backlog.

        Report NOT_SERVING, refuse new streams, stop reading, and answer what was received;
        when grace runs out (less ``CUT_OFF_S`` to send the statuses), every stream still owed
        answers ends with UNAVAILABLE, and the server closes. Every stream the drain stops or
        refuses carries ``resend-from-seq``: the first seq to send again elsewhere.
        """
        if self._server is None or self.batcher is None:
            return
        grace = self.config.grace_s if grace is None else grace
        deadline = time.monotonic() + grace
        cut_off_after = max(grace - CUT_OFF_S, grace / 2)
        logger.info("shutting down: answering received frames (grace %.1f s)", grace)
        await self._health.enter_graceful_shutdown()
        self.batcher.begin_drain()  # the one draining flag: both services read it
        stream_service, legacy_service = self.stream_service, self.legacy_service
        stream_service.drain()
        try:
            await asyncio.wait_for(self.batcher.wait_idle(), timeout=cut_off_after)
        except TimeoutError:
            ended = stream_service.cut_off()
            logger.warning(
                "grace period over with %d frames unanswered: %d streams told to resend",
                self.batcher.scheduler.pending_count,
                ended,
            )
        legacy_service.close()
        # Streams end by themselves once their last answer (or status) is sent; stop() cancels
        # stragglers such as calls that never sent a config or clients that stopped reading.
        await self._calls_ended(deadline)
        await self._server.stop(grace=CUT_OFF_S)
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
        if self._model_thread is not None:
            self._model_thread.shutdown(wait=False, cancel_futures=True)
        await self.batcher.stop()
        # Last, so a final scrape during the drain still sees the answered frames.
        self.metrics.stop()
        self._server = None
        self._stopped.set()
        logger.info("stopped")

    async def _calls_ended(self, deadline: float) -> None:
        """Wait (until ``deadline``) for every Classify call to end, and for new ones to stop
        arriving for ``SETTLE_S``: a call gRPC took just before now reaches its handler a moment
        later, and is then refused with a resume point instead of cancelled by ``stop()``."""
        service = self.stream_service
        while True:
            remaining = max(deadline - time.monotonic(), CUT_OFF_S)
            try:
                await asyncio.wait_for(service.wait_calls_ended(), timeout=remaining)
            except TimeoutError:
                logger.warning("%d streams still open at the end of the grace", service.open_calls)
                return
            settle = SETTLE_S - service.quiet_s
            if settle <= 0 or time.monotonic() + settle > deadline - CUT_OFF_S:
                return
            await asyncio.sleep(settle)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def serve(
    config: ServerConfig, classifier: Classifier | None = None, on_started: Any = None
) -> None:
    """Run until SIGINT or SIGTERM, then drain and return; SIGHUP reloads the credentials and
    checks the model directory."""
    server = StreamServer(config, classifier)
    await server.start()
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    # The banner says "ready": a supervisor may signal at once, so the handlers come first.
    if on_started is not None:
        on_started(server)
    try:
        await stop_requested.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
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
