"""A connection that reaches ``--max-calls-per-connection``: the server says so, once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import grpc
import pytest

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.server.grpc_server import BackgroundServer
from streaming.server.model import NullClassifier
from streaming.server.serve_config import ServerConfig

pytestmark = pytest.mark.timeout(60)

CAP = 3
DATA = bytes(32 * 24 * 3)


@pytest.fixture
def capped_server() -> Iterator[BackgroundServer]:
    config = ServerConfig(address="127.0.0.1:0", max_calls_per_connection=CAP)
    running = BackgroundServer(config, NullClassifier(3, (32, 24))).start()
    yield running
    running.stop(grace=1.0)


async def open_streams(address: str, counts: list[int]) -> list[int]:
    """``counts[i]`` streams on connection i, each answered once while all stay open; returns
    the answers per connection."""

    async def one_connection(count: int) -> int:
        # Its own connection: channels to one target share one unless told not to.
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = pb_grpc.StreamClassifierStub(channel)
            calls = [stub.Classify(timeout=30) for _ in range(count)]
            for call in calls:
                await call.write(pb.ClassifyRequest(config=pb.StreamConfig()))
                frame = pb.Frame(seq=0, width=32, height=24, channels=3, data=DATA)
                await call.write(pb.ClassifyRequest(frame=frame))
            answers = [await asyncio.wait_for(call.read(), 10) for call in calls]
            for call in calls:
                call.cancel()
            return sum(isinstance(a, pb.ClassifyResponse) for a in answers)

    return list(await asyncio.gather(*(one_connection(count) for count in counts)))


@pytest.mark.parametrize(
    ("counts", "warned"),
    [
        pytest.param([CAP], 1, id="one-connection-at-the-cap"),
        pytest.param([CAP, CAP], 2, id="two-connections-at-the-cap-each-said"),
        pytest.param([CAP - 1, CAP - 1], 0, id="below-the-cap-nothing-said"),
    ],
)
def test_a_connection_at_the_call_cap_is_logged_once(
    capped_server: BackgroundServer,
    caplog: pytest.LogCaptureFixture,
    counts: list[int],
    warned: int,
) -> None:
    caplog.set_level(logging.WARNING, logger="streaming.server.stream_service")
    # when: each connection holds its streams open, answered
    answered = asyncio.run(open_streams(capped_server.address, counts))
    # then: every stream was served, and each connection at the cap was named once
    assert answered == counts
    notes = [r.getMessage() for r in caplog.records if "--max-calls-per-connection" in r.msg]
    assert len(notes) == warned, notes
    assert len({note.split()[1] for note in notes}) == warned  # one per peer address
