"""A real Prometheus (Debian's package) scrapes a real server's /metrics; read back via its HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from client import StreamClient
from streaming import __version__

pytestmark = pytest.mark.slow

STREAMS = 5
FRAMES = 30
CORRUPT_JPEG = b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 8


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


def test_prometheus_counts_every_answer_the_clients_received(
    server_factory: Callable[..., Any],
    prometheus: Callable[..., Any],
    make_frame: Callable[..., Any],
) -> None:
    # given: a server under load from four concurrent LOSSLESS streams, one frame of each corrupt
    running = server_factory(metrics_address="127.0.0.1:0", max_batch=8)
    scraper = prometheus([running.server.metrics_port])
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]

    def one_stream(i: int) -> tuple[int, int]:
        with (
            StreamClient(running.address) as client,
            client.open_stream(f"cam-{i}", window=3) as stream,
        ):
            for n in range(FRAMES):
                stream.send(make_frame(colours[n % 3]) if n != 7 else CORRUPT_JPEG)
            stream.close_send()
            answers = list(stream)
        return len(answers), sum(a.error is not None for a in answers)

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(one_stream, range(4)))
    received = sum(n for n, _ in counts)
    failed = sum(f for _, f in counts)
    # then: what Prometheus scraped equals what the clients got, frame for frame
    assert received == 4 * FRAMES and failed == 4

    (answered,) = scraper.wait_for(
        "sum(stream_classify_frames_answered_total)",
        lambda result: bool(result) and float(result[0]["value"][1]) == received,
    )
    (bad,) = scraper.wait_for(
        'stream_classify_frames_failed_total{reason="bad_frame"}',
        lambda result: bool(result) and float(result[0]["value"][1]) == failed,
    )
    (frames_in,) = scraper.wait_for(
        'stream_classify_frames_received_total{delivery="lossless"}',
        lambda result: bool(result) and float(result[0]["value"][1]) == received,
    )
    (batched,) = scraper.wait_for("stream_classify_queue_wait_seconds_count", bool)
    assert float(batched["value"][1]) == received  # every frame was in exactly one batch
    (sizes,) = scraper.query("stream_classify_batch_size_sum")
    assert float(sizes["value"][1]) == received
    (busy,) = scraper.query("stream_classify_model_busy_ratio")
    assert 0.0 < float(busy["value"][1]) <= 1.0
