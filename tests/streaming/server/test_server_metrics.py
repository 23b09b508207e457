"""The Prometheus metrics module: values read back from its registry, and the /metrics endpoint."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streaming.server.serve_config import ServerConfig, parse_host_port
from streaming.server.server_errors import ConfigError
from streaming.server.server_metrics import (
    DropReason,
    FailReason,
    LegacyOutcome,
    RefusedReason,
    ServerMetrics,
)
from streaming.server.server_values import Delivery
from tests.metrics_scrape import scrape, scrape_samples

METRIC_NAMES_FILE_ORDER = (
    "stream_classify_frames_received",
    "stream_classify_frames_answered",
    "stream_classify_frames_dropped",
    "stream_classify_frames_failed",
    "stream_classify_temporal_cue_changes",
    "stream_classify_decodes_starved",
    "stream_classify_streams_open",
    "stream_classify_streams_opened",
    "stream_classify_streams_ended_idle",
    "stream_classify_queue_wait_seconds",
    "stream_classify_model_call_seconds",
    "stream_classify_frame_latency_seconds",
    "stream_classify_batch_size",
    "stream_classify_model_busy_ratio",
    "stream_classify_held_frames",
    "stream_classify_frame_budget",
    "stream_classify_held_bytes",
    "stream_classify_memory_budget_bytes",
    "stream_classify_model_version",
    "stream_classify_model_swaps",
    "stream_classify_model_versions_refused",
    "stream_classify_model_load_seconds",
    "stream_classify_legacy_calls",
    "stream_classify_build",
)


def test_every_documented_metric_is_registered() -> None:
    families = {m.name for m in ServerMetrics().registry.collect()}
    assert families == set(METRIC_NAMES_FILE_ORDER)


def test_frame_counters_count_by_label() -> None:
    # given
    metrics = ServerMetrics()
    # when
    for _ in range(3):
        metrics.frame_received(Delivery.LIVE)
    metrics.frame_received(Delivery.LOSSLESS)
    metrics.frames_answered(Delivery.LIVE, 2)
    metrics.frame_dropped(DropReason.LIVE_REPLACED)
    metrics.frame_failed(FailReason.BAD_FRAME)
    metrics.frame_failed(FailReason.BAD_FRAME)
    metrics.legacy_call(LegacyOutcome.OK)
    # then
    v = metrics.value
    assert v("stream_classify_frames_received_total", delivery="live") == 3
    assert v("stream_classify_frames_received_total", delivery="lossless") == 1
    assert v("stream_classify_frames_answered_total", delivery="live") == 2
    assert v("stream_classify_frames_answered_total", delivery="lossless") == 0
    assert v("stream_classify_frames_dropped_total", reason="live_replaced") == 1
    assert v("stream_classify_frames_dropped_total", reason="budget") == 0
    assert v("stream_classify_frames_failed_total", reason="bad_frame") == 2
    assert v("stream_classify_frames_failed_total", reason="model_error") == 0
    assert v("stream_classify_legacy_calls_total", outcome="ok") == 1
    assert v("stream_classify_legacy_calls_total", outcome="refused") == 0


def test_streams_open_goes_up_and_down_opened_only_up() -> None:
    metrics = ServerMetrics()
    for _ in range(4):
        metrics.stream_opened()
    metrics.stream_closed()
    assert metrics.value("stream_classify_streams_open") == 3
    assert metrics.value("stream_classify_streams_opened_total") == 4


def test_observe_batch_fills_the_histograms() -> None:
    # given
    metrics = ServerMetrics()
    # when: one batch of 3 frames, a 40 ms call
    metrics.observe_batch(3, [0.001, 0.002, 0.2], 0.04, [0.045, 0.05, 0.3])
    # then
    v = metrics.value
    assert v("stream_classify_batch_size_count") == 1
    assert v("stream_classify_batch_size_sum") == 3
    assert v("stream_classify_batch_size_bucket", le="2.0") == 0
    assert v("stream_classify_batch_size_bucket", le="4.0") == 1
    assert v("stream_classify_model_call_seconds_sum") == pytest.approx(0.04)
    assert v("stream_classify_queue_wait_seconds_count") == 3
    assert v("stream_classify_queue_wait_seconds_bucket", le="0.0025") == 2
    assert v("stream_classify_frame_latency_seconds_count") == 3
    assert v("stream_classify_frame_latency_seconds_bucket", le="0.05") == 2
    assert v("stream_classify_frame_latency_seconds_bucket", le="0.25") == 2
    assert v("stream_classify_frame_latency_seconds_bucket", le="0.5") == 3


@dataclass
class Load:
    """What the server's batcher reports to ``watch()``: read at every scrape, never pushed."""

    busy: float
    held_frames: int
    held_bytes: int


