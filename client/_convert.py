"""The one place where protobuf messages become client values and back."""

from __future__ import annotations

from typing import cast, overload

import grpc
import numpy as np

from client._errors import ClassifierClientError
from client._types import (
    NO_PROBABILITIES,
    EncodedFrame,
    FrameError,
    ModelInfo,
    Prediction,
    ScoredLabel,
    StreamOptions,
)
from client.api.v1 import stream_classifier_pb2 as pb

# As the generated stub names it (package streamclassify.v1, service StreamClassifier).
CLASSIFY_METHOD = "/streamclassify.v1.StreamClassifier/Classify"


def model_info_from_pb(message: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(
        labels=tuple(message.labels),
        input_width=message.input_width,
        input_height=message.input_height,
        input_channels=message.input_channels or 3,
        default_window=message.default_window,
        max_batch=message.max_batch,
        model_name=message.model_name,
        device=message.device,
        model_version=message.model_version,
        model_versions_available=tuple(message.model_versions_available),
    )


def config_request(options: StreamOptions) -> pb.ClassifyRequest:
    # PACKED rather than the default REPEATED: the same float32 values, far cheaper to parse.
    probabilities = pb.PROBABILITIES_PACKED if options.probabilities else pb.PROBABILITIES_NONE
    return pb.ClassifyRequest(
        config=pb.StreamConfig(
            client_id=options.client_id,
            source=options.source,
            window=options.window,
            # The stubs type proto enums as their own classes; the wire value is our enum's number.
            delivery=cast(pb.DeliveryMode, int(options.delivery)),
            top_k=options.top_k,
            probabilities=probabilities,
        )
    )


# Frame fields' tags (field number << 3 | wire type: 0 for varints, 2 for data), one byte each.
_SEQ, _ENCODING, _WIDTH, _HEIGHT, _CHANNELS, _CAPTURE_TIME = (
    bytes([n << 3]) for n in (1, 2, 3, 4, 5, 7)
)
_DATA = b"\x32"  # field 6, length-delimited
_REQUEST_FRAME_TAG = b"\x12"  # ClassifyRequest.frame (field 2), length-delimited
_U64 = (1 << 64) - 1


def _varint(value: int) -> bytes:
    value &= _U64  # int64 fields carry negatives as 64-bit two's complement, as protobuf
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint_field(tag: bytes, value: int) -> bytes:
    # proto3 leaves fields at zero out; so does protobuf's own serializer
    return tag + _varint(value) if value else b""


def frame_request(seq: int, frame: EncodedFrame, capture_time_us: int) -> bytes:
    """The frame's ``ClassifyRequest``, serialized.

    The bytes ``SerializeToString`` gives (fields in number order, zeros left out), built with
    one copy of the frame's data: a message and then its serialization would copy it twice,
    the largest share of a client's CPU per frame (py-spy on bench row 3, BENCHMARKS.md
    session 10). Streams send it through :func:`serialize_request`.
    """
    data = frame.data
    head = b"".join(
        (
            _varint_field(_SEQ, seq),
            _varint_field(_ENCODING, int(frame.encoding)),
            _varint_field(_WIDTH, frame.width),
            _varint_field(_HEIGHT, frame.height),
            _varint_field(_CHANNELS, frame.channels),
            _DATA + _varint(len(data)) if data else b"",
        )
    )
    tail = _varint_field(_CAPTURE_TIME, capture_time_us)
    size = len(head) + len(data) + len(tail)
    return b"".join((_REQUEST_FRAME_TAG, _varint(size), head, data, tail))


def serialize_request(request: bytes | pb.ClassifyRequest) -> bytes:
    """A stream's request serializer: frames come serialized already (:func:`frame_request`)."""
    return request if isinstance(request, bytes) else request.SerializeToString()


@overload
def classify_method(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable: ...
@overload
def classify_method(channel: grpc.Channel) -> grpc.StreamStreamMultiCallable: ...
def classify_method(
    channel: grpc.Channel | grpc.aio.Channel,
) -> grpc.StreamStreamMultiCallable | grpc.aio.StreamStreamMultiCallable:
    """The ``Classify`` method on ``channel``, sending requests through :func:`serialize_request`."""
    return channel.stream_stream(
        CLASSIFY_METHOD,
        request_serializer=serialize_request,
        response_deserializer=pb.ClassifyResponse.FromString,
    )


def probabilities_from_pb(message: pb.ClassifyResponse) -> np.ndarray:
    """The vector as a read-only float32 array, from whichever field the server filled.

    Servers that predate ``probabilities_f32`` ignore the format asked for and fill the repeated
    field, so that is the fallback.
    """
    if message.probabilities_f32:
        data = message.probabilities_f32
        if len(data) % 4:
            raise ValueError(f"probabilities_f32 has {len(data)} bytes, not a multiple of 4")
        return np.frombuffer(data, "<f4")  # read-only: a view of immutable bytes
    if not message.probabilities:
        return NO_PROBABILITIES
    vector = np.array(message.probabilities, np.float32)
    vector.flags.writeable = False
    return vector


def malformed_answer(exc: ValueError) -> ClassifierClientError:
    return ClassifierClientError(
        grpc.StatusCode.INTERNAL, f"the server sent an answer that cannot be read: {exc}"
    )


def prediction_from_pb(message: pb.ClassifyResponse, *, probabilities: bool = True) -> Prediction:
    """``probabilities=False`` skips decoding the vector (an older server sends it anyway).

    Raises:
        ValueError: the answer is malformed (see :func:`malformed_answer`).
    """
    error = None
    if message.HasField("error") and message.error.code != 0:
        error = FrameError(code=message.error.code, message=message.error.message)
    return Prediction(
        seq=message.seq,
        label=message.label,
        score=message.score,
        probabilities=probabilities_from_pb(message) if probabilities else NO_PROBABILITIES,
        frame_label=message.frame_label,
        frame_score=message.frame_score,
        top_k=tuple(ScoredLabel(item.label, item.score) for item in message.top_k),
        window_frames=message.window_frames,
        dropped_frames=message.dropped_frames,
        batch_size=message.batch_size,
        queue_us=message.queue_us,
        inference_us=message.inference_us,
        capture_time_us=message.capture_time_us,
        error=error,
        model_version=message.model_version,
    )
