"""Overload: LIVE streams stay fresh while clients flood the server (issue 22, "Overload and drain")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.server.grpc_server import BackgroundServer
from streaming.server.model import NullClassifier
from streaming.server.serve_config import ServerConfig
from tests.classifiers import SlowClassifier

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SIDE = 224
FLOOD_STREAMS = 6
FLOOD_PERIOD_S = 0.002
FLOOD_S = 5.0
BURST_AT_S = 1.0
BURST_FRAMES = 60
# The target for the wait outside the queue and the model (latency minus queue_us
# and inference_us) of answered LIVE frames, at the 99th percentile.
PRE_QUEUE_P99_S = 0.25


@pytest.fixture
def slow_server() -> Iterator[BackgroundServer]:
    # Calls grow with the batch (0.1 s + 20 ms a frame: 0.74 s at 32), like a real model's.
    model = SlowClassifier(NullClassifier(3, (SIDE, SIDE)), 0.1, per_frame_s=0.02)
    running = BackgroundServer(ServerConfig(address="127.0.0.1:0"), model).start()
    yield running
    running.stop(grace=1.0)


@dataclass
class LiveTally:
    pre_queue_s: list[float] = field(default_factory=list)
    sent: int = 0


def frame_request(seq: int, data: bytes) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(
        frame=pb.Frame(seq=seq, width=SIDE, height=SIDE, channels=3, data=data)
    )


async def flood_live(stub: pb_grpc.StreamClassifierStub, index: int, tally: LiveTally) -> None:
    """A LIVE stream writing a RAW frame every 2 ms; each answer's pre-queue wait is recorded."""
    data = bytes(SIDE * SIDE * 3)
    call = stub.Classify(timeout=60)
    config = pb.StreamConfig(source=f"flood-{index}", delivery=pb.DELIVERY_MODE_LIVE)
    await call.write(pb.ClassifyRequest(config=config))
    sent_at: dict[int, float] = {}

    async def read() -> None:
        async for answer in call:
            sent = sent_at.pop(answer.seq, None)
            if sent is not None:
                latency = time.perf_counter() - sent
                served = (answer.queue_us + answer.inference_us) / 1e6
                tally.pre_queue_s.append(latency - served)

    reader = asyncio.create_task(read())
    end = time.perf_counter() + FLOOD_S
    seq = 0
    while time.perf_counter() < end:
        seq += 1
        sent_at[seq] = time.perf_counter()  # before write: time the client waits counts too
        await call.write(frame_request(seq, data))
        await asyncio.sleep(FLOOD_PERIOD_S)
    tally.sent += seq
    await call.done_writing()
    await asyncio.wait_for(reader, 60)


async def burst_lossless(stub: pb_grpc.StreamClassifierStub) -> list[int]:
    """A LOSSLESS stream that writes 60 frames at once, a second into the flood."""
    await asyncio.sleep(BURST_AT_S)
    data = bytes(SIDE * SIDE * 3)
    call = stub.Classify(timeout=60)
    config = pb.StreamConfig(source="burst", delivery=pb.DELIVERY_MODE_LOSSLESS)
    await call.write(pb.ClassifyRequest(config=config))
    for seq in range(1, BURST_FRAMES + 1):
        await call.write(frame_request(seq, data))
    await call.done_writing()
    return [answer.seq async for answer in call]


async def flood(address: str) -> tuple[LiveTally, list[int]]:
    tally = LiveTally()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.StreamClassifierStub(channel)
        floods = [flood_live(stub, index, tally) for index in range(FLOOD_STREAMS)]
        *_, burst = await asyncio.gather(*floods, burst_lossless(stub))
    return tally, burst


def test_live_frames_wait_little_outside_the_queue_while_clients_flood(
    slow_server: BackgroundServer,
) -> None:
    # given: six LIVE streams flooding 224x224 RAW frames every 2 ms at a slow model, beside a
    # LOSSLESS stream that sends 60 frames at once (plain generated stubs)
    # when
    tally, burst = asyncio.run(flood(slow_server.address))
    # then: every LOSSLESS frame is answered, and answered LIVE frames waited at most the
    # issue's bound before the server queued them
    assert burst == list(range(1, BURST_FRAMES + 1))
    assert len(tally.pre_queue_s) >= 5 * FLOOD_STREAMS, tally.sent
    p99 = float(np.percentile(tally.pre_queue_s, 99))
    assert p99 <= PRE_QUEUE_P99_S, f"pre-queue wait p99 {p99:.3f} s over {len(tally.pre_queue_s)}"
