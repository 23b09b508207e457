"""Frame requests are serialized by hand: byte for byte what protobuf gives, one copy of the data."""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client import _convert
from client._types import EncodedFrame, Encoding
from client.api.v1 import stream_classifier_pb2 as pb
from streaming.server.server_values import FrameData
from streaming.server.wire import classify_request_parser

_I64 = 2**63


def _protobuf_bytes(seq: int, frame: EncodedFrame, capture_time_us: int) -> bytes:
    message = pb.ClassifyRequest(
        frame=pb.Frame(
            seq=seq,
            encoding=cast(pb.Encoding, int(frame.encoding)),
            width=frame.width,
            height=frame.height,
            channels=frame.channels,
            data=frame.data,
            capture_time_us=capture_time_us,
        )
    )
    return message.SerializeToString()


@pytest.mark.parametrize(
    ("seq", "frame", "capture_time_us"),
    [
        (0, EncodedFrame(Encoding.RAW_RGB, bytes(12), 2, 2, 3), 0),  # zeros are left out
        (1, EncodedFrame(Encoding.RAW_RGB, bytes(range(256)) * 588, 224, 224, 3), 1),
        (300, EncodedFrame(Encoding.JPEG, b"\xff\xd8jpeg"), 1_733_000_000_000_000),
        (2**64 - 1, EncodedFrame(Encoding.PNG, b"\x89PNG"), -1),  # largest seq, negative time
        (5, EncodedFrame(Encoding.RAW_BGR, b"", 0, 0, 3), 7),  # no data: no data field
    ],
)
def test_a_frame_request_is_what_protobuf_serializes(
    seq: int, frame: EncodedFrame, capture_time_us: int
) -> None:
    assert _convert.frame_request(seq, frame, capture_time_us) == _protobuf_bytes(
        seq, frame, capture_time_us
    )


@st.composite
def _frames(draw: st.DrawFn) -> EncodedFrame:
    """Valid frames of every encoding: RAW of any small size, JPEG/PNG of any bytes."""
    encoding = draw(st.sampled_from(list(Encoding)))
    if encoding in (Encoding.JPEG, Encoding.PNG):
        return EncodedFrame(encoding, draw(st.binary(min_size=1, max_size=300)))
    width, height = draw(st.integers(0, 200)), draw(st.integers(0, 3))
    channels = draw(st.sampled_from((1, 3)))
    data = draw(st.binary(min_size=width * height * channels, max_size=width * height * channels))
    return EncodedFrame(encoding, data, width, height, channels)


@given(
    seq=st.integers(0, 2**64 - 1),
    frame=_frames(),
    capture_time_us=st.integers(-_I64, _I64 - 1),
)
def test_frame_requests_round_trip_through_protobuf_and_the_server_parser(
    seq: int, frame: EncodedFrame, capture_time_us: int
) -> None:
    wire = _convert.frame_request(seq, frame, capture_time_us)
    assert wire == _protobuf_bytes(seq, frame, capture_time_us)
    parsed = classify_request_parser()(wire)
    assert isinstance(parsed, FrameData)
    assert (parsed.seq, int(parsed.encoding), parsed.capture_time_us) == (
        seq,
        int(frame.encoding),
        capture_time_us,
    )
    assert (parsed.width, parsed.height, parsed.channels) == (
        frame.width,
        frame.height,
        frame.channels,
    )
    assert bytes(parsed.data) == frame.data


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (b"\x12\x02\x08\x01", b"\x12\x02\x08\x01"),  # a frame request: sent as it is
        (pb.ClassifyRequest(config=pb.StreamConfig(window=3)), b"\x0a\x02\x18\x03"),
    ],
)
def test_the_stream_serializer_passes_frames_through(
    request_: bytes | pb.ClassifyRequest, expected: bytes
) -> None:
    assert _convert.serialize_request(request_) == expected
