"""Blocking client: a thread feeds each stream's requests, another reads its results.

Only the I/O style lives here; the decisions are made in :mod:`client._core`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Final, Protocol

import grpc

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
from client._types import ChannelOrder, Delivery, Prediction, WireFormat
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

_END: Final = object()  # marks the end of a request or result queue
_POLL_S = 0.1  # how often a blocked send() rechecks whether the stream ended


class _ClassifyCall(Protocol):
    """What a started ``Classify`` call is used for here (grpc's type for it is private)."""

    def __iter__(self) -> Iterator[pb.ClassifyResponse]: ...

    def cancel(self) -> bool: ...


class StreamClient(ClientCore):
    """A blocking connection to a Stream Classification server.

    Connecting asks ``GetModelInfo`` once; a server that cannot be reached raises
    :class:`ClassifierClientError` within ``connect_timeout`` seconds.

    Args:
        address: ``host:port`` of the server, or any gRPC target: ``dns:///host:port``,
            ``ipv4:127.0.0.1:1,127.0.0.1:2`` (several servers), ``unix:/path/to.sock``.
        credentials: TLS credentials, e.g. :func:`client.channel_credentials`; ``None`` for a
            plaintext channel.
        token: sent as ``authorization: Bearer <token>`` metadata on every call.
        connect_timeout: seconds to wait for the server when connecting.
        wait_for_ready: wait (up to ``connect_timeout``) for a server that is not listening yet,
            instead of failing at once on a refused connection.
        client_id: identifies this client in the server's stream configs and logs.
        max_message_bytes: largest message sent or received (the server's default).
        load_balancing: the channel's load-balancing policy, e.g. ``"round_robin"`` to spread
            streams over the servers of a multi-address target; ``None`` is gRPC's pick_first.
        max_streams_per_channel: streams one channel (one connection) carries; more streams
            open more channels, so a server's per-connection call cap never leaves a stream
            waiting unserved (docs/connections.md).

    Raises:
        ClassifierClientError: the server cannot be reached or refused ``GetModelInfo``.
        ValueError: an argument is invalid.

    Example:
        >>> with StreamClient("127.0.0.1:1234") as client:  # doctest: +SKIP
        ...     with client.open_stream("cam0", window=5) as stream:
        ...         for image in images:
        ...             stream.send(image)
        ...         stream.close_send()
        ...         for prediction in stream:
        ...             print(prediction.seq, prediction.label, prediction.score)
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
        settings = ConnectionSettings(
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
        super().__init__(settings)
        self._channel = self._open_channel()
        self._pool = ChannelPool(self._channel, self._open_channel, max_streams_per_channel)
        self._stub = pb_grpc.StreamClassifierStub(self._channel)
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()
        try:
            reply = self._stub.GetModelInfo(
                pb.GetModelInfoRequest(),
                timeout=connect_timeout,
                metadata=settings.metadata,
                wait_for_ready=wait_for_ready,
            )
        except grpc.RpcError as exc:
            self._channel.close()
            raise settings.unreachable(exc) from None
        self._connected(reply)

    def _open_channel(self) -> grpc.Channel:
        settings = self._settings
        options = settings.channel_options()
        if settings.credentials is None:
            return grpc.insecure_channel(settings.address, options=options)
        return grpc.secure_channel(settings.address, settings.credentials, options=options)

    @property
    def channels(self) -> int:
        """Channels (connections) open: one per ``max_streams_per_channel`` streams at once."""
        return len(self._pool.channels)

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
    ) -> Stream:
        """Open one classification stream (one per video source).

        Args:
            source: a name for the source, e.g. ``"cam0"`` (redact credentials from URLs).
            window: frames averaged per prediction; 0 = the server default.
            delivery: ``LOSSLESS`` answers every frame; ``LIVE`` drops stale frames.
            top_k: labels per prediction's ``top_k``; 0 = the server default.
            channel_order: order of 3-channel numpy frames (``"bgr"`` for OpenCV).
            wire_format: ``"raw"`` (default; best on fast links) or ``"jpeg"``.
            jpeg_quality: 1–100 for ``wire_format="jpeg"``.
            resize: resize frames to the model's input size before sending.
            probabilities: fill ``Prediction.probabilities`` with the window-averaged vector
                (sent packed as float32 bytes). ``False`` when only labels and scores are needed:
                answers get smaller and cheaper for both sides (1,000 floats each with ImageNet
                models); ``label``, ``score``, ``top_k`` and the frame's label/score still come.

        Returns:
            The open stream; close it (or use ``with``) when done.

        Raises:
            ClassifierClientError: the client is closed.
            ValueError: an option is invalid.
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
        lease = self._pool.acquire()
        try:
            stream = Stream(
                classify_method(lease.channel),
                plan,
                metadata=self._settings.metadata,
                on_end=lease.release,
            )
        except BaseException:
            lease.release()
            raise
        self._streams.add(stream)
        return stream

    def classify(
        self,
        images: Iterable[ImageLike],
        *,
        window: int = 1,
        top_k: int = 0,
        channel_order: ChannelOrder = "rgb",
        wire_format: WireFormat = "raw",
        probabilities: bool = True,
    ) -> list[Prediction]:
        """Classify images through one LOSSLESS stream, pipelined; one prediction per image, in order.

        ``window=1`` classifies each image on its own (unrelated photos are not averaged);
        ``probabilities=False`` leaves out the vector, as in :meth:`open_stream`.

        Example:
            >>> predictions = client.classify([Image.open("cat.jpg")])  # doctest: +SKIP
        """
        with self.open_stream(
            "classify",
            window=window,
            top_k=top_k,
            channel_order=channel_order,
            wire_format=wire_format,
            probabilities=probabilities,
        ) as stream:
            sender = threading.Thread(target=stream.send_all, args=(images,), daemon=True)
            sender.start()
            results = list(stream)
            sender.join()
            stream.raise_send_error()
        return results

    def close(self) -> None:
        """Cancel open streams and close the channel. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            stream.close()
        for channel in self._pool.channels:
            channel.close()

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Stream(StreamBase):
    """One bidirectional ``Classify`` call. Create with :meth:`StreamClient.open_stream`.

    Sending never waits for results: frames go to a send queue that gRPC drains, and a reader
    thread collects predictions, so many frames are in flight. ``send`` blocks only when the
    server applies flow control (LOSSLESS streams faster than the model).

    With LIVE delivery the server drops stale frames and never answers them, so count on
    ``Prediction.dropped_frames`` rather than one prediction per frame.
    """

    def __init__(
        self,
        classify: grpc.StreamStreamMultiCallable,
        plan: StreamPlan,
        *,
        metadata: tuple[tuple[str, str], ...] | None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._core = StreamCore(plan)
        self._on_end = on_end  # the call ended: its place on the channel is free
        self._requests: queue.Queue[object] = queue.Queue(maxsize=SEND_QUEUE_FRAMES)
        self._results: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()  # orders seq numbers with their place in the queue
        self._close_lock = threading.Lock()
        self._send_error: BaseException | None = None
        self._classify = classify
        self._metadata = metadata
        # Started by the first send, close_send or receive (``_start``), not here.
        self._call: _ClassifyCall
        self._reader: threading.Thread | None = None

    def _start(self) -> None:
        """Start the call: its StreamConfig leaves with the first frame, not before (see
        ``client._aio.AsyncStream._start``: the server ends streams that hold room idle)."""
        with self._close_lock:
            if self._reader is not None or self._core.closed:
                return
            self._call = self._classify(
                self._request_iterator(self._core.config_request()), metadata=self._metadata
            )
            self._reader = threading.Thread(
                target=self._read, name=f"stream-reader-{self._core.options.source}", daemon=True
            )
            self._reader.start()

    def send(
        self,
        image: ImageLike,
        *,
        capture_time_us: int | None = None,
        channel_order: ChannelOrder | None = None,
        timeout: float | None = None,
    ) -> int:
        """Queue one frame and return its sequence number (which its prediction carries).

        Args:
            image: a uint8 numpy array, PIL image, JPEG/PNG bytes or :class:`EncodedFrame`.
            capture_time_us: when the frame was captured; defaults to now.
            channel_order: overrides the stream's order for this numpy frame.
            timeout: seconds to wait for room in the send queue; ``None`` waits as long as the
                stream is open.

        Raises:
            ClassifierClientError: the stream failed or was closed.
            ValueError: the image cannot be made into a frame.
            TimeoutError: no room in the queue within ``timeout``.
        """
        frame = self._core.encoder.encode(image, channel_order)
        with self._lock:
            seq, request = self._core.frame_request(frame, capture_time_us)
            # Enqueue under the lock so frames enter the stream in seq order.
            self._put(request, timeout)
        return seq

    def send_all(self, images: Iterable[ImageLike]) -> int:
        """Send every image, then half-close; returns the number sent. Meant for a sender thread:
        an error is kept for :meth:`raise_send_error` and also ends the stream."""
        count = 0
        try:
            for image in images:
                self.send(image)
                count += 1
            self.close_send()
        except BaseException as exc:
            self._send_error = exc
            self.close()
        return count

    def raise_send_error(self) -> None:
        """Re-raise an error that ended :meth:`send_all`."""
        if self._send_error is not None:
            raise self._send_error

    def close_send(self) -> None:
        """Tell the server no more frames follow; it answers the pending ones and ends the stream."""
        with self._lock:
            if self._core.half_close():
                self._put(_END, None)

    def receive(self, timeout: float | None = None) -> Prediction | None:
        """The next prediction, or ``None`` once the stream has ended.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            ClassifierClientError: the stream ended with an error.
        """
        self._start()
        try:
            item = self._results.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no prediction within {timeout:g} s") from None
        if item is _END:
            self._results.put(_END)  # stays ended for later calls
            self._core.end_of_results()
            return None
        assert isinstance(item, Prediction)
        return item

    def __iter__(self) -> Iterator[Prediction]:
        """Predictions until the server ends the stream (after :meth:`close_send`)."""
        while (prediction := self.receive()) is not None:
            yield prediction

    def close(self) -> None:
        """End the stream now: half-close, cancel the call if the server has not finished, and stop
        the reader. Unread predictions are discarded. Safe to call twice."""
        # Not under self._lock: a sender blocked on a full queue holds it until it sees closed.
        with self._close_lock:
            if self._core.closed:
                return
            cancel = self._core.close()
            reader = self._reader
        if reader is None:  # never started: nothing was sent, nothing will come
            self._ended()
            return
        if cancel:
            self._call.cancel()
        self._end_requests()
        reader.join(timeout=5.0)

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _put(self, item: object, timeout: float | None) -> None:
        self._start()
        waited = 0.0
        while True:
            try:
                self._requests.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                waited += _POLL_S
                if self._core.closed or self._core.finished:
                    self._core.check_open()
                if timeout is not None and waited >= timeout:
                    raise TimeoutError(f"send queue still full after {timeout:g} s") from None

    def _request_iterator(self, config: pb.ClassifyRequest) -> Iterator[pb.ClassifyRequest | bytes]:
        yield config
        while True:
            item = self._requests.get()
            if item is _END:
                return
            assert isinstance(item, bytes)  # a serialized frame request
            yield item

    def _read(self) -> None:
        try:
            for response in self._call:
                self._results.put(self._core.accept(response))
        except grpc.RpcError as exc:
            self._core.failed(exc)
        except ClassifierClientError:  # a malformed answer: recorded by the core
            self._call.cancel()
        finally:
            self._ended()

    def _ended(self) -> None:
        """The call ended (or the stream closed before it started): wake everyone waiting."""
        self._core.finish()
        if self._on_end is not None:
            self._on_end()
        self._end_requests()
        self._results.put(_END)

    def _end_requests(self) -> None:
        # Unblock gRPC's thread that waits on the request iterator: drop what is queued, then end.
        while True:
            try:
                self._requests.get_nowait()
            except queue.Empty:
                break
        # A sender racing us may refill the queue; its frame is dropped with the stream.
        with contextlib.suppress(queue.Full):
            self._requests.put_nowait(_END)
