"""Connection settings shared by the blocking and the asyncio client: validated once, here."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import grpc

from client._errors import ClassifierClientError

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000_000  # the server's default, so a 4K RAW frame fits
DEFAULT_CONNECT_TIMEOUT_S = 5.0
SEND_QUEUE_FRAMES = 32  # frames queued in the client before send() blocks (flow control)

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

    def channel_options(self) -> list[tuple[str, int | str]]:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
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
