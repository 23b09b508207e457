"""``watch --metrics-address``: Prometheus metrics of a watch run, scraped over real HTTP."""

from __future__ import annotations

import argparse
import csv
import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camera_tools.sinks import Classification
from camera_tools.states import SourceEvent, SourceState
from camera_tools.watch import (
    SourceCounters,
    SourceOutcome,
    SourceSummary,
    WatchConfig,
    Watcher,
    watch_cli,
)
from camera_tools.watch.observers import ClassifiedFrame, WatchObserver
from camera_tools.watch.watch_errors import MetricsUnavailableError
from camera_tools.watch.watch_metrics import WatchMetrics
from client import Prediction
from tests.camera_tools.videos import colour_frames, write_video
from tests.metrics_scrape import scrape_samples
from tests.support import wait_until

P = "stream_classify_watch_"
SERVER = "127.0.0.1:1"  # never contacted by the unit tests


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((P + name, frozenset(labels.items())))


def frame(source: str, label: str, index: int, latency_s: float = 0.02) -> ClassifiedFrame:
    return ClassifiedFrame(
        classification=Classification(source, index, time.time(), label, 0.75),
        prediction=Prediction(seq=index, label=label, score=0.75),
        image=None,
        latency_s=latency_s,
        live=False,
        playback_fps=10.0,
    )


def event(source: str, state: SourceState, previous: SourceState | None = None) -> SourceEvent:
    return SourceEvent(source, state, previous, time.time())


def counters(
    source: str,
    *,
    read: int,
    errors: int = 0,
    dropped: int = 0,
    source_reopens: int = 0,
    server_reopens: int = 0,
) -> SourceCounters:
    return SourceCounters(
        source=source,
        frames_read=read,
        classified=0,
        errors=errors,
        dropped=dropped,
        mean_fps=0.0,
        latency_p50_ms=None,
        latency_p95_ms=None,
        source_reconnects=source_reopens,
        server_reconnects=server_reopens,
    )


# -- the observer, fed a scripted sequence of events -------------------------------------------


def test_state_gauges_follow_each_source_and_the_server_enum_style() -> None:
    # given metrics of two sources, before anything happened
    metrics = WatchMetrics(WatchConfig(("a.mp4", "rtsp://user:pw@cam/live"), SERVER))
    get = metrics.registry.get_sample_value
    cam = "rtsp://***@cam/live"  # the watcher's redacted id is the label, never the password
    for source in ("a.mp4", cam):
        assert [
            get(P + "source_state", {"source": source, "state": s.value}) for s in SourceState
        ] == [0.0] * len(SourceState)

    # when the sources and the server connection change state
    metrics.on_state(event("server " + SERVER, SourceState.CONNECTING))
    metrics.on_state(event("server " + SERVER, SourceState.CONNECTED, SourceState.CONNECTING))
    metrics.on_state(event(cam, SourceState.CONNECTING))
    metrics.on_state(event(cam, SourceState.CONNECTED, SourceState.CONNECTING))
    metrics.on_state(event(cam, SourceState.STALLED, SourceState.CONNECTED))
    metrics.on_state(event(cam, SourceState.RECONNECTING, SourceState.STALLED))
    metrics.on_state(event("a.mp4", SourceState.CONNECTING))
    metrics.on_state(event("a.mp4", SourceState.ENDED, SourceState.CONNECTING))

    # then exactly the current state of each is 1, and the server is not taken for a source
    def states(metric: str, **labels: str) -> dict[str, float | None]:
        return {s.value: get(P + metric, {**labels, "state": s.value}) for s in SourceState}

    assert states("source_state", source=cam) == {
        s.value: float(s is SourceState.RECONNECTING) for s in SourceState
    }
    assert states("source_state", source="a.mp4") == {
        s.value: float(s is SourceState.ENDED) for s in SourceState
    }
    assert states("server_state", server=SERVER) == {
        s.value: float(s is SourceState.CONNECTED) for s in SourceState
    }
    assert get(P + "source_state", {"source": "server " + SERVER, "state": "connected"}) is None
    metrics.close()


