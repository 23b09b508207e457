"""The one place where protobuf messages become values and back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from client.api.v1 import stream_classifier_pb2 as pb
from streaming.server.server_values import (
    Delivery,
    FrameData,
    FrameResult,
    ModelDescription,
    ProbabilityFormat,
    StreamSettings,
)

_PROBABILITY_FORMATS = frozenset(int(f) for f in ProbabilityFormat)
_DELIVERIES = frozenset(int(d) for d in Delivery)
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not a valid message (corrupt wire format, invalid UTF-8).

    The servicers answer it with INVALID_ARGUMENT; gRPC itself would end the call with a
    generic status and log a traceback per message.
    """

    message_type: str
    size: int
    reason: str

    def describe(self) -> str:
        return f"a {self.size}-byte request is not a valid {self.message_type}: {self.reason}"


def safe_parser(message_class: type[M]) -> Callable[[bytes], M | Undecodable]:
    """A gRPC request deserializer that returns ``Undecodable`` instead of raising."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> M | Undecodable:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            # upb's message repeats the type name; the last clause says what was wrong.
            return Undecodable(name, len(data), str(exc).rsplit(": ", 1)[-1])

    return parse


class _NotPlain(Exception):
    """The message is not one the hand parser reads; protobuf decides what it is."""


# Frame fields by single-byte tag (field number << 3 | wire type): varints, and data (LEN).
_FRAME_VARINT_FIELDS = {0x08: "seq", 0x10: "encoding", 0x18: "width", 0x20: "height"}
_FRAME_VARINT_FIELDS |= {0x28: "channels", 0x38: "capture_time_us"}
_FRAME_DATA_TAG = 0x32
_REQUEST_FRAME_TAG = 0x12  # ClassifyRequest.frame, length-delimited
_U64 = (1 << 64) - 1


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it (at most 10 bytes, as protobuf)."""
    byte = data[position]
    if byte < 0x80:
        return byte, position + 1
    value = byte & 0x7F
    shift = 7
    position += 1
    while True:
        if shift > 63:
            raise _NotPlain
        byte = data[position]  # IndexError past the end: truncated, protobuf says why
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            break
        shift += 7
    if value > _U64:
        raise _NotPlain
    return value, position


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _plain_frame(data: bytes) -> FrameData:
    """A ClassifyRequest that is exactly one Frame of known fields, read without copying its data.

    Raises:
        _NotPlain: anything else (a config, unknown or repeated-oneof fields, malformed bytes).
    """
    size = len(data)
    if size < 2 or data[0] != _REQUEST_FRAME_TAG:
        raise _NotPlain
    length, position = _varint(data, 1)
    if position + length != size:
        raise _NotPlain  # a second top-level field, or cut short
    fields = {"seq": 0, "encoding": 0, "width": 0, "height": 0, "channels": 0}
    fields["capture_time_us"] = 0
    view: bytes | memoryview = b""
    while position < size:
        tag = data[position]
        position += 1
        name = _FRAME_VARINT_FIELDS.get(tag)
        if name is not None:
            fields[name], position = _varint(data, position)
        elif tag == _FRAME_DATA_TAG:
            length, position = _varint(data, position)
            end = position + length
            if end > size:
                raise _NotPlain
            view = memoryview(data)[position:end]
            position = end
        else:
            raise _NotPlain
    return FrameData(
        seq=fields["seq"],
        encoding=_signed(fields["encoding"], 32),  # an open int32 enum, as protobuf reads it
        width=fields["width"] & 0xFFFFFFFF,
        height=fields["height"] & 0xFFFFFFFF,
        channels=fields["channels"] & 0xFFFFFFFF,
        data=view,
        capture_time_us=_signed(fields["capture_time_us"], 64),
    )


def classify_request_parser() -> Callable[[bytes], pb.ClassifyRequest | FrameData | Undecodable]:
    """The Classify deserializer: a request carrying a Frame becomes ``FrameData`` directly.

    Its ``data`` is a view into the received bytes, so a frame exists once in the server's Python
    memory (protobuf would copy it when parsing and again on each ``frame.data``; at tens of MiB
    per RAW frame those copies are what broke the memory bound). Configs and anything the hand
    parser does not read (unknown fields, malformed bytes) go through protobuf, which decides.
    """
    fallback = safe_parser(pb.ClassifyRequest)

    def parse(data: bytes) -> pb.ClassifyRequest | FrameData | Undecodable:
        try:
            return _plain_frame(data)
        except (_NotPlain, IndexError):
            return fallback(data)

    return parse


