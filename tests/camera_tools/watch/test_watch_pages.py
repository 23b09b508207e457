"""``watch`` on web pages: pages and HLS served on loopback, resolved by the real yt-dlp and
classified by a real server with the tiny model."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camera_tools.backoff import BackoffPolicy
from camera_tools.live import LiveOutputs
from camera_tools.states import SourceEvent, SourceState
from camera_tools.watch import (
    ClassifiedFrame,
    SourceOutcome,
    SourceSummary,
    WatchConfig,
    Watcher,
    WatchObserver,
    watch_cli,
)
from camera_tools.watch.live_observer import LiveObserver
from camera_tools.watch.watch_metrics import WatchMetrics
from camera_tools.web import WebHub, WebServer
from tests.camera_tools.pages import PageServer, write_hls
from tests.camera_tools.videos import colour_frames
from tests.metrics_scrape import scrape_samples

pytestmark = pytest.mark.slow

FPS = 10
LABELS = ["red"] * 20 + ["blue"] * 20  # 4 s, a cut on a segment boundary
FAST_RETRY = BackoffPolicy(initial_delay=0.2, max_delay=1.0)


@pytest.fixture(scope="session")
def colour_hls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames at 10 fps, red then blue, as HLS segments and a VOD playlist."""
    folder = tmp_path_factory.mktemp("hls-colour")
    write_hls(folder, list(colour_frames(LABELS)), fps=FPS)
    return folder


def run_watch(*argv: str | Path | int) -> int:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    return watch_cli.run(parser.parse_args([str(a) for a in argv]))


class StopWhen(WatchObserver):
    """Collects what a run publishes; calls ``check`` after each item and stops the run once it
    returns True (it runs in the run's thread, after the observers listed before this one)."""

    def __init__(self, check: Callable[[StopWhen], bool]) -> None:
        self.check = check
        self.frames: list[ClassifiedFrame] = []
        self.events: list[SourceEvent] = []
        self.finished: list[SourceSummary] = []
        self.watcher: Watcher | None = None

    def _after(self) -> None:
        if self.watcher is not None and self.check(self):
            self.watcher.stop()

    def on_frame(self, frame: ClassifiedFrame) -> None:
        self.frames.append(frame)
        self._after()

    def on_state(self, event: SourceEvent) -> None:
        self.events.append(event)
        self._after()

    def on_source_finished(self, summary: SourceSummary) -> None:
        self.finished.append(summary)
        self._after()

    def states(self, source: str) -> list[SourceState]:
        return [e.state for e in self.events if e.source_id == source]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["vod.html", "g0/vod.m3u8"], ids=["page", "direct-hls"])
def test_watch_classifies_every_frame_of_a_recording_once_in_order_then_ends(
    server_factory: Callable[..., Any],
    colour_hls: Path,
    page_server: Callable[[Path], PageServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: str,
) -> None:
    # given a page (or the HLS playlist behind it) whose stream is a 40-frame recording
    pages = page_server(colour_hls)
    server = server_factory()
    table = tmp_path / "frames.csv"

    # when it is watched
    code = run_watch(
        pages.url(path), "--server", server.address, "--window", "1", "--csv", table,
        "--max-retries", "3",
    )  # fmt: skip

    # then every frame was classified once, in order, with its colour, and the source ended
    assert code == 0
    with table.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["frame"]) for r in rows] == list(range(40))
    assert [r["label"] for r in rows] == LABELS
    summary = capsys.readouterr().out
    assert "ended" in summary[summary.index("source  ") :]


