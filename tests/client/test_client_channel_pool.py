"""More streams than a server takes on one connection (``--max-calls-per-connection``): the
client spreads them over a small pool of channels, so every stream is served. Both clients,
real servers (issue 22, "Overload and drain")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from client._channel import ChannelPool
from streaming.server.grpc_server import BackgroundServer
from streaming.server.model import NullClassifier
from streaming.server.serve_config import ServerConfig

from .flavours import Flavour

pytestmark = pytest.mark.timeout(120)

FRAME = np.full((24, 32, 3), 200, np.uint8)


@pytest.fixture
def null_server() -> Iterator[Callable[..., BackgroundServer]]:
    """``start(**ServerConfig overrides)``: a real server on a no-op model (no TensorFlow)."""
    started: list[BackgroundServer] = []

    def start(**overrides: Any) -> BackgroundServer:
        config = ServerConfig(address="127.0.0.1:0", **overrides)
        running = BackgroundServer(config, NullClassifier(3, (32, 24))).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(grace=1.0)


# The pool itself.


@pytest.mark.parametrize(
    ("max_streams", "steps", "channels", "streams"),
    [
        pytest.param(2, "++", 1, [2], id="fills-the-first-channel"),
        pytest.param(2, "+++", 2, [2, 1], id="a-full-channel-opens-another"),
        pytest.param(2, "+++-0+", 2, [2, 1], id="a-freed-place-is-taken-again"),
        pytest.param(2, "++++-0-1", 2, [0, 2], id="channels-stay-open-when-emptied"),
        pytest.param(1, "+++", 3, [1, 1, 1], id="one-stream-a-channel"),
    ],
)
def test_pool_opens_a_channel_only_when_every_channel_is_full(
    max_streams: int, steps: str, channels: int, streams: list[int]
) -> None:
    # given: a pool whose channels are numbers; "+" opens a stream, "-N" ends the Nth opened
    opened = iter(range(1, 100))
    pool = ChannelPool(0, lambda: next(opened), max_streams)
    leases = []
    # when
    tokens = iter(steps)
    for token in tokens:
        if token == "+":
            leases.append(pool.acquire())
        else:
            leases[int(next(tokens))].release()
    # then
    assert pool.channels == list(range(channels))
    assert pool.streams == streams


def test_a_lease_released_twice_frees_one_place() -> None:
    pool = ChannelPool("a", lambda: "b", 1)
    lease = pool.acquire()
    lease.release()
    lease.release()
    assert pool.streams == [0]
    assert pool.acquire().channel == "a"


# Against a server.


@pytest.mark.parametrize(
    ("cap", "per_channel", "streams"),
    [
        pytest.param(
            100, None, 300, id="300-streams-default-pool-server-cap-100", marks=pytest.mark.slow
        ),
        pytest.param(4, 4, 10, id="pool-at-the-cap"),
        pytest.param(4, 1, 6, id="a-channel-each"),
    ],
)
def test_every_stream_is_served_beyond_the_server_cap_of_one_connection(
    null_server: Callable[..., BackgroundServer],
    flavour: Flavour,
    cap: int,
    per_channel: int | None,
    streams: int,
) -> None:
    # given: a server that takes `cap` calls on one connection, and more streams than that open
    # at once through one client
    server = null_server(max_calls_per_connection=cap)
    kwargs = {} if per_channel is None else {"max_streams_per_channel": per_channel}
    client = flavour.connect(server.address, **kwargs)
    opened = [client.open_stream(f"cam{i}", window=1) for i in range(streams)]
    # when: each sends a few frames
    for stream in opened:
        for _ in range(2):
            stream.send(FRAME)
        stream.close_send()
    # then: every stream is answered in full
    answered = [[p.seq for p in stream] for stream in opened]
    assert answered == [[0, 1]] * streams
    for stream in opened:
        stream.close()
    client.close()


@pytest.mark.slow  # waits out the unserved streams' deadline
def test_without_the_pool_streams_past_the_cap_wait_unserved(
    null_server: Callable[..., BackgroundServer], flavour: Flavour
) -> None:
    # given: one channel for every stream (the pool as large as the stream count), beyond the cap
    server = null_server(max_calls_per_connection=2)
    client = flavour.connect(server.address, max_streams_per_channel=4)
    opened = [client.open_stream(f"cam{i}", window=1) for i in range(4)]
    # when
    for stream in opened:
        stream.send(FRAME)
    # then: the first two are answered; the others wait in HTTP/2 while those stay open
    assert [s.receive(timeout=10) is not None for s in opened[:2]] == [True, True]
    for stream in opened[2:]:
        with pytest.raises(TimeoutError):
            stream.receive(timeout=1.0)
    for stream in opened:
        stream.close()
    client.close()