def test_label_gauge_keeps_one_series_per_source_and_switches_on_change() -> None:
    metrics = WatchMetrics(WatchConfig(("a.mp4", "b.mp4"), SERVER))
    get = metrics.registry.get_sample_value

    # when a.mp4 answers red, red, blue and b.mp4 answers red
    metrics.on_frame(frame("a.mp4", "red", 0))
    metrics.on_frame(frame("b.mp4", "red", 0))
    assert get(P + "label", {"source": "a.mp4", "label": "red"}) == 1.0
    metrics.on_frame(frame("a.mp4", "red", 1))
    metrics.on_frame(frame("a.mp4", "blue", 2, latency_s=3.0))

    # then a.mp4's label series is blue only, the old one is gone; b.mp4 keeps its own
    assert get(P + "label", {"source": "a.mp4", "label": "blue"}) == 1.0
    assert get(P + "label", {"source": "a.mp4", "label": "red"}) is None
    assert get(P + "label", {"source": "b.mp4", "label": "red"}) == 1.0
    assert get(P + "label_score", {"source": "a.mp4"}) == 0.75
    # and every answer was counted and timed
    assert get(P + "frames_classified_total", {"source": "a.mp4"}) == 3.0
    assert get(P + "frames_classified_total", {"source": "b.mp4"}) == 1.0
    assert get(P + "classification_latency_seconds_count", {"source": "a.mp4"}) == 3.0
    assert (
        get(P + "classification_latency_seconds_bucket", {"source": "a.mp4", "le": "0.025"}) == 2.0
    )
    assert get(P + "classification_latency_seconds_bucket", {"source": "a.mp4", "le": "2.5"}) == 2.0
    assert get(P + "classification_latency_seconds_bucket", {"source": "a.mp4", "le": "5.0"}) == 3.0
    metrics.close()


def test_running_totals_become_counters_that_never_go_back() -> None:
    metrics = WatchMetrics(WatchConfig(("a.mp4",), SERVER))
    get = metrics.registry.get_sample_value
    assert get(P + "frames_read_total", {"source": "a.mp4"}) == 0.0  # present from the start

    # when the watcher publishes running totals, then the final summary
    metrics.on_counters(counters("a.mp4", read=5, dropped=1, source_reopens=1))
    metrics.on_counters(
        counters("a.mp4", read=12, errors=2, dropped=1, source_reopens=1, server_reopens=2)
    )
    metrics.on_counters(
        counters("a.mp4", read=12, errors=2, dropped=1, source_reopens=1, server_reopens=2)
    )
    last = counters("a.mp4", read=15, errors=2, dropped=4, source_reopens=1, server_reopens=2)
    metrics.on_source_finished(SourceSummary(**vars(last), outcome=SourceOutcome.ENDED, reason=""))

    # then the counters equal the last totals, not their sum
    assert get(P + "frames_read_total", {"source": "a.mp4"}) == 15.0
    assert get(P + "frames_failed_total", {"source": "a.mp4"}) == 2.0
    assert get(P + "frames_dropped_total", {"source": "a.mp4"}) == 4.0
    assert get(P + "reconnects_total", {"source": "a.mp4", "cause": "source"}) == 1.0
    assert get(P + "reconnects_total", {"source": "a.mp4", "cause": "server"}) == 2.0
    metrics.close()


def test_serves_on_a_free_port_and_stops_on_close() -> None:
    # given metrics served on port 0
    metrics = WatchMetrics(WatchConfig(("a.mp4",), SERVER))
    port = metrics.serve("127.0.0.1:0")
    metrics.on_frame(frame("a.mp4", "red", 0))

    # then /metrics answers over HTTP with the prefixed names
    assert value(scrape_samples(port), "frames_classified_total", source="a.mp4") == 1.0

    # and a second server on the same port fails clearly
    other = WatchMetrics(WatchConfig(("a.mp4",), SERVER))
    with pytest.raises(MetricsUnavailableError, match=f"127.0.0.1:{port}"):
        other.serve(f"127.0.0.1:{port}")

    # when closed (twice: idempotent), nothing listens any more
    metrics.close()
    metrics.close()
    with pytest.raises(urllib.error.URLError):
        scrape_samples(port)


def test_without_prometheus_client_the_flag_fails_at_start_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given prometheus-client cannot be imported (None in sys.modules makes import raise)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    args = parser.parse_args(["clip.mp4", "--server", SERVER, "--metrics-address", "127.0.0.1:0"])

    # when watch starts, then it stops before connecting, saying what to install
    assert watch_cli.run(args) == watch_cli.EXIT_CANNOT_START
    err = capsys.readouterr().err
    assert "pip install prometheus-client" in err
    assert "cannot reach the server" not in err


