"""Property-based fuzzing from outside the server's process, beside a well-behaved load.

Random bytes as raw gRPC request bodies, random StreamConfig values and random Frame headers and
data: whatever arrives is answered (a result, an in-band code 3) or refused with
INVALID_ARGUMENT, never UNKNOWN, and the rest of the checks hold afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

pytest.importorskip("hypothesis")  # in the dev extra

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from client.api.v1 import stream_classifier_pb2 as pb  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CLASSIFY = "/streamclassify.v1.StreamClassifier/Classify"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # the suite runs without a cache directory
    suppress_health_check=[HealthCheck.too_slow],
)
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
uint32 = st.integers(0, 2**32 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
texts = st.text(max_size=2000)  # any code point, control characters included
frames = st.builds(
    pb.Frame,
    seq=st.integers(0, 2**64 - 1),
    encoding=st.integers(0, 6),
    width=st.integers(0, 70000),
    height=st.integers(0, 70000),
    channels=st.integers(0, 5),
    data=st.one_of(
        st.binary(max_size=4000),
        # JPEG (SOF0) and PNG signatures with random headers after them.
        st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xc0\x00\x11\x08"]).flatmap(
            lambda head: st.binary(max_size=300).map(lambda tail: head + tail)
        ),
    ),
)


def _good_frame(seq: int) -> bytes:
    data = bytes([200, 10, 10]) * (32 * 24)
    frame = pb.Frame(seq=seq, width=32, height=24, channels=3, data=data)
    return pb.ClassifyRequest(frame=frame).SerializeToString()


class _RawCaller:
    """Sends serialized request bodies on one channel (no request serializer: bytes as they are)
    and records every status seen."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._call = channel.stream_stream(
            CLASSIFY,
            request_serializer=None,
            response_deserializer=pb.ClassifyResponse.FromString,
        )
        self.seen: list[str] = []

    def __call__(self, messages: list[bytes]) -> tuple[grpc.StatusCode, Any]:
        try:
            code, outcome = grpc.StatusCode.OK, list(self._call(iter(messages), timeout=30))
        except grpc.RpcError as exc:
            code, outcome = exc.code(), exc.details()
        self.seen.append(code.name)
        return code, outcome


def _fuzz_beside_load(adversary: Any, attack: Callable[[_RawCaller], None]) -> int:
    with grpc.insecure_channel(adversary.target.address) as channel:
        caller = _RawCaller(channel)
        with adversary.beside_load() as load:
            attack(caller)
    growth = adversary.check_survived(load, caller.seen)
    adversary.report(
        f"{len(caller.seen)} fuzzed calls, statuses {sorted(set(caller.seen))}; "
        f"peak RSS +{growth:.0f} MiB; load answered {load.answered} frames"
    )
    return len(caller.seen)


def test_fuzzed_raw_request_bytes(adversary: Any) -> None:
    def attack(call: _RawCaller) -> None:
        @FUZZ
        @given(messages=st.lists(st.binary(max_size=500), min_size=1, max_size=5))
        def garbage(messages: list[bytes]) -> None:
            code, outcome = call(messages)
            assert code in ALLOWED, (code, outcome)

        garbage()

    assert _fuzz_beside_load(adversary, attack) > 0


def test_fuzzed_stream_configs(adversary: Any) -> None:
    def attack(call: _RawCaller) -> None:
        @FUZZ
        @given(
            client_id=texts,
            source=texts,
            window=uint32,
            top_k=uint32,
            delivery=int32,
            probabilities=int32,
        )
        def configs(
            client_id: str, source: str, window: int, top_k: int, delivery: int, probabilities: int
        ) -> None:
            config = pb.StreamConfig(
                client_id=client_id,
                source=source,
                window=window,
                top_k=top_k,
                delivery=delivery,  # type: ignore[arg-type]  # any int32, unknown values too
                probabilities=probabilities,  # type: ignore[arg-type]
            )
            first = pb.ClassifyRequest(config=config).SerializeToString()
            code, outcome = call([first, _good_frame(0)])
            assert code in ALLOWED, (code, outcome)
            if code == grpc.StatusCode.OK:
                assert [r.seq for r in outcome] == [0] and not outcome[0].HasField("error")

        configs()

    assert _fuzz_beside_load(adversary, attack) > 0


def test_fuzzed_frames_are_answered_in_band(adversary: Any) -> None:
    def attack(call: _RawCaller) -> None:
        @FUZZ
        @given(sent=st.lists(frames, min_size=1, max_size=4))
        def frame_headers(sent: list[pb.Frame]) -> None:
            config = pb.StreamConfig(delivery=pb.DELIVERY_MODE_LOSSLESS)
            messages = [pb.ClassifyRequest(config=config).SerializeToString()]
            messages += [pb.ClassifyRequest(frame=f).SerializeToString() for f in sent]
            messages.append(_good_frame(7))
            code, outcome = call(messages)
            assert code == grpc.StatusCode.OK, (code, outcome)
            assert len(outcome) == len(sent) + 1
            assert all(r.error.code in (0, 3) for r in outcome)  # answered or INVALID_ARGUMENT
            assert outcome[-1].seq == 7 and not outcome[-1].HasField("error")

        frame_headers()

    assert _fuzz_beside_load(adversary, attack) > 0
