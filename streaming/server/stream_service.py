"""gRPC servicers: the streaming API and the old unary ``sc_service`` API, both over one batcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
import numpy as np

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.server.auth import Credentials
from streaming.server.batcher import Batcher, ServerDraining, TooManyStreams
from streaming.server.logsafe import shown
from streaming.server.serve_config import DEFAULT_MAX_FRAME_PIXELS, ServerConfig
from streaming.server.server_errors import FrameError
from streaming.server.server_metrics import LegacyOutcome, ServerMetrics
from streaming.server.server_values import (
    Delivery,
    Encoding,
    FrameData,
    FrameResult,
    ModelDescription,
    StatusCode,
    StreamSettings,
)
from streaming.server.stream_state import StreamState
from streaming.server.wire import (
    Undecodable,
    classify_request_parser,
    frame_from_pb,
    model_info_to_pb,
    result_to_pb,
    safe_parser,
    settings_from_pb,
)

logger = logging.getLogger(__name__)

# "float32", "<f8", "uint16": longer strings are not dtypes the old client sent.
_MAX_DTYPE_CHARS = 16


STREAM_SERVICE = pb.DESCRIPTOR.services_by_name["StreamClassifier"].full_name
LEGACY_SERVICE = sc_service_pb2.DESCRIPTOR.services_by_name["sc_service"].full_name
# Trailing metadata of a stream ended by shutdown: the first seq the server did not answer.
RESEND_FROM_KEY = "resend-from-seq"


async def _abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    await context.abort(code, message, trailing_metadata=trailing_metadata)
    raise AssertionError("unreachable: abort raises")


# How long a refused stream's first message is waited for before the refusal is sent.
_REFUSAL_READ_S = 1.0


async def _refuse(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
) -> NoReturn:
    """End a stream the server cannot take, once its StreamConfig has arrived (or briefly not).

    Ending a call while the client is still writing its first message makes grpc.aio clients
    report INTERNAL "Internal error from Core" instead of this status (grpc/grpc#36066), so
    the config a client sends right after opening is read first. The refused call holds no
    stream slot meanwhile.
    """
    with contextlib.suppress(Exception):
        await asyncio.wait_for(context.read(), _REFUSAL_READ_S)
    await _abort(context, code, message)


async def _open(
    batcher: Batcher, settings: StreamSettings, context: grpc.aio.ServicerContext
) -> StreamState:
    try:
        return batcher.open_stream(settings)
    except ServerDraining as exc:
        await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
    except TooManyStreams as exc:
        await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))


class _Unanswered:
    """The seqs of a stream's received frames not answered yet, oldest first.

    Answers come in the order frames were received, so an answer settles every older entry
    too (LIVE frames dropped in between are never answered).
    """

    __slots__ = ("_seqs",)

    def __init__(self) -> None:
        self._seqs: deque[int] = deque()

    def received(self, seq: int) -> None:
        self._seqs.append(seq)

    def answered(self, seq: int) -> None:
        while self._seqs and self._seqs.popleft() != seq:
            pass

    @property
    def first(self) -> int | None:
        return self._seqs[0] if self._seqs else None


class StreamClassifierService(pb_grpc.StreamClassifierServicer):
    """``streamclassify.v1.StreamClassifier``: one bidi stream per video source."""

    def __init__(
        self,
        batcher: Batcher,
        description: ModelDescription,
        config: ServerConfig,
        credentials: Credentials | None = None,
        *,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._batcher = batcher
        self._config = config
        self._credentials = credentials
        self._metrics = metrics or ServerMetrics()
        self._num_labels = len(description.labels)
        self._info = model_info_to_pb(
            description, default_window=config.window, max_batch=config.max_batch
        )
        self._readers: dict[StreamState, asyncio.Task[str | None]] = {}
        self._submitting: set[StreamState] = set()  # streams whose reader waits in submit()
        # Open Classify calls, configured or not: each holds a slot of max_streams from the
        # moment it opens, so streams that never send a config cannot pile up.
        self._calls = 0
        self._draining = False

    @property
    def open_calls(self) -> int:
        return self._calls

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        if isinstance(request, Undecodable):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        return self._info

    async def Classify(
        self,
        request_iterator: AsyncIterator[pb.ClassifyRequest | FrameData | Undecodable],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ClassifyResponse]:
        if self._draining:
            await _refuse(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down",
            )
        if self._calls >= self._config.max_streams:
            await _refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server already serves {self._calls} streams (--max-streams)",
            )
        self._calls += 1
        stream: StreamState | None = None
        reader: asyncio.Task[str | None] | None = None
        unanswered = _Unanswered()
        answered = 0
        try:
            settings = await self._read_config(context)
            if settings is None:
                return
            stream = await _open(self._batcher, settings, context)
            self._metrics.stream_opened()
            caller = (
                self._credentials.caller(context.invocation_metadata())
                if self._credentials
                else None
            )
            logger.info(
                "stream %d opened:%s client=%s source=%s window=%d delivery=%s probabilities=%s",
                stream.id,
                f" token={caller}" if caller else "",
                shown(settings.client_id),
                shown(settings.source),
                settings.window,
                settings.delivery.name,
                settings.probabilities.name,
            )
            reader = asyncio.create_task(
                self._read(context, stream, unanswered), name=f"sc-reader-{stream.id}"
            )
            self._readers[stream] = reader
            while (result := await stream.next_result()) is not None:
                unanswered.answered(result.seq)
                yield result_to_pb(result, settings.probabilities)
                answered += 1
            violation = reader.result() if reader.done() and not reader.cancelled() else None
            if violation:
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, violation)
            if self._draining and unanswered.first is not None:
                # Shutdown came before these frames could be answered: say where to resume.
                first = unanswered.first
                await _abort(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    f"the server is shutting down; frames from seq {first} on were not "
                    "answered: resend them to another server",
                    ((RESEND_FROM_KEY, str(first)),),
                )
        finally:
            self._calls -= 1
            if stream is not None:
                if reader is not None:
                    reader.cancel()
                self._readers.pop(stream, None)
                self._batcher.close_stream(stream)
                self._metrics.stream_closed()
                logger.info(
                    "stream %d closed: %d answered, %d dropped", stream.id, answered, stream.dropped
                )

    async def _read_config(self, context: grpc.aio.ServicerContext) -> StreamSettings | None:
        """The stream's settings from its first message, or ``None`` if it ended at once."""
        timeout = self._config.config_timeout_s
        try:
            first = await asyncio.wait_for(context.read(), timeout)
        except TimeoutError:
            await _abort(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no StreamConfig within {timeout:g} s of opening the stream (--config-timeout)",
            )
        if first is grpc.aio.EOF:
            return None
        if isinstance(first, Undecodable):
            logger.warning("stream from %s refused: %s", context.peer(), first.describe())
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, first.describe())
        if isinstance(first, FrameData) or first.WhichOneof("kind") != "config":
            got = (
                "a Frame"
                if isinstance(first, FrameData) or first.HasField("frame")
                else "an empty request"
            )
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first message of a Classify stream must be a StreamConfig, got {got}",
            )
        config = self._config
        try:
            return settings_from_pb(
                first.config,
                default_window=config.window,
                default_top_k=config.top_k,
                num_labels=self._num_labels,
                max_window=config.max_window,
                max_top_k=config.max_top_k,
                max_name_chars=config.max_name_chars,
            )
        except ValueError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad StreamConfig: {exc}")

    async def _read(
        self,
        context: grpc.aio.ServicerContext,
        stream: StreamState,
        unanswered: _Unanswered,
    ) -> str | None:
        """Feed frames to the batcher; returns a protocol violation message, if any."""
        batcher = self._batcher
        try:
            while True:
                # Room for the message first: once asked for, gRPC takes all of it off the wire.
                # context.read(), not the request iterator: the iterator's generator keeps the
                # last message alive until the next one is asked for, uncounted.
                await batcher.ready_to_receive(stream)
                request = await context.read()
                if request is grpc.aio.EOF:
                    break
                if isinstance(request, Undecodable):
                    # Logged once: the stream ends here, whatever else the client sends.
                    logger.warning("stream %d ended: %s", stream.id, request.describe())
                    batcher.close_stream(stream)
                    return request.describe()
                frame = request if isinstance(request, FrameData) else _frame_in(request)
                # Only the frame is kept: no second reference to a message of tens of MiB while
                # submit waits for room, nor after the frame was queued (and maybe answered).
                del request
                if isinstance(frame, str):
                    batcher.close_stream(stream)
                    return frame
                # Counted before submit: a frame waiting for room is received, and owed an answer.
                unanswered.received(frame.seq)
                self._submitting.add(stream)
                try:
                    await batcher.submit(stream, frame)
                finally:
                    self._submitting.discard(stream)
                del frame
                if self._draining:
                    break  # the frame in hand is queued; read no further
        finally:
            batcher.not_receiving(stream)
            stream.finish_input()
        return None

    def drain(self) -> None:
        """Refuse new streams and stop reading open ones; received frames are still answered.

        A reader waiting for room for a frame it holds keeps waiting (it stops after queueing
        it); the others are stopped at once.
        """
        self._draining = True
        for stream, reader in self._readers.items():
            if stream not in self._submitting:
                reader.cancel()

    def cut_off(self) -> int:
        """Grace is over: end every open stream now; those owed answers end with UNAVAILABLE.

        Returns:
            How many streams were ended.
        """
        streams = list(self._readers)
        for stream in streams:
            self._batcher.close_stream(stream)
        return len(streams)