def test_watched_gauges_read_the_load_when_scraped_and_build_info() -> None:
    # given gauges watching a load that changes after watch() was called
    metrics = ServerMetrics()
    load = Load(busy=0.25, held_frames=0, held_bytes=0)
    metrics.watch(
        busy=lambda: load.busy,
        held_frames=lambda: load.held_frames,
        held_bytes=lambda: load.held_bytes,
        frame_budget=256,
        memory_budget=40_000_000,
    )
    metrics.set_build_info(version="0.1.0", model="tiny", device="/CPU:0", labels=3)
    v = metrics.value
    assert v("stream_classify_model_busy_ratio") == 0.25
    # when the load changes
    load.busy, load.held_frames, load.held_bytes = 1.7, 10, 1500
    # then the next read sees it, the busy share clamped to a ratio
    assert v("stream_classify_model_busy_ratio") == 1.0
    assert v("stream_classify_held_frames") == 10
    assert v("stream_classify_held_bytes") == 1500
    assert v("stream_classify_frame_budget") == 256
    assert v("stream_classify_memory_budget_bytes") == 40_000_000
    load.busy = -0.5  # clamped from below too
    assert v("stream_classify_model_busy_ratio") == 0.0
    info = {"version": "0.1.0", "model": "tiny", "device": "/CPU:0", "labels": "3"}
    assert v("stream_classify_build_info", **info) == 1


def test_model_version_metrics_keep_one_serving_series() -> None:
    # given
    metrics = ServerMetrics()
    # when: version 1 at start, swaps to 2 and 3, one refusal, two loads
    metrics.serving_version("1")
    metrics.serving_version("2", swapped=True)
    metrics.serving_version("3", swapped=True)
    metrics.version_refused(RefusedReason.WARM_UP)
    metrics.model_loaded(1.5)
    metrics.model_loaded(0.2)
    # then
    v = metrics.value
    assert v("stream_classify_model_version_info", version="3") == 1
    assert v("stream_classify_model_version_info", version="1") is None
    assert v("stream_classify_model_version_info", version="2") is None
    assert v("stream_classify_model_swaps_total") == 2
    assert v("stream_classify_model_versions_refused_total", reason="warm_up") == 1
    assert v("stream_classify_model_versions_refused_total", reason="load") == 0
    assert v("stream_classify_model_load_seconds_count") == 2
    assert v("stream_classify_model_load_seconds_sum") == pytest.approx(1.7)


def test_two_instances_do_not_share_values() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.stream_opened()
    assert second.value("stream_classify_streams_opened_total") == 0


def test_http_endpoint_serves_the_registry_and_stops() -> None:
    # given
    metrics = ServerMetrics()
    metrics.frame_received(Delivery.LOSSLESS)
    port = metrics.start_http_server("127.0.0.1", 0)
    try:
        # when
        samples = scrape_samples(port)
    finally:
        metrics.stop()
    # then
    received = ("stream_classify_frames_received_total", frozenset({("delivery", "lossless")}))
    assert samples[received] == 1
    with pytest.raises(OSError):
        scrape(port)  # stopped: the port is closed


