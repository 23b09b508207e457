"""The old unary ``sc_service`` API's servicer: a batch of RGB images per call, over the batcher.

Each (client id, image position) is a LOSSLESS stream of the batcher (a "window"), so old
clients get the same batching, windows and budgets as streaming ones.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from streaming.server.auth import Credentials
from streaming.server.batcher import Batcher, ServerDraining
from streaming.server.logsafe import shown
from streaming.server.serve_config import DEFAULT_MAX_FRAME_PIXELS, ServerConfig
from streaming.server.server_errors import FrameRejected, StreamingError
from streaming.server.server_metrics import LegacyOutcome, ServerMetrics
from streaming.server.server_values import (
    UNCONFIGURED,
    Delivery,
    Encoding,
    FrameData,
    FrameResult,
    StatusCode,
    StreamSettings,
)
from streaming.server.stream_service import abort, read_first_message, refuse, register
from streaming.server.stream_state import StreamState
from streaming.server.wire import Undecodable, safe_parser

logger = logging.getLogger(__name__)

LEGACY_SERVICE = sc_service_pb2.DESCRIPTOR.services_by_name["sc_service"].full_name

# An answer ready with less of the caller's deadline left is not sent (see ``inference``).
_TOO_LATE_S = 0.001

# "float32", "<f8", "uint16": longer strings are not dtypes the old client sent.
_MAX_DTYPE_CHARS = 16


class TooManyWindows(StreamingError):
    """All ``legacy_max_windows`` old-API windows are in use; answered RESOURCE_EXHAUSTED."""


@dataclass(eq=False)
class _LegacyWindow:
    """One image position of an old-API client: a LOSSLESS stream in the batcher."""

    batcher: Batcher
    stream: StreamState
    # Answers to frames of earlier calls not taken yet (those calls timed out or were cancelled).
    unread: int = 0

    async def answer(self, seq: int | None) -> FrameResult | None:
        """The answer to frame ``seq``, skipping older answers; ``None`` once the window closed.

        With ``seq=None``, only takes the answers still owed to earlier calls.
        """
        while self.unread or seq is not None:
            result = await self.batcher.next_result(self.stream)
            if result is None:
                return None
            self.unread -= 1
            if seq is not None and result.seq == seq:
                return result
        return None


@dataclass(eq=False)
class _LegacyClient:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    windows: list[_LegacyWindow] = field(default_factory=list)
    last_used: float = field(default_factory=time.monotonic)
    seq: int = 0


_LEGACY_OUTCOMES = {
    grpc.StatusCode.INVALID_ARGUMENT: LegacyOutcome.BAD_REQUEST,
    grpc.StatusCode.UNAVAILABLE: LegacyOutcome.REFUSED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LegacyOutcome.REFUSED,
}


class LegacyInferenceService(sc_service_pb2_grpc.sc_serviceServicer):
    """The old unary API: a batch of RGB images per call, one window per (client id, position).

    Windows are bounded on their own (``legacy_max_windows``), apart from ``max_streams``, so
    old clients cannot take the slots of streaming clients; idle ones are freed on a timer.
    """

    def __init__(
        self,
        batcher: Batcher,
        config: ServerConfig,
        credentials: Credentials | None = None,
        *,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._batcher = batcher
        self._config = config
        self._credentials = credentials
        self._metrics = metrics or ServerMetrics()
        self._clients: dict[str, _LegacyClient] = {}
        self._window_count = 0
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def window_count(self) -> int:
        return self._window_count

    def start(self) -> None:
        """Start freeing idle windows on a timer (needs the running event loop)."""
        self._sweeper = asyncio.create_task(self._sweep(), name="sc-legacy-sweeper")

    async def _sweep(self) -> None:
        period = min(max(self._config.legacy_idle_s / 2, 0.05), 30.0)
        while True:
            await asyncio.sleep(period)
            self._forget_idle()

    async def inference(
        self,
        request_iterator: AsyncIterator[sc_service_pb2.server_input | Undecodable],
        context: grpc.aio.ServicerContext,
    ) -> sc_service_pb2.server_output:
        """The old unary method, served as a client-streaming one (the same on the wire) so
        that its request is read only when the byte budget has room for it."""
        try:
            reply = await self._inference(context)
            remaining = context.time_remaining()
            if remaining is not None and remaining < _TOO_LATE_S:
                # The caller's deadline has passed: gRPC can no longer send the answer, and
                # would log the failed send as an error with a traceback when it loses the race
                # with the cancellation. Ended as a deadline ends a call that is still waiting.
                raise asyncio.CancelledError
        except BaseException:
            self._metrics.legacy_call(_LEGACY_OUTCOMES.get(context.code(), LegacyOutcome.ERROR))
            raise
        self._metrics.legacy_call(LegacyOutcome.OK)
        return reply

    async def _inference(self, context: grpc.aio.ServicerContext) -> sc_service_pb2.server_output:
        batcher = self._batcher
        try:
            # The request's room in the byte budget, from before it is read until its images
            # are queued (and counted in their windows).
            reading = batcher.open_stream(UNCONFIGURED, context.peer())
        except ServerDraining as exc:
            await refuse(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        try:
            return await self._answer(await self._read_request(context, reading), reading, context)
        finally:
            batcher.close_stream(reading)

    async def _read_request(
        self, context: grpc.aio.ServicerContext, reading: StreamState
    ) -> sc_service_pb2.server_input:
        """The call's request, asked of gRPC once the budget has room for the largest message
        accepted (gRPC takes all of a message off the wire once asked, before any handler of
        a unary method would run: many large calls at once were outside the budget)."""
        batcher = self._batcher
        request = await read_first_message(
            batcher, context, reading, self._config.config_timeout_s, "request"
        )
        if request is grpc.aio.EOF:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the call sent no request")
        if isinstance(request, Undecodable):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        # Its images count instead of the reservation (until they are queued): no longer a
        # read waiting for its message, which waiting readers could take for an idle one.
        batcher.received(reading, len(request.imgs))
        return request

    async def _answer(
        self,
        request: sc_service_pb2.server_input,
        reading: StreamState,
        context: grpc.aio.ServicerContext,
    ) -> sc_service_pb2.server_output:
        config = self._config
        client_id = request.client_id
        if len(client_id) > config.max_name_chars:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"client_id has {len(client_id)} characters; at most {config.max_name_chars} are accepted",
            )
        try:
            images = legacy_images(
                request, config.max_frame_side, config.max_frame_pixels, config.legacy_max_images
            )
        except FrameRejected as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._forget_idle()  # also between timer ticks, so a call never sees stale windows
        client = self._clients.setdefault(client_id, _LegacyClient())
        async with client.lock:
            client.last_used = time.monotonic()
            await self._grow(client_id, client, len(images), context)
            client.seq += 1
            seq = client.seq
            windows = client.windows[: len(images)]
            for window, image in zip(windows, images, strict=True):
                # Answers owed to a call that timed out are taken first, so this call's
                # answers are its own and the window's buffer has room.
                await window.answer(None)
                height, width, channels = image.shape
                frame = FrameData(
                    seq, Encoding.RAW_RGB, width, height, channels, image.reshape(-1).data
                )
                await self._batcher.submit(window.stream, frame)
                window.unread += 1
            self._batcher.close_stream(reading)  # its images count in their windows now
            results = [await window.answer(seq) for window in windows]
            client.last_used = time.monotonic()
        labels: list[str] = []
        scores: list[float] = []
        for position, result in enumerate(results):
            if result is None:
                await abort(
                    context, grpc.StatusCode.UNAVAILABLE, "the server stopped before answering"
                )
            if result.error is not None:
                code = (
                    grpc.StatusCode.INVALID_ARGUMENT
                    if result.error.code == StatusCode.INVALID_ARGUMENT
                    else grpc.StatusCode.INTERNAL
                )
                await abort(context, code, f"image {position}: {result.error.message}")
            labels.append(result.label)
            scores.append(result.score)
        # The old client decodes labels as '<U1' characters and scores with the sent dtype.
        probabilities = np.asarray(scores, dtype=np.float32).reshape(-1, 1)
        return sc_service_pb2.server_output(
            stream_classification=np.asarray(
                labels, dtype=f"<U{max(1, *map(len, labels))}"
            ).tobytes(),
            probabilities=probabilities.tobytes(),
            data_type="float32",
        )

    async def _grow(
        self, client_id: str, client: _LegacyClient, count: int, context: grpc.aio.ServicerContext
    ) -> None:
        """Give ``client`` at least ``count`` windows, freeing least recently used ones if needed."""
        missing = count - len(client.windows)
        if missing <= 0:
            return
        limit = self._config.legacy_max_windows
        if self._window_count + missing > limit:
            self._free_least_recent(self._window_count + missing - limit, keep=client)
        try:
            if self._window_count + missing > limit:
                raise TooManyWindows(
                    f"all {limit} old-API windows are in use (--legacy-max-windows)"
                )
            for _ in range(missing):
                settings = StreamSettings(
                    client_id=client_id,
                    source=f"legacy:{len(client.windows)}",
                    window=self._config.window,
                    delivery=Delivery.LOSSLESS,
                    top_k=1,
                )
                client.windows.append(
                    _LegacyWindow(self._batcher, self._batcher.open_stream(settings))
                )
                self._window_count += 1
        except (ServerDraining, TooManyWindows) as exc:
            if not client.windows:  # a refused client leaves nothing behind
                self._clients.pop(client_id, None)
            code = (
                grpc.StatusCode.UNAVAILABLE
                if isinstance(exc, ServerDraining)
                else grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            logger.warning("old-API client %s refused: %s", shown(client_id), exc)
            await abort(context, code, str(exc))

    def _free_least_recent(self, needed: int, keep: _LegacyClient) -> None:
        freed = 0
        for client_id, client in sorted(self._clients.items(), key=lambda kv: kv[1].last_used):
            if freed >= needed:
                break
            if client is keep or client.lock.locked():
                continue
            freed += len(client.windows)
            self._drop(client_id)

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - self._config.legacy_idle_s
        for client_id in [
            k for k, c in self._clients.items() if c.last_used < cutoff and not c.lock.locked()
        ]:
            self._drop(client_id)

    def _drop(self, client_id: str) -> None:
        client = self._clients.pop(client_id)
        for window in client.windows:
            self._batcher.close_stream(window.stream)
        self._window_count -= len(client.windows)
        logger.debug("old-API client %s forgotten", shown(client_id))

    def close(self) -> None:
        """Stop the timer and free every window; calls still waiting end with UNAVAILABLE."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client_id in list(self._clients):
            self._drop(client_id)


