"""Old-API calls that time out, then normal calls of the same client: each gets its own answers.

Several old clients at once call with a short deadline (images of one colour), then with a
normal deadline (images of another colour): with a window of one image (``-scw 1``), an answer
left over from the timed-out call would show as the wrong colour.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

COLOURS = {"red": (220, 10, 10), "green": (10, 220, 10), "blue": (10, 10, 220)}
CALLERS = 4
ROUNDS = 15
IMAGES = 8  # within --legacy-max-images
SHORT_DEADLINES_S = (0.001, 0.005, 0.02)


def _request(colour: str, client_id: str) -> sc_service_pb2.server_input:
    batch = np.zeros((IMAGES, 24, 32, 3), np.uint8)
    batch[:] = COLOURS[colour]
    return sc_service_pb2.server_input(
        imgs=batch.tobytes(),
        batch=IMAGES,
        width=24,
        height=32,
        channel=3,
        data_type="uint8",
        client_id=client_id,
    )


def _caller(address: str, index: int) -> tuple[list[str], int]:
    """ROUNDS of (a call with a short deadline, a normal call in another colour); the statuses
    seen, and how many normal calls were checked."""
    seen: list[str] = []
    colours = itertools.cycle(COLOURS)
    client_id = f"legacy-timeouts-{index}"
    with grpc.insecure_channel(address) as channel:
        stub = sc_service_pb2_grpc.sc_serviceStub(channel)
        for round_ in range(ROUNDS):
            late, own = next(colours), next(colours)
            try:
                stub.inference(
                    _request(late, client_id),
                    timeout=SHORT_DEADLINES_S[round_ % len(SHORT_DEADLINES_S)],
                )
                seen.append("OK")
            except grpc.RpcError as exc:
                seen.append(exc.code().name)
            try:
                output = stub.inference(_request(own, client_id), timeout=30)
            except grpc.RpcError as exc:
                seen.append(exc.code().name)
                raise AssertionError(f"round {round_}: {exc.code().name} {exc.details()}") from exc
            labels = [
                "".join(row)
                for row in np.frombuffer(output.stream_classification, "<U1").reshape(IMAGES, -1)
            ]
            assert labels == [own] * IMAGES, (round_, late, own, labels)
            seen.append("OK")
    return seen, ROUNDS


def test_old_api_calls_after_timeouts_get_their_own_answers(adversary: Any) -> None:
    # given: the server, serving a well-behaved load
    with adversary.beside_load() as load, ThreadPoolExecutor(CALLERS) as pool:
        # when: old clients alternate short-deadline calls and normal calls in other colours
        outcomes = list(pool.map(lambda i: _caller(adversary.target.address, i), range(CALLERS)))
    # then: every normal call got its own colour (checked in _caller), and the rest holds
    seen = [name for statuses, _ in outcomes for name in statuses]
    growth = adversary.check_survived(load, seen)
    timed_out = seen.count("DEADLINE_EXCEEDED")
    adversary.report(
        f"legacy timeouts: {len(seen)} calls, {timed_out} timed out, statuses "
        f"{sorted(set(seen))}; peak RSS +{growth:.0f} MiB; load answered {load.answered} frames"
    )
    assert timed_out > 0  # the attack did what it says