def test_http_endpoint_on_a_taken_port_is_a_config_error() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    port = first.start_http_server("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            second.start_http_server("127.0.0.1", port)
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
        (":9100", ("127.0.0.1", 9100)),  # no host is loopback, as for watch --web
    ],
)
def test_parse_host_port_good(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["9100", "::1:9100", "host:", "host:port", "host:70000", "host:²", "[::1]"]
)
def test_bad_metrics_address_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        ServerConfig(metrics_address=text)


def test_server_serves_metrics_and_counts_streams(
    server_factory: Callable[..., Any],
    run_stream: Callable[..., list[Any]],
    frame_pb: Callable[..., Any],
    make_frame: Callable[..., Any],
) -> None:
    # given: a real server with its metrics endpoint on a free port
    running = server_factory(metrics_address="127.0.0.1:0")
    port = running.server.metrics_port
    assert port
    # when: two streams open and close
    for _ in range(2):
        answers = run_stream(running.address, [frame_pb(0, make_frame((255, 0, 0)))])
        assert len(answers) == 1
    text = scrape(port)
    # then
    families = {f.name: f for f in text_string_to_metric_families(text)}
    opened = families["stream_classify_streams_opened"].samples
    assert [s.value for s in opened if s.name.endswith("_total")] == [2]
    assert families["stream_classify_streams_open"].samples[0].value == 0
    (info,) = families["stream_classify_build_info"].samples  # info is a gauge in the text format
    assert info.labels["labels"] == "3" and info.labels["version"]
    # and the endpoint closes with the server
    running.stop(grace=1.0)
    with pytest.raises(OSError):
        scrape(port)


def test_server_without_metrics_address_opens_no_endpoint(server: Any) -> None:
    assert server.server.metrics_port is None


def test_multiprocess_layout_info_as_gauges_and_load_written_by_a_thread() -> None:
    # given: the metrics of one process of `serve --processes N` (its values written to files
    # there; read back in memory here, the layout is the same)
    from tests.support import wait_until

    metrics = ServerMetrics(multiprocess=True)
    load = Load(busy=0.5, held_frames=3, held_bytes=300)
    # when: the load is watched, the build and three versions are announced, a stream opens
    metrics.watch(
        busy=lambda: load.busy,
        held_frames=lambda: load.held_frames,
        held_bytes=lambda: load.held_bytes,
        frame_budget=64,
        memory_budget=1000,
    )
    metrics.set_build_info(version="0.1.0", model="tiny", device="/CPU:0", labels=3)
    for version in ("1", "2", "3"):
        metrics.serving_version(version, swapped=version != "1")
    metrics.stream_opened()
    try:
        # then: the load gauges are written by the refresher, not read at scrape time
        v = metrics.value
        wait_until(lambda: v("stream_classify_held_frames") == 3, 10)
        assert v("stream_classify_model_busy_ratio") == 0.5
        assert v("stream_classify_held_bytes") == 300
        load.held_frames = 7
        wait_until(lambda: v("stream_classify_held_frames") == 7, 10)
        # and info metrics are gauges: 1 for what is served now, 0 for what was served before
        assert v("stream_classify_model_version_info", version="3") == 1
        assert v("stream_classify_model_version_info", version="1") == 0
        assert v("stream_classify_model_version_info", version="2") == 0
        info = {"version": "0.1.0", "model": "tiny", "device": "/CPU:0", "labels": "3"}
        assert v("stream_classify_build_info", **info) == 1
        # and the streams are also counted per process
        assert v("stream_classify_process_streams_open") == 1
        assert v("stream_classify_streams_open") == 1
    finally:
        metrics.stop()
    # and stop() ends the refresher: later load changes are not written
    load.held_frames = 99
    time.sleep(1.5)
    assert metrics.value("stream_classify_held_frames") == 7


def test_one_process_has_no_per_process_series() -> None:
    assert ServerMetrics().value("stream_classify_process_streams_open") is None
