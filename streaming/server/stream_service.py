"""The streaming API's gRPC servicer (``streamclassify.v1.StreamClassifier``) over the batcher.

The old unary API has its own module, ``streaming.server.legacy_service``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.server.auth import Credentials
from streaming.server.batcher import Batcher, ServerDraining
from streaming.server.logsafe import shown
from streaming.server.model_versions import ModelSlot
from streaming.server.serve_config import ServerConfig
from streaming.server.server_metrics import ServerMetrics
from streaming.server.server_values import UNCONFIGURED, FrameData, StreamSettings
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

STREAM_SERVICE = pb.DESCRIPTOR.services_by_name["StreamClassifier"].full_name
# Trailing metadata of every stream ended by shutdown: the first seq the server did not answer
# (0 when it answered none), so the client knows where to resume on another server.
RESEND_FROM_KEY = "resend-from-seq"
# A stream refused or ended by shutdown before any of its frames was answered resumes from 0.
_RESEND_ALL = ((RESEND_FROM_KEY, "0"),)
_SHUTTING_DOWN = "the server is shutting down"


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """End the call with ``code`` (both APIs use it; typed ``NoReturn`` for the type checker)."""
    await context.abort(code, message, trailing_metadata=trailing_metadata)
    raise AssertionError("unreachable: abort raises")


# How long a refused stream's first message is waited for before the refusal is sent.
_REFUSAL_READ_S = 1.0


async def refuse(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """End a call the server cannot take, once its first message (a stream's StreamConfig, an
    old-API request) has arrived, or briefly not.

    The server side's one workaround for grpc/grpc#36066 (the client side's is
    ``client._aio.CallStatus``): ending a call while the client is still writing its first
    message makes grpc.aio clients report INTERNAL "Internal error from Core" instead of this
    status, so the message a client sends right after opening is read first. The refused call
    holds no stream slot meanwhile.
    """
    with contextlib.suppress(Exception):
        await asyncio.wait_for(context.read(), _REFUSAL_READ_S)
    await abort(context, code, message, trailing_metadata)


async def read_first_message(
    batcher: Batcher,
    context: grpc.aio.ServicerContext,
    call: StreamState,
    timeout: float,
    what: str,
    refusal_metadata: tuple[tuple[str, str], ...] = (),
) -> Any:  # what the method's request parser gives, or grpc.aio.EOF
    """A call's first message (``what``: a StreamConfig, an old-API request), read once the
    budget has room for the largest message accepted (its size is unknown until it has
    arrived), reserved for the call's stream ``call`` until the caller releases it.

    Ends the call if a drain began while it waited (UNAVAILABLE, ``refusal_metadata``), if the
    message does not come within ``timeout`` s of the room, or sooner if waiting readers want
    that room (``StreamState.end``).
    """
    await batcher.ready_to_receive(call)
    if batcher.draining:  # woken by the drain while it waited for room
        await refuse(context, grpc.StatusCode.UNAVAILABLE, _SHUTTING_DOWN, refusal_metadata)
    read = asyncio.ensure_future(context.read())
    ended = asyncio.ensure_future(call.until_ended())
    try:
        done, _ = await asyncio.wait(
            {read, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        ended.cancel()
    if read in done:
        return read.result()
    read.cancel()
    if call.ended_by is not None:
        await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, call.ended_by, _RESEND_ALL)
    await abort(
        context,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"no {what} within {timeout:g} s of the call's start (--config-timeout)",
    )


async def _open(
    batcher: Batcher, settings: StreamSettings, context: grpc.aio.ServicerContext
) -> StreamState:
    try:
        return batcher.open_stream(settings, context.peer())
    except ServerDraining as exc:
        await abort(context, grpc.StatusCode.UNAVAILABLE, str(exc), _RESEND_ALL)


class _Unanswered:
    """The seqs of a stream's received frames not answered yet, oldest first, and where to resume.

    Answers come in the order frames were received, so an answer settles every older entry
    too (LIVE frames dropped in between are never answered).
    """

    __slots__ = ("_seqs", "_last_answered", "input_ended")

    def __init__(self) -> None:
        self._seqs: deque[int] = deque()
        self._last_answered: int | None = None
        self.input_ended = False  # the client half-closed: it sent nothing the server did not read

    def received(self, seq: int) -> None:
        self._seqs.append(seq)

    def answered(self, seq: int) -> None:
        self._last_answered = seq
        while self._seqs and self._seqs.popleft() != seq:
            pass

    @property
    def first(self) -> int | None:
        return self._seqs[0] if self._seqs else None

    @property
    def resume_from(self) -> int:
        """The first seq to send again elsewhere: the oldest received and unanswered, else the
        one after the last answered (frames the server never read come after it), else 0."""
        if self._seqs:
            return self._seqs[0]
        return 0 if self._last_answered is None else self._last_answered + 1


class _CallsPerConnection:
    """Classify calls open on each connection (told apart by peer address), to say once when one
    reaches ``--max-calls-per-connection``: HTTP/2 holds that connection's further calls,
    unserved and unseen by the server, until others end."""

    __slots__ = ("_cap", "_open", "_warned")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: dict[str, int] = {}
        self._warned: set[str] = set()

    def opened(self, peer: str) -> None:
        count = self._open.get(peer, 0) + 1
        self._open[peer] = count
        if count >= self._cap and peer not in self._warned:
            self._warned.add(peer)
            logger.warning(
                "connection %s has %d streams open, the --max-calls-per-connection cap: its "
                "further streams wait unserved until others end; its client should spread "
                "streams over several connections (docs/connections.md)",
                peer,
                count,
            )

    def closed(self, peer: str) -> None:
        count = self._open[peer] - 1
        if count:
            self._open[peer] = count
        else:  # the connection may be gone: forget it
            del self._open[peer]
            self._warned.discard(peer)


class StreamClassifierService(pb_grpc.StreamClassifierServicer):
    """``streamclassify.v1.StreamClassifier``: one bidi stream per video source."""

    def __init__(
        self,
        batcher: Batcher,
        models: ModelSlot,
        config: ServerConfig,
        credentials: Credentials | None = None,
        *,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._batcher = batcher
        self._config = config
        self._credentials = credentials
        self._metrics = metrics or ServerMetrics()
        self._models = models
        # GetModelInfo's answer, rebuilt when the served model or the versions available change
        # (keyed by the swap count, not the model: a cache must not keep an old model alive).
        self._info_for: tuple[int, tuple[str, ...]] | None = None
        self._info = pb.ModelInfo()
        self._readers: dict[StreamState, asyncio.Task[str | None]] = {}
        self._submitting: set[StreamState] = set()  # streams whose reader waits in submit()
        # Open Classify calls, configured or not: each holds a slot of max_streams from the
        # moment it opens, so streams that never send a config cannot pile up. The server's
        # one max_streams check (old-API windows are bounded apart, legacy_max_windows).
        self._calls = 0
        self._per_connection = _CallsPerConnection(config.max_calls_per_connection)
        # Every Classify handler running, refusals included: the drain waits for them all, so
        # a stream refused while draining gets its status and resume point, not stop()'s cancel.
        self._handlers = 0
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        self._last_call_at = time.monotonic()

    @property
    def open_calls(self) -> int:
        return self._calls

    @property
    def quiet_s(self) -> float:
        """Seconds since the last Classify call reached this servicer."""
        return time.monotonic() - self._last_call_at

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        if isinstance(request, Undecodable):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        models = self._models
        key = (models.swaps, models.available)
        current = models.current  # after the count: a swap in between only rebuilds it again
        if key != self._info_for:
            self._info_for = key
            self._info = model_info_to_pb(
                current.description,
                default_window=self._config.window,
                max_batch=self._config.max_batch,
                model_version=current.version,
                versions_available=key[1],
            )
        return self._info

    async def Classify(
        self,
        request_iterator: AsyncIterator[pb.ClassifyRequest | FrameData | Undecodable],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ClassifyResponse]:
        self._handlers += 1
        self._last_call_at = time.monotonic()
        self._no_calls.clear()
        try:
            if self._batcher.draining:
                await refuse(context, grpc.StatusCode.UNAVAILABLE, _SHUTTING_DOWN, _RESEND_ALL)
            if self._calls >= self._config.max_streams:
                await refuse(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the server already serves {self._calls} streams (--max-streams)",
                )
            self._calls += 1
            peer = context.peer()
            self._per_connection.opened(peer)
            stream: StreamState | None = None
            reader: asyncio.Task[str | None] | None = None
            unanswered = _Unanswered()
            answered = 0
            configured = False
            try:
                # Opened before its StreamConfig is read: the config's size is unknown until it
                # has arrived, so it waits for room in the byte budget as a first frame does.
                stream = await _open(self._batcher, UNCONFIGURED, context)
                settings = await self._read_config(context, stream)
                if settings is None:
                    return
                self._batcher.configure(stream, settings)
                configured = True
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
                batcher = self._batcher
                while (result := await batcher.next_result(stream)) is not None:
                    unanswered.answered(result.seq)
                    yield result_to_pb(result, settings.probabilities)
                    answered += 1
                if stream.ended_by is not None:  # it held room others waited for (--room-timeout)
                    self._metrics.stream_ended_idle()
                    await abort(
                        context,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        stream.ended_by,
                        ((RESEND_FROM_KEY, str(unanswered.resume_from)),),
                    )
                violation = reader.result() if reader.done() and not reader.cancelled() else None
                if violation:
                    await abort(context, grpc.StatusCode.INVALID_ARGUMENT, violation)
                if self._batcher.draining and not unanswered.input_ended:
                    # Shutdown stopped the stream: say where to resume, whether it ends with
                    # UNAVAILABLE (frames received and not answered) or OK (all it read answered).
                    resume = ((RESEND_FROM_KEY, str(unanswered.resume_from)),)
                    first = unanswered.first
                    if first is not None:
                        await abort(
                            context,
                            grpc.StatusCode.UNAVAILABLE,
                            f"{_SHUTTING_DOWN}; frames from seq {first} on were not "
                            "answered: resend them to another server",
                            resume,
                        )
                    context.set_trailing_metadata(resume)
            finally:
                self._calls -= 1
                self._per_connection.closed(peer)
                if stream is not None:
                    if reader is not None:
                        reader.cancel()
                    self._readers.pop(stream, None)
                    self._batcher.close_stream(stream)
                if configured and stream is not None:
                    self._metrics.stream_closed()
                    logger.info(
                        "stream %d closed: %d answered, %d dropped",
                        stream.id,
                        answered,
                        stream.dropped,
                    )
        finally:
            self._handlers -= 1
            if not self._handlers:
                self._no_calls.set()

    async def _read_config(
        self, context: grpc.aio.ServicerContext, stream: StreamState
    ) -> StreamSettings | None:
        """The stream's settings from its first message, or ``None`` if it ended at once.

        Its read waits for room for the largest message first (a config's size is unknown
        until it has arrived); ``--config-timeout`` counts from when there is room.
        """
        batcher = self._batcher
        timeout = self._config.config_timeout_s
        try:
            first = await read_first_message(
                batcher, context, stream, timeout, "StreamConfig", _RESEND_ALL
            )
        finally:
            batcher.not_receiving(stream)  # a config is no payload: its room is free again
        if first is grpc.aio.EOF:
            return None
        outcome = self._settings_in(first, context)
        # Not alive in this frame while the abort's exception (and its traceback) is: a config
        # message can be tens of MiB, and an exception's cycle is freed only by the cyclic GC.
        del first
        if isinstance(outcome, str):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, outcome)
        return outcome

    def _settings_in(
        self, first: pb.ClassifyRequest | FrameData | Undecodable, context: grpc.aio.ServicerContext
    ) -> StreamSettings | str:
        """The settings a stream's first message gives, or why it is refused."""
        if isinstance(first, Undecodable):
            logger.warning("stream from %s refused: %s", context.peer(), first.describe())
            return first.describe()
        if isinstance(first, FrameData) or first.WhichOneof("kind") != "config":
            got = (
                "a Frame"
                if isinstance(first, FrameData) or first.HasField("frame")
                else "an empty request"
            )
            return f"the first message of a Classify stream must be a StreamConfig, got {got}"
        config = self._config
        try:
            return settings_from_pb(
                first.config,
                default_window=config.window,
                default_top_k=config.top_k,
                num_labels=len(self._models.current.labels),
                max_window=config.max_window,
                max_top_k=config.max_top_k,
                max_name_chars=config.max_name_chars,
            )
        except ValueError as exc:
            return f"bad StreamConfig: {exc}"

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
                if batcher.draining:
                    break  # woken by the drain while it waited for room: read no further
                request = await context.read()
                if request is grpc.aio.EOF:
                    unanswered.input_ended = True
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
                if batcher.draining:
                    break  # the frame in hand is queued; read no further
        finally:
            batcher.not_receiving(stream)
            stream.finish_input()
        return None

    def drain(self) -> None:
        """Stop reading open streams (the batcher is draining); received frames are still answered.

        A reader waiting for room for a frame it holds keeps waiting (it stops after queueing
        it); the others are stopped at once.
        """
        for stream, reader in self._readers.items():
            if stream not in self._submitting:
                reader.cancel()

    async def wait_calls_ended(self) -> None:
        """Wait until no Classify call is open or being refused (each has sent its status)."""
        await self._no_calls.wait()

    def cut_off(self) -> int:
        """Grace is over: end every open stream now; those owed answers end with UNAVAILABLE.

        Returns:
            How many streams were ended.
        """
        streams = list(self._readers)
        for stream in streams:
            self._batcher.close_stream(stream)
        return len(streams)