@pytest.mark.timeout(180)
def test_watch_classifies_a_live_page_and_resolves_it_again_when_its_stream_moves(
    server_factory: Callable[..., Any],
    colour_hls: Path,
    page_server: Callable[[Path], PageServer],
) -> None:
    # given a live page, and a run that moves its stream once 10 frames are classified
    pages = page_server(colour_hls)
    server = server_factory()
    source = pages.url("live.html")
    moved: list[int] = []

    def check(run: StopWhen) -> bool:
        if len(run.frames) >= 10 and not moved:
            pages.rotate()  # the old stream URL answers 404 from now, like an expired one
            moved.append(len(run.frames))
        return bool(moved) and pages.requested("/g1/seg_") >= 1 and len(run.frames) >= moved[0] + 10

    run = StopWhen(check)
    config = WatchConfig(
        (source,), server.address, window=1, reconnect=FAST_RETRY, stall_timeout_s=3.0,
        open_timeout_s=3.0, duration_s=120.0,
    )  # fmt: skip
    run.watcher = Watcher(config, observers=[run])

    # when it is watched
    report = run.watcher.run()

    # then the stream behind the page was classified live, before and after it moved
    (summary,) = report.sources
    assert summary.outcome is SourceOutcome.STOPPED and not report.failed
    assert moved and len(run.frames) >= moved[0] + 10, run.states(source)
    assert all(f.live for f in run.frames)
    assert {f.classification.label for f in run.frames} <= {"red", "blue"}
    # and the page was resolved again after the old stream URL failed
    assert pages.requested("/live.html") >= 2 and pages.requested("/g1/live.m3u8") >= 1
    assert summary.source_reconnects >= 1
    states = run.states(source)
    assert states[:2] == [SourceState.CONNECTING, SourceState.CONNECTED]
    assert SourceState.CONNECTED in states[2:], states


@pytest.mark.timeout(180)
def test_a_page_without_video_is_offline_in_console_web_and_metrics_and_watch_goes_on(
    server_factory: Callable[..., Any],
    colour_hls: Path,
    page_server: Callable[[Path], PageServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a page without video watched beside a recorded page, with metrics and the web view
    caplog.set_level("INFO", logger="camera_tools")
    pages = page_server(colour_hls)
    server = server_factory()
    empty, recorded = pages.url("empty.html"), pages.url("vod.html")
    config = WatchConfig(
        (empty, recorded), server.address, window=1, reconnect=FAST_RETRY, duration_s=120.0
    )
    metrics = WatchMetrics(config)
    metrics_port = metrics.serve("127.0.0.1:0")
    web = WebServer(WebHub([empty, recorded]), port=0)
    seen: dict[str, Any] = {}

    def check(run: StopWhen) -> bool:
        # once the empty page is offline, look at it from outside, as a user would
        if "metrics" not in seen and SourceState.OFFLINE in run.states(empty):
            seen["metrics"] = scrape_samples(metrics_port)
            with urllib.request.urlopen(web.url + "api/sources", timeout=10) as response:
                seen["web"] = {s["id"]: s for s in json.load(response)["sources"]}
        return "metrics" in seen and bool(run.finished)

    run = StopWhen(check)
    live = LiveObserver(LiveOutputs(web=web), server_id=f"server {server.address}")
    run.watcher = Watcher(config, observers=[metrics, live, run])

    # when they are watched
    report = run.watcher.run()

    # then the recorded page was classified to its end: the empty one stopped nothing
    by_source = {s.source: s for s in report.sources}
    assert by_source[recorded].outcome is SourceOutcome.ENDED
    assert by_source[recorded].classified == 40
    # and the empty page was offline, retried on the backoff, never failed
    assert SourceState.OFFLINE in run.states(empty)
    assert SourceState.FAILED not in run.states(empty)
    assert by_source[empty].outcome is SourceOutcome.STOPPED and not report.failed
    # in the console (the log), the web view and the metrics
    assert any(
        empty in r.getMessage()
        and "offline" in r.getMessage()
        and "Unsupported URL" in r.getMessage()
        for r in caplog.records
    )
    tile = seen["web"][empty]
    assert tile["state"] == "offline" and tile["down"] and "Unsupported URL" in tile["detail"]
    key = (
        "stream_classify_watch_source_state",
        frozenset({"source": empty, "state": "offline"}.items()),
    )
    assert seen["metrics"][key] == 1.0


@pytest.mark.timeout(60)
def test_without_yt_dlp_watch_on_a_page_cannot_start_and_names_the_extra(
    server_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "yt_dlp", None)  # `import yt_dlp` now raises ImportError
    server = server_factory()
    code = run_watch("ytdl:https://example.com/live", "--server", server.address)
    assert code == 2
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line.startswith("watch: ") and "stream-classification[live]" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], None),
        (["--format", "best[height<=480]"], "best[height<=480]"),
    ],
)
def test_format_flag(argv: list[str], expected: str | None) -> None:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    config = watch_cli.build_config(parser.parse_args(["https://example.com/live", *argv]))
    assert config.page_format == expected
