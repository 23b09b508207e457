"""Connection settings shared by the blocking and the asyncio client: validated once, here."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

from client._errors import ClassifierClientError

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000_000  # the server's default, so a 4K RAW frame fits
DEFAULT_CONNECT_TIMEOUT_S = 5.0
SEND_QUEUE_FRAMES = 32  # frames queued in the client before send() blocks (flow control)
# Streams one channel (one HTTP/2 connection) carries before the client opens another: below
# the server's --max-calls-per-connection (100 by default), past which a connection's further
# streams wait in HTTP/2, unserved and with no error (docs/connections.md).
DEFAULT_MAX_STREAMS_PER_CHANNEL = 64

_POLICY_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_load_balancing(policy: str | None) -> None:
    """Raise ``ValueError`` unless ``policy`` is ``None`` or looks like a gRPC policy name."""
    if policy is not None and not _POLICY_NAME.fullmatch(policy):
        raise ValueError(
            f"load_balancing must be a policy name such as 'round_robin', got {policy!r}"
        )


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a client needs to open its channel; invalid values raise ``ValueError``.

    ``address`` is any gRPC target: ``host:port``, ``dns:///host:port``,
    ``ipv4:127.0.0.1:1,127.0.0.1:2`` (several servers), ``unix:/path/to.sock``.
    ``load_balancing`` names the channel's policy (``"round_robin"``, ``"pick_first"``): with
    several addresses, round_robin spreads the streams over the servers.
    """

    address: str
    credentials: grpc.ChannelCredentials | None = None
    token: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    wait_for_ready: bool = False
    client_id: str = ""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    load_balancing: str | None = None
    max_streams_per_channel: int = DEFAULT_MAX_STREAMS_PER_CHANNEL

    def __post_init__(self) -> None:
        # Every gRPC target form contains a colon (host:port or scheme:...); a bare host is a typo.
        if not self.address or ":" not in self.address or any(c.isspace() for c in self.address):
            raise ValueError(
                "address must be host:port or a gRPC target (dns:///host:port, "
                f"ipv4:127.0.0.1:1,127.0.0.1:2, unix:/path), got {self.address!r}"
            )
        if self.connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be > 0, got {self.connect_timeout}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        check_load_balancing(self.load_balancing)
        if self.max_streams_per_channel < 1:
            raise ValueError(
                f"max_streams_per_channel must be >= 1, got {self.max_streams_per_channel}"
            )

    def channel_options(self) -> list[tuple[str, int | str]]:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            # Each channel its own connection: by default gRPC shares one between channels to
            # the same target, and the pool's channels exist to spread streams over several.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        if self.load_balancing is not None:
            # The channel's default service config; a resolver (DNS TXT) may still override it.
            config: dict[str, object] = {"loadBalancingConfig": [{self.load_balancing: {}}]}
            options.append(("grpc.service_config", json.dumps(config)))
        return options

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        # Plain metadata rather than call credentials: gRPC refuses call credentials on an
        # insecure channel, and a token over loopback without TLS is a valid test setup.
        if not self.token:
            return None
        return (("authorization", f"Bearer {self.token}"),)

    def unreachable(self, error: grpc.RpcError) -> ClassifierClientError:
        """The error raised when connecting (``GetModelInfo``) fails."""
        return ClassifierClientError.from_rpc_error(
            error,
            f"cannot reach the classification server at {self.address} "
            f"(timeout {self.connect_timeout:g} s)",
        )


def now_us() -> int:
    return time.time_ns() // 1000


C = TypeVar("C")


class ChannelLease(Generic[C]):
    """One stream's place on a pooled channel; ``release`` (idempotent) frees it."""

    __slots__ = ("channel", "_pool", "_index", "_released")

    def __init__(self, pool: ChannelPool[C], index: int, channel: C) -> None:
        self.channel = channel
        self._pool = pool
        self._index = index
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool.stream_ended(self._index)


class ChannelPool(Generic[C]):
    """Channels to one server, each carrying at most ``max_streams`` streams at once.

    A server accepts only so many concurrent calls on one connection (``serve
    --max-calls-per-connection``); HTTP/2 holds the calls beyond it, unserved and with no
    error, until others end. So a stream takes the first channel with room, and a new channel
    (its own connection) opens when all are full. Channels stay open for later streams until
    the client closes. Thread-safe: the blocking client opens streams from any thread.
    """

    def __init__(self, first: C, open_channel: Callable[[], C], max_streams: int) -> None:
        self._open_channel = open_channel
        self._max_streams = max_streams
        self._channels: list[C] = [first]
        self._streams: list[int] = [0]
        self._lock = threading.Lock()

    @property
    def channels(self) -> list[C]:
        """Every channel opened, the first (the one that connected) first."""
        with self._lock:
            return list(self._channels)

    @property
    def streams(self) -> list[int]:
        """Streams open on each channel, in the order of ``channels``."""
        with self._lock:
            return list(self._streams)

    def acquire(self) -> ChannelLease[C]:
        """A place for one stream on the first channel with room, opening one if none has."""
        with self._lock:
            streams = self._streams
            index = next((i for i, n in enumerate(streams) if n < self._max_streams), len(streams))
            if index == len(streams):
                self._channels.append(self._open_channel())
                streams.append(0)
            streams[index] += 1
            return ChannelLease(self, index, self._channels[index])

    def stream_ended(self, index: int) -> None:
        """A stream on channel ``index`` ended (through its lease's ``release``)."""
        with self._lock:
            self._streams[index] -= 1