def _frame_in(request: pb.ClassifyRequest) -> FrameData | str:
    """The frame a protobuf-parsed request carries, or why it is not a frame request."""
    kind = request.WhichOneof("kind")
    if kind == "frame":
        return frame_from_pb(request.frame)
    if kind == "config":
        return "a stream takes exactly one StreamConfig, as its first message; got a second one"
    return "a request must carry a StreamConfig or a Frame; got an empty one"


def add_stream_service(server: grpc.aio.Server, service: StreamClassifierService) -> None:
    """Register the streaming API, with request parsers that never raise (see ``Undecodable``)."""
    register(
        server,
        STREAM_SERVICE,
        {
            "Classify": grpc.stream_stream_rpc_method_handler(
                service.Classify,
                request_deserializer=classify_request_parser(),
                response_serializer=pb.ClassifyResponse.SerializeToString,
            ),
            "GetModelInfo": grpc.unary_unary_rpc_method_handler(
                service.GetModelInfo,
                request_deserializer=safe_parser(pb.GetModelInfoRequest),
                response_serializer=pb.ModelInfo.SerializeToString,
            ),
        },
    )


def register(server: grpc.aio.Server, name: str, methods: dict[str, grpc.RpcMethodHandler]) -> None:
    """Register one service's handlers, generic and by method (both APIs use it)."""
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, methods),))
    server.add_registered_method_handlers(name, methods)