def add_legacy_service(server: grpc.aio.Server, service: LegacyInferenceService) -> None:
    """Register the old API, with a request parser that never raises (see ``Undecodable``)."""
    register(
        server,
        LEGACY_SERVICE,
        {
            # Unary for clients: one message each way. Registered as client-streaming so the
            # handler decides when the request is read (see ``_read_request``).
            "inference": grpc.stream_unary_rpc_method_handler(
                service.inference,
                request_deserializer=safe_parser(sc_service_pb2.server_input),
                response_serializer=sc_service_pb2.server_output.SerializeToString,
            ),
        },
    )


def legacy_images(
    request: sc_service_pb2.server_input,
    max_side: int,
    max_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    max_images: int = 64,
) -> list[np.ndarray]:
    """Rebuild the old client's ``np.stack`` of RGB images (shape batch, width, height, channel).

    The old client put the array's shape in that order, so "width" carries the rows.

    Raises:
        FrameRejected: the request is malformed or over a limit (answered INVALID_ARGUMENT).
    """
    dims = (request.batch, request.width, request.height, request.channel)
    if min(dims) <= 0:
        raise FrameRejected(f"batch, width, height and channel must be > 0, got {dims}")
    if request.batch > max_images:
        raise FrameRejected(
            f"{request.batch} images in one call; at most {max_images} (--legacy-max-images)"
        )
    if max(request.width, request.height) > max_side:
        raise FrameRejected(
            f"images of {request.width}x{request.height} exceed the largest side of {max_side} pixels"
        )
    if request.width * request.height > max_pixels:
        raise FrameRejected(
            f"images of {request.width}x{request.height} exceed the largest frame of {max_pixels} pixels"
        )
    if request.channel not in (1, 3, 4):
        raise FrameRejected(f"unsupported channel count {request.channel} (1, 3 or 4)")
    name = request.data_type or "uint8"
    try:
        # numpy parses dtype strings with a small grammar of its own; anything it rejects,
        # however it rejects it, is the client's mistake.
        dtype = np.dtype(name) if len(name) <= _MAX_DTYPE_CHARS else None
    except (TypeError, ValueError, OverflowError, SyntaxError):
        dtype = None
    if dtype is None:
        raise FrameRejected(f"unknown data_type {shown(name, 32)}")
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise FrameRejected(f"data_type {shown(name, 32)} is not numeric")
    expected = math.prod(dims) * dtype.itemsize
    if len(request.imgs) != expected:
        raise FrameRejected(
            f"imgs is {len(request.imgs)} bytes but {dims} of {dtype.name} needs {expected}"
        )
    array = np.frombuffer(request.imgs, dtype=dtype).reshape(dims)
    if dtype != np.uint8:
        # NaN and infinities would make the cast undefined (and warn): map them into 0-255.
        if dtype.kind == "f":
            array = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0)
        array = np.clip(array, 0, 255).astype(np.uint8)
    if request.channel == 4:
        array = array[..., :3]
    return [np.ascontiguousarray(image) for image in array]
