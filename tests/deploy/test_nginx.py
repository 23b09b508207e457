"""Replicas behind a real proxy: nginx (Debian's package) with grpc_pass to 3 server processes."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client import StreamClient

# Three TensorFlow processes start on a shared 2-core machine: allow them minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

REPLICAS = 3
STREAMS = 12
FRAMES = 3


def test_streams_through_nginx_reach_every_replica(
    server_processes: Callable[..., Any],
    nginx: Callable[..., Any],
    read_metric: Callable[..., float],
    make_frame: Callable[..., Any],
) -> None:
    # given: 3 replicas behind nginx
    replicas = server_processes(REPLICAS, "--grace", "5", "--log-format", "json")
    proxy = nginx([r.port for r in replicas])
    # when: 12 streams are open at once through the proxy, each sending a few frames
    with StreamClient(proxy.address, connect_timeout=30) as client:
        streams = [client.open_stream(f"cam-{i}", window=1) for i in range(STREAMS)]
        try:
            for stream in streams:
                for _ in range(FRAMES):
                    stream.send(make_frame((0, 0, 255)))
                stream.close_send()
            answers = [[a.label for a in stream] for stream in streams]
        finally:
            for stream in streams:
                stream.close()
    # then: every stream is answered in full, and every replica served some of them
    assert answers == [["blue"] * FRAMES] * STREAMS, proxy.error_log()[-2000:]
    per_replica = [
        read_metric(r.metrics_port, "stream_classify_streams_opened_total") for r in replicas
    ]
    assert sum(per_replica) == STREAMS
    assert all(count > 0 for count in per_replica), per_replica
    # and each replica drains and exits cleanly on SIGTERM
    assert [r.stop(signal.SIGTERM) for r in replicas] == [0] * REPLICAS
    # and its JSON log (one object per line) tells the same story as its metrics
    assert [opened_in_log(r.log) for r in replicas] == per_replica


def opened_in_log(log: Path) -> int:
    # TensorFlow's C++ runtime writes plain lines to stderr too; the server's own lines are JSON.
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert entries and all(e["level"] and e["time"] for e in entries)
    return sum(
        e["logger"] == "streaming.server.stream_service"
        and re.match(r"stream \d+ opened", e["message"]) is not None
        for e in entries
    )
