"""asyncio client (``grpc.aio``): mirrors :mod:`client._sync` method for method."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Final

import grpc
import grpc.aio

from client import _convert
from client._channel import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    SEND_QUEUE_FRAMES,
    call_metadata,
    channel_options,
    check_settings,
    now_us,
)
from client._errors import ClassifierClientError
from client._frames import ImageLike, encode_frame
from client._types import (
    ChannelOrder,
    Delivery,
    EncodedFrame,
    ModelInfo,
    Prediction,
    StreamOptions,
    WireFormat,
)
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

_END: Final = object()


class AsyncStreamClient:
    """An asyncio connection to a Stream Classification server; see :class:`client.StreamClient`.

    Nothing happens until :meth:`connect` (or ``async with``), which asks ``GetModelInfo`` once.

    Args:
        address: ``host:port`` of the server.
        credentials: TLS credentials; ``None`` for a plaintext channel.
        token: sent as ``authorization: Bearer <token>`` metadata on every call.
        connect_timeout: seconds to wait for the server when connecting.
        wait_for_ready: wait for a server that is not listening yet instead of failing at once.
        client_id: identifies this client in the server's stream configs and logs.
        max_message_bytes: largest message sent or received.

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
    ) -> None:
        check_settings(address, connect_timeout, max_message_bytes)
        self.address = address
        self.client_id = client_id
        self._credentials = credentials
        self._metadata = call_metadata(token)
        self._connect_timeout = connect_timeout
        self._wait_for_ready = wait_for_ready
        self._max_message_bytes = max_message_bytes
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.StreamClassifierStub | None = None
        self._model_info: ModelInfo | None = None
        self._streams: set[AsyncStream] = set()
        self._closed = False

    async def connect(self) -> ModelInfo:
        """Open the channel and fetch the model info (once; later calls return it).

        Raises:
            ClassifierClientError: the server cannot be reached within ``connect_timeout``.
        """
        if self._model_info is not None:
            return self._model_info
        if self._closed:
            raise ClassifierClientError(grpc.StatusCode.CANCELLED, "the client is closed")
        options = channel_options(self._max_message_bytes)
        if self._credentials is None:
            channel = grpc.aio.insecure_channel(self.address, options=options)
        else:
            channel = grpc.aio.secure_channel(self.address, self._credentials, options=options)
        stub = pb_grpc.StreamClassifierStub(channel)
        try:
            reply = await stub.GetModelInfo(
                pb.GetModelInfoRequest(),
                timeout=self._connect_timeout,
                metadata=self._metadata,
                wait_for_ready=self._wait_for_ready,
            )
        except grpc.aio.AioRpcError as exc:
            await channel.close()
            raise ClassifierClientError.from_rpc_error(
                exc,
                f"cannot reach the classification server at {self.address} (timeout {self._connect_timeout:g} s)",
            ) from None
        self._channel, self._stub = channel, stub
        self._model_info = _convert.model_info_from_pb(reply)
        logger.debug("connected to %s: %s", self.address, self._model_info)
        return self._model_info

    @property
    def model_info(self) -> ModelInfo:
        """The server's model; available after :meth:`connect`."""
        if self._model_info is None:
            raise RuntimeError("call `await client.connect()` (or use `async with`) first")
        return self._model_info

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
        info = self.model_info
        if self._closed or self._stub is None:
            raise ClassifierClientError(grpc.StatusCode.CANCELLED, "the client is closed")
        options = StreamOptions(
            source=source,
            window=window,
            delivery=delivery,
            top_k=top_k,
            client_id=self.client_id,
            probabilities=probabilities,
        )
        stream = AsyncStream(
            self._stub,
            options,
            metadata=self._metadata,
            size=info.input_size if resize else None,
            channel_order=channel_order,
            wire_format=wire_format,
            jpeg_quality=jpeg_quality,
            on_close=self._streams.discard,
        )
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
        if self._channel is not None:
            await self._channel.close()

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


