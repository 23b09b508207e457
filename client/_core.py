"""What the blocking and the asyncio client share: everything but the I/O style.

:mod:`client._sync` and :mod:`client._aio` are thin shells that move requests and answers with
threads or with the event loop; the decisions (stream config, frame encoding, sequence numbers,
answer parsing, error translation, what "closed" means) are made here, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from client import _convert
from client._channel import ConnectionSettings, now_us
from client._errors import ClassifierClientError
from client._frames import ImageLike, check_encoding_options, encode_frame
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

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameEncoder:
    """How one stream turns images into frames; checked when the stream opens, not at first send."""

    size: tuple[int, int] | None
    channel_order: ChannelOrder = "rgb"
    wire_format: WireFormat = "raw"
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        check_encoding_options(self.channel_order, self.wire_format, self.jpeg_quality)

    @staticmethod
    def passes_through(image: ImageLike) -> bool:
        """True when ``image`` is sent as it is (encoded bytes): no pixel work worth a thread."""
        return isinstance(image, (EncodedFrame, bytes, bytearray, memoryview))

    def encode(self, image: ImageLike, channel_order: ChannelOrder | None = None) -> EncodedFrame:
        return encode_frame(
            image,
            size=self.size,
            channel_order=channel_order or self.channel_order,
            wire_format=self.wire_format,
            jpeg_quality=self.jpeg_quality,
        )


@dataclass(frozen=True)
class StreamPlan:
    """How a stream is opened: what the server is told, and how frames are prepared."""

    options: StreamOptions
    encoder: FrameEncoder


class ClientCore:
    """The state both clients keep: settings, the model info, open/closed."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._model_info: ModelInfo | None = None
        self._closed = False

    @property
    def address(self) -> str:
        return self._settings.address

    @property
    def client_id(self) -> str:
        return self._settings.client_id

    @property
    def model_info(self) -> ModelInfo:
        """The server's model, as reported when connecting."""
        if self._model_info is None:
            raise RuntimeError("call `await client.connect()` (or use `async with`) first")
        return self._model_info

    def _connected(self, reply: pb.ModelInfo) -> ModelInfo:
        self._model_info = _convert.model_info_from_pb(reply)
        logger.debug("connected to %s: %s", self.address, self._model_info)
        return self._model_info

    def _plan_stream(
        self,
        source: str,
        *,
        window: int,
        delivery: Delivery,
        top_k: int,
        channel_order: ChannelOrder,
        wire_format: WireFormat,
        jpeg_quality: int,
        resize: bool,
        probabilities: bool,
    ) -> StreamPlan:
        if self._closed:
            raise ClassifierClientError(grpc.StatusCode.CANCELLED, "the client is closed")
        info = self.model_info
        return StreamPlan(
            StreamOptions(
                source=source,
                window=window,
                delivery=delivery,
                top_k=top_k,
                client_id=self.client_id,
                probabilities=probabilities,
            ),
            FrameEncoder(
                size=info.input_size if resize else None,
                channel_order=channel_order,
                wire_format=wire_format,
                jpeg_quality=jpeg_quality,
            ),
        )


class StreamCore:
    """One stream's bookkeeping: sequence numbers, counters, open/closed, the error that ended it.

    Not locked by itself: each shell serialises the send side (its own lock) and has one reader.
    """

    def __init__(self, plan: StreamPlan) -> None:
        self.options = plan.options
        self.encoder = plan.encoder
        self._next_seq = 0
        self._received = 0
        self._dropped = 0
        self._send_closed = False
        self._closed = False
        self._cancelled = False  # we cancelled the call: its CANCELLED status is not an error
        self._finished = False
        self._error: ClassifierClientError | None = None

    # Read by both public stream classes through StreamBase.

    @property
    def sent(self) -> int:
        return self._next_seq

    @property
    def received(self) -> int:
        return self._received

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def closed(self) -> bool:
        return self._closed

    # The send side.

    def config_request(self) -> pb.ClassifyRequest:
        return _convert.config_request(self.options)

    def frame_request(self, frame: EncodedFrame, capture_time_us: int | None) -> tuple[int, bytes]:
        """The next frame's sequence number and serialized request; raises when the stream
        cannot send."""
        self.check_open()
        seq = self._next_seq
        self._next_seq += 1
        stamp = now_us() if capture_time_us is None else capture_time_us
        return seq, _convert.frame_request(seq, frame, stamp)

    def check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed or self._send_closed or self._finished:
            raise ClassifierClientError(
                grpc.StatusCode.CANCELLED, "the stream is closed for sending"
            )

    def half_close(self) -> bool:
        """Mark the send side closed; True when the shell must still queue the end marker."""
        if self._send_closed or self._closed:
            return False
        self._send_closed = True
        return not self._finished

    def close(self) -> bool:
        """Mark the stream closed; True when the shell must cancel the call (first close while
        the server has not finished). False on a second close too: see :attr:`closed`."""
        if self._closed:
            return False
        self._closed = True
        if self._finished:
            return False
        self._cancelled = True
        return True

    # The receive side.

    def accept(self, response: pb.ClassifyResponse) -> Prediction:
        """Parse one answer and count it.

        Raises:
            ClassifierClientError: the answer is malformed; the stream cannot be trusted, so it is
                recorded as the stream's error and the shell must cancel the call.
        """
        try:
            prediction = _convert.prediction_from_pb(
                response, probabilities=self.options.probabilities
            )
        except ValueError as exc:
            self._error = _convert.malformed_answer(exc)
            self._cancelled = True
            raise self._error from None
        self._dropped = prediction.dropped_frames
        self._received += 1
        return prediction

    def failed(self, error: grpc.RpcError) -> None:
        """The call ended with ``error``; an error caused by our own cancel is not one."""
        if not self._cancelled:
            self._error = ClassifierClientError.from_rpc_error(error)
            logger.debug("stream %r failed: %s", self.options.source, self._error)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def finish(self) -> None:
        self._finished = True

    def end_of_results(self) -> None:
        """Called when the results are exhausted: raises the error that ended the stream, if any."""
        if self._error is not None:
            raise self._error


class StreamBase:
    """The public read-only face both stream classes share."""

    _core: StreamCore

    @property
    def options(self) -> StreamOptions:
        """How the stream was opened."""
        return self._core.options

    @property
    def sent(self) -> int:
        """Frames sent so far."""
        return self._core.sent

    @property
    def received(self) -> int:
        """Predictions received so far (including those with an error)."""
        return self._core.received

    @property
    def dropped_frames(self) -> int:
        """Frames the server dropped (LIVE), as of the latest prediction."""
        return self._core.dropped_frames