@dataclass(eq=False)
class _LegacyWindow:
    """One image position of an old-API client: a LOSSLESS stream in the batcher."""

    stream: StreamState
    # Answers to frames of earlier calls not taken yet (those calls timed out or were cancelled).
    unread: int = 0

    async def answer(self, seq: int | None) -> FrameResult | None:
        """The answer to frame ``seq``, skipping older answers; ``None`` once the window closed.

        With ``seq=None``, only takes the answers still owed to earlier calls.
        """
        while self.unread or seq is not None:
            result = await self.stream.next_result()
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
        self._draining = False

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
        request: sc_service_pb2.server_input | Undecodable,
        context: grpc.aio.ServicerContext,
    ) -> sc_service_pb2.server_output:
        try:
            reply = await self._inference(request, context)
        except BaseException:
            self._metrics.legacy_call(_LEGACY_OUTCOMES.get(context.code(), LegacyOutcome.ERROR))
            raise
        self._metrics.legacy_call(LegacyOutcome.OK)
        return reply

    async def _inference(
        self,
        request: sc_service_pb2.server_input | Undecodable,
        context: grpc.aio.ServicerContext,
    ) -> sc_service_pb2.server_output:
        if isinstance(request, Undecodable):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        if self._draining:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        config = self._config
        client_id = request.client_id
        if len(client_id) > config.max_name_chars:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"client_id has {len(client_id)} characters; at most {config.max_name_chars} are accepted",
            )
        try:
            images = legacy_images(
                request, config.max_frame_side, config.max_frame_pixels, config.legacy_max_images
            )
        except FrameError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
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
            results = [await window.answer(seq) for window in windows]
            client.last_used = time.monotonic()
        labels: list[str] = []
        scores: list[float] = []
        for position, result in enumerate(results):
            if result is None:
                await _abort(
                    context, grpc.StatusCode.UNAVAILABLE, "the server stopped before answering"
                )
            if result.error is not None:
                code = (
                    grpc.StatusCode.INVALID_ARGUMENT
                    if result.error.code == StatusCode.INVALID_ARGUMENT
                    else grpc.StatusCode.INTERNAL
                )
                await _abort(context, code, f"image {position}: {result.error.message}")
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
                raise TooManyStreams(
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
                client.windows.append(_LegacyWindow(self._batcher.open_stream(settings)))
                self._window_count += 1
        except (ServerDraining, TooManyStreams) as exc:
            if not client.windows:  # a refused client leaves nothing behind
                self._clients.pop(client_id, None)
            code = (
                grpc.StatusCode.UNAVAILABLE
                if isinstance(exc, ServerDraining)
                else grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            logger.warning("old-API client %s refused: %s", shown(client_id), exc)
            await _abort(context, code, str(exc))

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

    def drain(self) -> None:
        """Refuse new calls; calls in progress are still answered."""
        self._draining = True

    def close(self) -> None:
        """Stop the timer and free every window; calls still waiting end with UNAVAILABLE."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client_id in list(self._clients):
            self._drop(client_id)


def _frame_in(request: pb.ClassifyRequest) -> FrameData | str:
    """The frame a protobuf-parsed request carries, or why it is not a frame request."""
    kind = request.WhichOneof("kind")
    if kind == "frame":
        return frame_from_pb(request.frame)
    if kind == "config":
        return "a stream takes exactly one StreamConfig, as its first message; got a second one"
    return "a request must carry a StreamConfig or a Frame; got an empty one"


def add_services(
    server: grpc.aio.Server,
    stream_service: StreamClassifierService,
    legacy_service: LegacyInferenceService,
) -> None:
    """Register both APIs, with request parsers that never raise (see ``Undecodable``)."""
    services: dict[str, dict[str, grpc.RpcMethodHandler]] = {
        STREAM_SERVICE: {
            "Classify": grpc.stream_stream_rpc_method_handler(
                stream_service.Classify,
                request_deserializer=classify_request_parser(),
                response_serializer=pb.ClassifyResponse.SerializeToString,
            ),
            "GetModelInfo": grpc.unary_unary_rpc_method_handler(
                stream_service.GetModelInfo,
                request_deserializer=safe_parser(pb.GetModelInfoRequest),
                response_serializer=pb.ModelInfo.SerializeToString,
            ),
        },
        LEGACY_SERVICE: {
            "inference": grpc.unary_unary_rpc_method_handler(
                legacy_service.inference,
                request_deserializer=safe_parser(sc_service_pb2.server_input),
                response_serializer=sc_service_pb2.server_output.SerializeToString,
            ),
        },
    }
    for name, methods in services.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, methods),))
        server.add_registered_method_handlers(name, methods)


def legacy_images(
    request: sc_service_pb2.server_input,
    max_side: int,
    max_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    max_images: int = 64,
) -> list[np.ndarray]:
    """Rebuild the old client's ``np.stack`` of RGB images (shape batch, width, height, channel).

    The old client put the array's shape in that order, so "width" carries the rows.

    Raises:
        FrameError: the request is malformed or over a limit (answered INVALID_ARGUMENT).
    """
    dims = (request.batch, request.width, request.height, request.channel)
    if min(dims) <= 0:
        raise FrameError(f"batch, width, height and channel must be > 0, got {dims}")
    if request.batch > max_images:
        raise FrameError(
            f"{request.batch} images in one call; at most {max_images} (--legacy-max-images)"
        )
    if max(request.width, request.height) > max_side:
        raise FrameError(
            f"images of {request.width}x{request.height} exceed the largest side of {max_side} pixels"
        )
    if request.width * request.height > max_pixels:
        raise FrameError(
            f"images of {request.width}x{request.height} exceed the largest frame of {max_pixels} pixels"
        )
    if request.channel not in (1, 3, 4):
        raise FrameError(f"unsupported channel count {request.channel} (1, 3 or 4)")
    name = request.data_type or "uint8"
    try:
        # numpy parses dtype strings with a small grammar of its own; anything it rejects,
        # however it rejects it, is the client's mistake.
        dtype = np.dtype(name) if len(name) <= _MAX_DTYPE_CHARS else None
    except (TypeError, ValueError, OverflowError, SyntaxError):
        dtype = None
    if dtype is None:
        raise FrameError(f"unknown data_type {shown(name, 32)}")
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise FrameError(f"data_type {shown(name, 32)} is not numeric")
    expected = math.prod(dims) * dtype.itemsize
    if len(request.imgs) != expected:
        raise FrameError(
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
