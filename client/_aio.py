"""asyncio client (``grpc.aio``): mirrors :mod:`client._sync` method for method.

Only the I/O style lives here; the decisions are made in :mod:`client._core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Final, TypeVar

import grpc
import grpc.aio

from client._channel import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_STREAMS_PER_CHANNEL,
    SEND_QUEUE_FRAMES,
    ChannelPool,
    ConnectionSettings,
)
from client._convert import classify_method
from client._core import ClientCore, StreamBase, StreamCore, StreamPlan
from client._errors import ClassifierClientError
from client._frames import ImageLike
from client._types import ChannelOrder, Delivery, ModelInfo, Prediction, WireFormat
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

_END: Final = object()
_UNSET: Final = object()
T = TypeVar("T")

# What grpc.aio reports when a write loses the race with the end of the call (grpc/grpc#36066).
_WRITE_RACE_DETAILS: Final = "Internal error from Core"
_LATE_STATUS_WAIT_S = 1.5  # how long a server status still in flight is waited for
_LATE_STATUS_POLL_S = 0.02


def masks_server_status(error: grpc.aio.AioRpcError) -> bool:
    """Whether ``error`` is grpc.aio's INTERNAL for a write that failed because the call was
    ending, rather than a status the server (or the transport) gave."""
    return error.code() is grpc.StatusCode.INTERNAL and error.details() == _WRITE_RACE_DETAILS


def _result_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (a finished call's status getters) to its end, outside
    the event loop; raises ``RuntimeError`` if it would wait after all."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise RuntimeError(f"{coroutine!r} would wait")


async def _status_error(call: grpc.aio.Call) -> grpc.aio.AioRpcError | None:
    """The finished ``call``'s status as the error it raises; ``None`` for OK."""
    code = await call.code()
    if code is grpc.StatusCode.OK:
        return None
    return grpc.aio.AioRpcError(
        code,
        await call.initial_metadata(),
        await call.trailing_metadata(),
        await call.details(),
    )


