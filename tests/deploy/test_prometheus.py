"""A real Prometheus (Debian's package) scrapes a real server's /metrics; read back via its HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from client import StreamClient
from streaming import __version__

pytestmark = pytest.mark.slow

STREAMS = 5


def test_prometheus_reads_build_info_and_opened_streams(
    server_factory: Callable[..., Any],
    prometheus: Callable[..., Any],
    make_frame: Callable[..., Any],
) -> None:
    # given: a server with its metrics endpoint, scraped every second
    running = server_factory(metrics_address="127.0.0.1:0")
    scraper = prometheus([running.server.metrics_port])
    # when: N streams each get an answer, then close
    with StreamClient(running.address) as client:
        for i in range(STREAMS):
            with client.open_stream(f"source-{i}", window=1) as stream:
                stream.send(make_frame((0, 255, 0)))
                stream.close_send()
                answers = list(stream)
            assert [a.label for a in answers] == ["green"]
    # then: Prometheus has scraped what the server counted
    opened = scraper.wait_for(
        "stream_classify_streams_opened_total",
        lambda result: bool(result) and float(result[0]["value"][1]) == STREAMS,
    )
    assert len(opened) == 1
    (info,) = scraper.wait_for("stream_classify_build_info", bool)
    assert info["value"][1] == "1"
    assert info["metric"]["version"] == __version__
    assert info["metric"]["labels"] == "3"
    assert info["metric"]["job"] == "stream-classify"
    (still_open,) = scraper.query("stream_classify_streams_open")
    assert still_open["value"][1] == "0"
