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
from tests.strategies import frames, good_frame_request, stream_configs  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CLASSIFY = "/streamclassify.v1.StreamClassifier/Classify"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # the suite runs without a cache directory
    suppress_health_check=[HealthCheck.too_slow],
)
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
TEXT_MAX, DATA_MAX, TAIL_MAX = 2000, 4000, 300


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
        @given(config=stream_configs(max_text=TEXT_MAX))
        def configs(config: pb.StreamConfig) -> None:
            first = pb.ClassifyRequest(config=config).SerializeToString()
            code, outcome = call([first, good_frame_request(0)])
            assert code in ALLOWED, (code, outcome)
            if code == grpc.StatusCode.OK:
                assert [r.seq for r in outcome] == [0] and not outcome[0].HasField("error")

        configs()

    assert _fuzz_beside_load(adversary, attack) > 0


def test_fuzzed_frames_are_answered_in_band(adversary: Any) -> None:
    def attack(call: _RawCaller) -> None:
        @FUZZ
        @given(sent=st.lists(frames(max_data=DATA_MAX, max_tail=TAIL_MAX), min_size=1, max_size=4))
        def frame_headers(sent: list[pb.Frame]) -> None:
            config = pb.StreamConfig(delivery=pb.DELIVERY_MODE_LOSSLESS)
            messages = [pb.ClassifyRequest(config=config).SerializeToString()]
            messages += [pb.ClassifyRequest(frame=f).SerializeToString() for f in sent]
            messages.append(good_frame_request(7))
            code, outcome = call(messages)
            assert code == grpc.StatusCode.OK, (code, outcome)
            assert len(outcome) == len(sent) + 1
            assert all(r.error.code in (0, 3) for r in outcome)  # answered or INVALID_ARGUMENT
            assert outcome[-1].seq == 7 and not outcome[-1].HasField("error")

        frame_headers()

    assert _fuzz_beside_load(adversary, attack) > 0
