"""Property-based fuzzing of what clients send: configs, frames, raw bytes, old-API requests.

Whatever arrives, the answer is a result, an in-band code 3, or INVALID_ARGUMENT: never
UNKNOWN or INTERNAL, never a traceback in the log, and the server keeps serving.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

pytest.importorskip("hypothesis")  # in the dev extra; skipped where it is not installed

from google.protobuf.message import DecodeError  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc  # noqa: E402
from client.api.v1 import stream_classifier_pb2 as pb  # noqa: E402
from streaming.server.server_values import FrameData  # noqa: E402
from streaming.server.wire import Undecodable, classify_request_parser, frame_from_pb  # noqa: E402
from tests.strategies import (  # noqa: E402
    frames,
    good_frame_request,
    int32,
    stream_configs,
    texts,
    uint32,
)

pytestmark = pytest.mark.timeout(300)

CLASSIFY = "/streamclassify.v1.StreamClassifier/Classify"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ALLOWED = (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
TEXT_MAX, DATA_MAX, TAIL_MAX = 1500, 3000, 200


def call_status(action: Any) -> tuple[grpc.StatusCode, Any]:
    try:
        return grpc.StatusCode.OK, action()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def classify_bytes(address: str, messages: list[bytes]) -> tuple[grpc.StatusCode, Any]:
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(CLASSIFY, response_deserializer=pb.ClassifyResponse.FromString)
        return call_status(lambda: list(call(iter(messages), timeout=20)))


@pytest.fixture
def fuzz_server(server_factory: Any, caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    server = server_factory()
    yield server
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert all(len(r.getMessage()) < 2000 for r in caplog.records), "an unbounded log line"


@FUZZ
@given(config=stream_configs(max_text=TEXT_MAX))
def test_fuzzed_configs(fuzz_server: Any, config: pb.StreamConfig) -> None:
    first = pb.ClassifyRequest(config=config).SerializeToString()
    code, outcome = classify_bytes(fuzz_server.address, [first, good_frame_request(0)])
    assert code in ALLOWED, (code, outcome)
    if code == grpc.StatusCode.OK:
        assert [r.seq for r in outcome] == [0] and not outcome[0].HasField("error")


@FUZZ
@given(sent=st.lists(frames(max_data=DATA_MAX, max_tail=TAIL_MAX), min_size=1, max_size=4))
def test_fuzzed_frames_are_answered_in_band(fuzz_server: Any, sent: list[pb.Frame]) -> None:
    messages = [pb.ClassifyRequest(config=pb.StreamConfig(delivery=1)).SerializeToString()]
    messages += [pb.ClassifyRequest(frame=f).SerializeToString() for f in sent]
    messages.append(good_frame_request(7))
    code, outcome = classify_bytes(fuzz_server.address, messages)
    assert code == grpc.StatusCode.OK, (code, outcome)
    assert len(outcome) == len(sent) + 1
    assert all(r.error.code in (0, 3) for r in outcome)
    assert outcome[-1].seq == 7 and not outcome[-1].HasField("error")


@FUZZ
@given(messages=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_fuzzed_raw_bytes(fuzz_server: Any, messages: list[bytes]) -> None:
    code, outcome = classify_bytes(fuzz_server.address, messages)
    assert code in ALLOWED, (code, outcome)
    code, outcome = classify_bytes(
        fuzz_server.address, [pb.ClassifyRequest(config=pb.StreamConfig()).SerializeToString()]
    )
    assert code == grpc.StatusCode.OK  # and the server still serves


@FUZZ
@given(
    request=st.builds(
        sc_service_pb2.server_input,
        imgs=st.binary(max_size=3000),
        batch=int32,
        width=int32,
        height=int32,
        channel=int32,
        data_type=st.one_of(
            st.sampled_from(["uint8", "float32", "<f8", "int16", ""]), texts(TEXT_MAX)
        ),
        client_id=texts(TEXT_MAX),
    )
)
def test_fuzzed_legacy_requests(fuzz_server: Any, request: sc_service_pb2.server_input) -> None:
    with grpc.insecure_channel(fuzz_server.address) as channel:
        stub = sc_service_pb2_grpc.sc_serviceStub(channel)
        code, outcome = call_status(lambda: stub.inference(request, timeout=20))
    assert code in ALLOWED, (code, outcome)


# The Classify deserializer reads frame requests by hand (zero copy); protobuf is the reference.
PARSE = classify_request_parser()
PARSER_FUZZ = settings(max_examples=400, deadline=None)
uint64 = st.integers(0, 2**64 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
wire_frames = st.builds(
    pb.Frame,
    seq=uint64,
    encoding=int32,
    width=uint32,
    height=uint32,
    channels=uint32,
    data=st.binary(max_size=600),
    capture_time_us=int64,
)


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def assert_agrees_with_protobuf(data: bytes) -> None:
    parsed = PARSE(data)
    try:
        reference = pb.ClassifyRequest.FromString(data)
    except DecodeError:
        assert isinstance(parsed, Undecodable), (data, parsed)
        return
    if isinstance(parsed, FrameData):
        assert reference.WhichOneof("kind") == "frame", (data, reference)
        expected = frame_from_pb(reference.frame)
        assert parsed == expected, (data, parsed, expected)
        # a view into the received bytes, not a copy
        assert isinstance(parsed.data, memoryview) or not parsed.data
    else:
        assert parsed == reference, (data, parsed, reference)


@PARSER_FUZZ
@given(frame=wire_frames)
def test_the_frame_parser_reads_valid_frames_as_protobuf_does(frame: pb.Frame) -> None:
    data = pb.ClassifyRequest(frame=frame).SerializeToString()
    assert isinstance(PARSE(data), FrameData)  # the hand parser took it, no fallback
    assert_agrees_with_protobuf(data)


@PARSER_FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        # random Frame bodies, so the hand parser's inner loop sees the garbage
        st.binary(max_size=300).map(lambda body: b"\x12" + varint(len(body)) + body),
        st.tuples(st.binary(max_size=300), st.integers(0, 400)).map(
            lambda pair: b"\x12" + varint(pair[1]) + pair[0]
        ),
        # valid frames cut short, extended, or with a byte changed
        st.tuples(wire_frames, st.integers(0, 700), st.binary(max_size=20)).map(
            lambda t: pb.ClassifyRequest(frame=t[0]).SerializeToString()[: t[1]] + t[2]
        ),
        st.tuples(wire_frames, st.integers(0, 700), st.integers(0, 255)).map(
            lambda t: _with_byte(pb.ClassifyRequest(frame=t[0]).SerializeToString(), t[1], t[2])
        ),
        # a frame with overlong varints, repeated fields, or two frames merged
        st.tuples(wire_frames, wire_frames).map(
            lambda t: b"".join(pb.ClassifyRequest(frame=f).SerializeToString() for f in t)
        ),
        st.tuples(uint64, st.integers(0, 3)).map(
            lambda t: b"\x12" + varint(len(_overlong(t[0], t[1])) + 1) + b"\x08" + _overlong(*t)
        ),
    )
)
def test_the_frame_parser_never_raises_and_agrees_with_protobuf(data: bytes) -> None:
    assert_agrees_with_protobuf(data)


def _with_byte(data: bytes, position: int, value: int) -> bytes:
    if not data:
        return data
    position %= len(data)
    return data[:position] + bytes([value]) + data[position + 1 :]


def _overlong(value: int, padding: int) -> bytes:
    """``value`` as a varint with ``padding`` needless zero groups (protobuf accepts them)."""
    encoded = bytearray(varint(value))
    for _ in range(padding):
        encoded[-1] |= 0x80
        encoded.append(0)
    return bytes(encoded)