class CallStatus:
    """The status that really ended a grpc.aio call.

    When a write fails because the server ended the call (a drain, a refusal), grpc.aio sets
    the call's status to INTERNAL "Internal error from Core" (grpc/grpc#36066): over the
    server's status if that came first, or to be replaced by it when it comes. So the first
    status is kept the moment it is set, and a later one is waited for, briefly. This is the
    client side's one home for that workaround (the server's is ``refuse`` in
    ``streaming/server/stream_service.py``, which reads a refused call's first message before
    ending it).
    """

    def __init__(self, call: grpc.aio.Call, *, wait_s: float = _LATE_STATUS_WAIT_S) -> None:
        self._call = call
        self._wait_s = wait_s
        self._first: object = _UNSET  # AioRpcError, None (OK) or _UNSET
        call.add_done_callback(self._keep_first)

    def _keep_first(self, call: grpc.aio.Call) -> None:
        # Runs inside grpc.aio as the status is set, before anything can overwrite it.
        if self._first is not _UNSET:
            return
        try:
            self._first = _result_now(_status_error(call))
        except Exception:  # noqa: BLE001 - an error here would break grpc.aio's own status handling
            logger.debug("the finished call's status could not be read at once", exc_info=True)

    async def error(self, raised: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError | None:
        """The error the call really ended with, given the one it ``raised``; ``None`` when the
        server ended it with OK."""
        if not masks_server_status(raised):
            return raised
        first = self._first
        if first is None or (
            isinstance(first, grpc.aio.AioRpcError) and not masks_server_status(first)
        ):
            logger.debug("a failed write hid the stream's status: %s", first or "OK")
            return first
        # The write failed first: the server's status may still be on its way, and replaces
        # the INTERNAL one without an event to wait for, so the call is polled (bounded).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                late = await asyncio.wait_for(_status_error(self._call), remaining)
            except TimeoutError:
                break
            if late is None or not masks_server_status(late):
                logger.debug("a failed write came before the stream's status: %s", late or "OK")
                return late
            await asyncio.sleep(_LATE_STATUS_POLL_S)
        return raised


class AsyncStreamClient(ClientCore):
    """An asyncio connection to a Stream Classification server; see :class:`client.StreamClient`
    for the arguments (the same, with the same meaning).

    Nothing happens until :meth:`connect` (or ``async with``), which asks ``GetModelInfo`` once.

    Example:
        >>> async with AsyncStreamClient("127.0.0.1:1234") as client:  # doctest: +SKIP
        ...     async with client.open_stream("cam0", delivery=Delivery.LIVE) as stream:
        ...         await stream.send(frame, channel_order="bgr")
        ...         prediction = await stream.receive(timeout=1.0)
    """

    def __init__(
        self,
        address: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        wait_for_ready: bool = False,
        client_id: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        load_balancing: str | None = None,
        max_streams_per_channel: int = DEFAULT_MAX_STREAMS_PER_CHANNEL,
    ) -> None:
        super().__init__(
            ConnectionSettings(
                address,
                credentials=credentials,
                token=token,
                connect_timeout=connect_timeout,
                wait_for_ready=wait_for_ready,
                client_id=client_id,
                max_message_bytes=max_message_bytes,
                load_balancing=load_balancing,
                max_streams_per_channel=max_streams_per_channel,
            )
        )
        self._pool: ChannelPool[grpc.aio.Channel] | None = None  # opened by connect()
        self._streams: set[AsyncStream] = set()

    async def connect(self) -> ModelInfo:
        """Open the channel and fetch the model info (once; later calls return it).

        Raises:
            ClassifierClientError: the server cannot be reached within ``connect_timeout``.
        """
        if self._model_info is not None:
            return self._model_info
        if self._closed:
            raise ClassifierClientError(grpc.StatusCode.CANCELLED, "the client is closed")
        settings = self._settings
        channel = self._open_channel()
        stub = pb_grpc.StreamClassifierStub(channel)
        try:
            reply = await stub.GetModelInfo(
                pb.GetModelInfoRequest(),
                timeout=settings.connect_timeout,
                metadata=settings.metadata,
                wait_for_ready=settings.wait_for_ready,
            )
        except grpc.aio.AioRpcError as exc:
            await channel.close()
            raise settings.unreachable(exc) from None
        self._pool = ChannelPool(channel, self._open_channel, settings.max_streams_per_channel)
        return self._connected(reply)

    def _open_channel(self) -> grpc.aio.Channel:
        settings = self._settings
        options = settings.channel_options()
        if settings.credentials is None:
            return grpc.aio.insecure_channel(settings.address, options=options)
        return grpc.aio.secure_channel(settings.address, settings.credentials, options=options)

    @property
    def channels(self) -> int:
        """Channels (connections) open: one per ``max_streams_per_channel`` streams at once."""
        return 0 if self._pool is None else len(self._pool.channels)

    def open_stream(
        self,
        source: str = "",
        *,
        window: int = 0,
        delivery: Delivery = Delivery.LOSSLESS,
        top_k: int = 0,
        channel_order: ChannelOrder = "rgb",
        wire_format: WireFormat = "raw",
        jpeg_quality: int = 90,
        resize: bool = True,
        probabilities: bool = True,
    ) -> AsyncStream:
        """Open one classification stream; same arguments as :meth:`StreamClient.open_stream`.

        Must be called from the event loop that connected.
        """
        plan = self._plan_stream(
            source,
            window=window,
            delivery=delivery,
            top_k=top_k,
            channel_order=channel_order,
            wire_format=wire_format,
            jpeg_quality=jpeg_quality,
            resize=resize,
            probabilities=probabilities,
        )
        assert self._pool is not None  # set together with the model info that plan needed
        lease = self._pool.acquire()
        try:
            stream = AsyncStream(
                classify_method(lease.channel),
                plan,
                metadata=self._settings.metadata,
                on_close=self._streams.discard,
                on_end=lease.release,
            )
        except BaseException:
            lease.release()
            raise
        self._streams.add(stream)
        return stream

    async def classify(
        self,
        images: Iterable[ImageLike],
        *,
        window: int = 1,
        top_k: int = 0,
        channel_order: ChannelOrder = "rgb",
        wire_format: WireFormat = "raw",
        probabilities: bool = True,
    ) -> list[Prediction]:
        """Classify images through one LOSSLESS stream; one prediction per image, in order."""
        async with self.open_stream(
            "classify",
            window=window,
            top_k=top_k,
            channel_order=channel_order,
            wire_format=wire_format,
            probabilities=probabilities,
        ) as stream:
            sender = asyncio.create_task(stream.send_all(images))
            try:
                results = [prediction async for prediction in stream]
            finally:
                if not sender.done():
                    sender.cancel()
            await sender  # re-raises a send error
        return results

    async def close(self) -> None:
        """Cancel open streams and close the channel. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.close()
        if self._pool is not None:
            for channel in self._pool.channels:
                await channel.close()

    async def __aenter__(self) -> AsyncStreamClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncStream(StreamBase):
    """One bidirectional ``Classify`` call on the event loop; see :class:`client.Stream`.

    A task reads predictions into a queue while frames are sent, so many frames are in flight.
    """

    def __init__(
        self,
        classify: grpc.aio.StreamStreamMultiCallable,
        plan: StreamPlan,
        *,
        metadata: tuple[tuple[str, str], ...] | None,
        on_close: Callable[[AsyncStream], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._core = StreamCore(plan)
        self._on_close = on_close
        self._on_end = on_end  # the call ended: its place on the channel is free
        self._requests: asyncio.Queue[object] = asyncio.Queue(maxsize=SEND_QUEUE_FRAMES)
        self._results: asyncio.Queue[object] = asyncio.Queue()
        self._lock = asyncio.Lock()  # orders seq numbers with their place in the queue
        self._finished = asyncio.Event()  # wakes a sender waiting for room when the call ends
        self._classify = classify
        self._metadata = metadata
        # Started by the first send, close_send or receive (``_start``), not here.
        self._call: grpc.aio.StreamStreamCall[pb.ClassifyRequest | bytes, pb.ClassifyResponse]
        self._status: CallStatus
        self._reader: asyncio.Task[None] | None = None

    def _start(self) -> None:
        """Start the call: its StreamConfig leaves with the first frame, not before.

        The server reserves room for the largest message it accepts while it waits for a
        stream's first frame (its size is unknown until it arrives), and ends streams that hold
        that room idle while others wait (``--room-timeout``): a stream opened long before its
        source has a frame must not be one of them.
        """
        if self._reader is not None or self._core.closed:
            return
        self._call = self._classify(
            self._request_iterator(self._core.config_request()), metadata=self._metadata
        )
        self._status = CallStatus(self._call)
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"stream-reader-{self._core.options.source}"
        )

    async def send(
        self,
        image: ImageLike,
        *,
        capture_time_us: int | None = None,
        channel_order: ChannelOrder | None = None,
        timeout: float | None = None,
    ) -> int:
        """Queue one frame and return its sequence number; see :meth:`client.Stream.send`.

        Resizing and encoding run in a worker thread so the event loop keeps moving.
        """
        encoder = self._core.encoder
        if encoder.passes_through(image):
            frame = encoder.encode(image)
        else:
            frame = await asyncio.to_thread(encoder.encode, image, channel_order)
        async with self._lock:
            seq, request = self._core.frame_request(frame, capture_time_us)
            await self._put(request, timeout)
        return seq

    async def send_all(self, images: Iterable[ImageLike]) -> int:
        """Send every image, then half-close; returns the number sent."""
        count = 0
        for image in images:
            await self.send(image)
            count += 1
        await self.close_send()
        return count

    async def close_send(self) -> None:
        """Tell the server no more frames follow; it answers the pending ones and ends the stream."""
        async with self._lock:
            if self._core.half_close():
                await self._put(_END, None)

    async def receive(self, timeout: float | None = None) -> Prediction | None:
        """The next prediction, or ``None`` once the stream has ended.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            ClassifierClientError: the stream ended with an error.
        """
        self._start()
        try:
            if timeout is None or not self._results.empty():
                item = await self._results.get()  # nothing to time: no wait_for around it
            else:
                item = await asyncio.wait_for(self._results.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no prediction within {timeout:g} s") from None
        if item is _END:
            self._results.put_nowait(_END)  # stays ended for later calls
            self._core.end_of_results()
            return None
        assert isinstance(item, Prediction)
        return item

    def __aiter__(self) -> AsyncIterator[Prediction]:
        """Predictions until the server ends the stream (after :meth:`close_send`)."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Prediction]:
        while (prediction := await self.receive()) is not None:
            yield prediction

    async def close(self) -> None:
        """End the stream now; unread predictions are discarded. Safe to call twice."""
        if self._core.closed:
            return
        cancel = self._core.close()
        if self._on_close is not None:
            self._on_close(self)
        if self._reader is None:  # never started: nothing was sent, nothing will come
            self._ended()
            return
        if cancel:
            self._call.cancel()
        self._end_requests()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5.0)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _put(self, item: object, timeout: float | None) -> None:
        self._start()
        if not self._requests.full() and not self._finished.is_set():
            # Room now: no waiting, so none of the futures below (a tenth of a client's CPU per
            # frame, py-spy against the bench's wire floor; BENCHMARKS.md session 13).
            self._requests.put_nowait(item)
            return
        put = asyncio.ensure_future(self._requests.put(item))
        ended = asyncio.ensure_future(self._finished.wait())
        try:
            done, _ = await asyncio.wait(
                {put, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
        if put in done:
            return
        put.cancel()
        if not done:
            raise TimeoutError(f"send queue still full after {timeout:g} s")
        self._core.check_open()

    async def _request_iterator(
        self, config: pb.ClassifyRequest
    ) -> AsyncIterator[pb.ClassifyRequest | bytes]:
        yield config
        while True:
            item = await self._requests.get()
            if item is _END:
                return
            assert isinstance(item, bytes)  # a serialized frame request
            yield item

    async def _read(self) -> None:
        try:
            async for response in self._call:
                self._results.put_nowait(self._core.accept(response))
        except grpc.aio.AioRpcError as exc:
            error = await self._status.error(exc)
            if error is not None:  # else the server ended the stream with OK
                self._core.failed(error)
        except ClassifierClientError:  # a malformed answer: recorded by the core
            self._call.cancel()
        except asyncio.CancelledError:
            # grpc.aio raises this when *we* cancel the call; anything else is a real cancellation.
            if not self._core.cancelled:
                raise
        finally:
            self._ended()

    def _ended(self) -> None:
        """The call ended (or the stream closed before it started): wake everyone waiting."""
        self._core.finish()
        if self._on_end is not None:
            self._on_end()
        self._finished.set()
        self._end_requests()
        self._results.put_nowait(_END)

    def _end_requests(self) -> None:
        # Unblock gRPC's task that waits on the request iterator: drop what is queued, then end.
        while True:
            try:
                self._requests.get_nowait()
            except asyncio.QueueEmpty:
                break
        self._requests.put_nowait(_END)