class AsyncStream:
    """One bidirectional ``Classify`` call on the event loop; see :class:`client.Stream`.

    A task reads predictions into a queue while frames are sent, so many frames are in flight.
    """

    def __init__(
        self,
        stub: pb_grpc.StreamClassifierStub,
        options: StreamOptions,
        *,
        metadata: tuple[tuple[str, str], ...] | None,
        size: tuple[int, int] | None,
        channel_order: ChannelOrder,
        wire_format: WireFormat,
        jpeg_quality: int,
        on_close: Callable[[AsyncStream], None] | None = None,
    ) -> None:
        self.options = options
        self._size = size
        self._channel_order = channel_order
        self._wire_format = wire_format
        self._jpeg_quality = jpeg_quality
        self._on_close = on_close
        self._requests: asyncio.Queue[object] = asyncio.Queue(maxsize=SEND_QUEUE_FRAMES)
        self._results: asyncio.Queue[object] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._next_seq = 0
        self._send_closed = False
        self._closed = False
        self._cancelled = False
        self._finished = asyncio.Event()
        self._error: ClassifierClientError | None = None
        self._dropped = 0
        self._received = 0
        self._call = stub.Classify(
            self._request_iterator(_convert.config_request(options)), metadata=metadata
        )
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"stream-reader-{options.source}"
        )

    @property
    def sent(self) -> int:
        """Frames sent so far."""
        return self._next_seq

    @property
    def received(self) -> int:
        """Predictions received so far (including those with an error)."""
        return self._received

    @property
    def dropped_frames(self) -> int:
        """Frames the server dropped (LIVE), as of the latest prediction."""
        return self._dropped

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
        if isinstance(image, (EncodedFrame, bytes, bytearray, memoryview)):
            frame = encode_frame(image)
        else:
            frame = await asyncio.to_thread(
                encode_frame,
                image,
                size=self._size,
                channel_order=channel_order or self._channel_order,
                wire_format=self._wire_format,
                jpeg_quality=self._jpeg_quality,
            )
        async with self._lock:
            self._check_open()
            seq = self._next_seq
            self._next_seq += 1
            request = _convert.frame_request(
                seq, frame, now_us() if capture_time_us is None else capture_time_us
            )
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
            if self._send_closed or self._closed:
                return
            self._send_closed = True
            if not self._finished.is_set():
                await self._put(_END, None)

    async def receive(self, timeout: float | None = None) -> Prediction | None:
        """The next prediction, or ``None`` once the stream has ended.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            ClassifierClientError: the stream ended with an error.
        """
        try:
            item = await asyncio.wait_for(self._results.get(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no prediction within {timeout:g} s") from None
        if item is _END:
            self._results.put_nowait(_END)
            if self._error is not None:
                raise self._error
            return None
        assert isinstance(item, Prediction)
        return item

    def __aiter__(self) -> AsyncIterator[Prediction]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Prediction]:
        while (prediction := await self.receive()) is not None:
            yield prediction

    async def close(self) -> None:
        """End the stream now; unread predictions are discarded. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)
        if not self._finished.is_set():
            self._cancelled = True
            self._call.cancel()
        self._end_requests()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
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

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed or self._send_closed or self._finished.is_set():
            raise ClassifierClientError(
                grpc.StatusCode.CANCELLED, "the stream is closed for sending"
            )

    async def _put(self, item: object, timeout: float | None) -> None:
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
        self._check_open()

    async def _request_iterator(
        self, config: pb.ClassifyRequest
    ) -> AsyncIterator[pb.ClassifyRequest]:
        yield config
        while True:
            item = await self._requests.get()
            if item is _END:
                return
            assert isinstance(item, pb.ClassifyRequest)
            yield item

    async def _read(self) -> None:
        try:
            async for response in self._call:
                prediction = _convert.prediction_from_pb(
                    response, probabilities=self.options.probabilities
                )
                self._dropped = prediction.dropped_frames
                self._received += 1
                self._results.put_nowait(prediction)
        except grpc.aio.AioRpcError as exc:
            if not self._cancelled:
                self._error = ClassifierClientError.from_rpc_error(exc)
                logger.debug("stream %r failed: %s", self.options.source, self._error)
        except ValueError as exc:  # an answer we cannot decode: the stream cannot be trusted
            self._error = _convert.malformed_answer(exc)
            self._cancelled = True
            self._call.cancel()
        except asyncio.CancelledError:
            # grpc.aio raises this when *we* cancel the call; anything else is a real cancellation.
            if not self._cancelled:
                raise
        finally:
            self._finished.set()
            self._end_requests()
            self._results.put_nowait(_END)

    def _end_requests(self) -> None:
        while True:
            try:
                self._requests.get_nowait()
            except asyncio.QueueEmpty:
                break
        self._requests.put_nowait(_END)
