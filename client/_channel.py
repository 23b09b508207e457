"""Channel settings shared by the blocking and the asyncio client."""

from __future__ import annotations

import time

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000_000  # the server's default, so a 4K RAW frame fits
DEFAULT_CONNECT_TIMEOUT_S = 5.0
SEND_QUEUE_FRAMES = 32  # frames queued in the client before send() blocks (flow control)


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    # Plain metadata rather than call credentials: gRPC refuses call credentials on an
    # insecure channel, and a token over loopback without TLS is a valid test setup.
    if not token:
        return None
    return (("authorization", f"Bearer {token}"),)


def check_settings(address: str, connect_timeout: float, max_message_bytes: int) -> None:
    if not address or ":" not in address:
        raise ValueError(f"address must be host:port, got {address!r}")
    if connect_timeout <= 0:
        raise ValueError(f"connect_timeout must be > 0, got {connect_timeout}")
    if max_message_bytes < 1024:
        raise ValueError(f"max_message_bytes must be >= 1024, got {max_message_bytes}")


def now_us() -> int:
    return time.time_ns() // 1000