def settings_from_pb(
    config: pb.StreamConfig,
    *,
    default_window: int,
    default_top_k: int,
    num_labels: int,
    max_window: int = 300,
    max_top_k: int = 100,
    max_name_chars: int = 1024,
) -> StreamSettings:
    """Apply server defaults (0 means default), check the limits, clamp top-k to the labels.

    Raises:
        ValueError: a field is out of range; the message names it (answered INVALID_ARGUMENT).
    """
    for field_name in ("client_id", "source"):
        value: str = getattr(config, field_name)
        if len(value) > max_name_chars:
            raise ValueError(
                f"{field_name} has {len(value)} characters; at most {max_name_chars} are accepted"
            )
    if config.window > max_window:
        raise ValueError(f"window {config.window} is over this server's limit of {max_window}")
    if config.top_k > max_top_k:
        raise ValueError(f"top_k {config.top_k} is over this server's limit of {max_top_k}")
    # proto3 enums are open: an unknown number arrives as-is rather than as an error.
    if int(config.delivery) not in _DELIVERIES:
        raise ValueError(f"unknown delivery mode {config.delivery} (0 LIVE, 1 LOSSLESS)")
    if int(config.probabilities) not in _PROBABILITY_FORMATS:
        raise ValueError(
            f"unknown probabilities format {config.probabilities} "
            "(0 PROBABILITIES_REPEATED, 1 PROBABILITIES_PACKED, 2 PROBABILITIES_NONE)"
        )
    return StreamSettings(
        client_id=config.client_id,
        source=config.source,
        window=config.window or default_window,
        delivery=Delivery(config.delivery),
        top_k=min(config.top_k or default_top_k, num_labels),
        probabilities=ProbabilityFormat(config.probabilities),
    )


def frame_from_pb(frame: pb.Frame) -> FrameData:
    return FrameData(
        seq=frame.seq,
        encoding=frame.encoding,
        width=frame.width,
        height=frame.height,
        channels=frame.channels,
        data=frame.data,
        capture_time_us=frame.capture_time_us,
    )


def result_to_pb(
    result: FrameResult, probabilities: ProbabilityFormat = ProbabilityFormat.REPEATED
) -> pb.ClassifyResponse:
    """The answer to one frame, with the probability vector in the format the stream asked for."""
    response = pb.ClassifyResponse(
        seq=result.seq,
        dropped_frames=result.dropped_frames,
        batch_size=result.batch_size,
        queue_us=min(result.queue_us, 0xFFFFFFFF),
        inference_us=min(result.inference_us, 0xFFFFFFFF),
        capture_time_us=result.capture_time_us,
        window_frames=result.window_frames,
    )
    if result.error is not None:
        response.error.code = int(result.error.code)
        response.error.message = result.error.message
        return response
    response.label = result.label
    response.score = result.score
    response.frame_label = result.frame_label
    response.frame_score = result.frame_score
    if result.probabilities is not None:
        if probabilities is ProbabilityFormat.PACKED:
            # One memcpy instead of a Python float per label (no copy when already float32 LE).
            response.probabilities_f32 = result.probabilities.astype("<f4", copy=False).tobytes()
        elif probabilities is ProbabilityFormat.REPEATED:
            response.probabilities.extend(result.probabilities.tolist())
    response.top_k.extend(pb.ScoredLabel(label=label, score=score) for label, score in result.top_k)
    return response


def model_info_to_pb(
    description: ModelDescription, *, default_window: int, max_batch: int
) -> pb.ModelInfo:
    return pb.ModelInfo(
        labels=list(description.labels),
        input_width=description.input_width,
        input_height=description.input_height,
        input_channels=description.input_channels,
        default_window=default_window,
        max_batch=max_batch,
        model_name=description.model_name,
        device=description.device,
    )