def test_a_malformed_metrics_address_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["clip.mp4", "--metrics-address", "9100"])
    assert exited.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


# -- a real run: real server, real video file, metrics scraped over HTTP -------------------------


class ScrapeAtClose(WatchObserver):
    """Scrapes ``/metrics`` when the run closes its observers (before the metrics, given first)."""

    def __init__(self) -> None:
        self.port = 0
        self.samples: dict[Any, float] | None = None

    def close(self) -> None:
        self.samples = scrape_samples(self.port)


@pytest.mark.timeout(90)
def test_a_watch_run_counts_every_classified_frame_of_the_csv(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given a 20-frame file (red then blue) watched with --csv and metrics
    video = write_video(tmp_path / "clip.mp4", colour_frames(["red"] * 10 + ["blue"] * 10), fps=10)
    server = server_factory()
    table = tmp_path / "frames.csv"
    config = WatchConfig((str(video),), server.address, window=1, csv_path=table)
    metrics = WatchMetrics(config)
    scraper = ScrapeAtClose()
    scraper.port = metrics.serve("127.0.0.1:0")

    # when it is watched to its end
    report = Watcher(config, observers=[scraper, metrics]).run()

    # then the scrape at the end counts exactly the frames of the CSV
    with table.open(newline="") as file:
        rows = list(csv.DictReader(file))
    samples = scraper.samples
    assert samples is not None and len(rows) == 20
    source = str(video)
    assert value(samples, "frames_classified_total", source=source) == len(rows)
    assert value(samples, "classification_latency_seconds_count", source=source) == len(rows)
    assert value(samples, "frames_read_total", source=source) == report.sources[0].frames_read
    assert value(samples, "frames_dropped_total", source=source) == 0.0
    # and the last label, the end of the file and a connected server
    assert value(samples, "label", source=source, label=rows[-1]["label"]) == 1.0
    assert (
        rows[-1]["label"] == "blue" and value(samples, "label", source=source, label="red") is None
    )
    assert value(samples, "source_state", source=source, state="ended") == 1.0
    assert value(samples, "server_state", server=server.address, state="connected") == 1.0
    # and the metrics server stopped with the run
    with pytest.raises(urllib.error.URLError):
        scrape_samples(scraper.port)


@pytest.mark.timeout(120)
def test_the_watch_command_serves_metrics_while_it_runs_and_logs_json(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given `stream-classify --log-format json watch --metrics-address 127.0.0.1:0` on a 4 s
    # file played in real time, in its own process
    # (its name would forge a log record if anything wrote it unescaped)
    name = 'clip "x"\n{"level": "CRITICAL", "message": "forged"}.mp4'
    video = write_video(tmp_path / name, colour_frames(["red"] * 20 + ["blue"] * 20), fps=10)
    server = server_factory()
    table = tmp_path / "frames.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", "--log-format", "json", "watch", str(video),
         "--server", server.address, "--realtime", "--csv", str(table),
         "--metrics-address", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        # when its log says where the metrics are, and they are scraped mid-run
        assert process.stderr is not None
        lines: list[str] = []
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 1)
            if ready:
                line = process.stderr.readline()
                if not line:
                    break
                lines.append(line)
                message = json.loads(line)["message"]
                if message.startswith("metrics at http://"):
                    port = int(message.rsplit(":", 1)[1].split("/")[0])
        assert port is not None, lines
        classified = wait_until(
            lambda: value(scrape_samples(port), "frames_classified_total", source=str(video)),
            timeout=max(deadline - time.monotonic(), 0.0),
            interval=0.1,
            message="no frame classified in the metrics while watch ran",
        )
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # then metrics were live during the run: some frames, not yet all
    assert 1 <= classified < 40
    assert process.returncode == 0, err
    with table.open(newline="") as file:
        assert len(list(csv.DictReader(file))) == 40
    # and every stderr line is one JSON object with the standard keys
    records = [json.loads(line) for line in lines + err.splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    assert any(r["logger"] == "camera_tools.watch.connection" for r in records)
    assert any(str(video) in r["message"] for r in records)  # the source's name, escaped
    assert not any(r["message"] == "forged" for r in records)
    assert "stopped" not in out and "ended" in out  # the summary stays plain text on stdout
