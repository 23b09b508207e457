"""The watcher across failures: a real RTSP server killed and restarted, the gRPC server restarted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camera_tools.backoff import BackoffPolicy
from camera_tools.states import SourceEvent, SourceState
from camera_tools.watch import (
    ClassifiedFrame,
    SourceCounters,
    SourceOutcome,
    SourceSummary,
    WatchConfig,
    Watcher,
    WatchObserver,
    WatchReport,
)
from tests.camera_tools.videos import colour_frames, write_video
from tests.support import wait_until

pytestmark = pytest.mark.slow

FAST_RETRY = BackoffPolicy(initial_delay=0.2, max_delay=1.0)


class Run(WatchObserver):
    """A watcher running in a thread, observing everything it published."""

    def __init__(self, config: WatchConfig) -> None:
        self.results: list[tuple[float, ClassifiedFrame]] = []
        self.events: list[SourceEvent] = []
        self.counters: list[SourceCounters] = []
        self.finished: list[SourceSummary] = []
        self.report: WatchReport | None = None
        self.watcher = Watcher(config, observers=[self])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.report = self.watcher.run()

    def on_frame(self, frame: ClassifiedFrame) -> None:
        self.results.append((time.monotonic(), frame))

    def on_state(self, event: SourceEvent) -> None:
        self.events.append(event)

    def on_counters(self, counters: SourceCounters) -> None:
        self.counters.append(counters)

    def on_source_finished(self, summary: SourceSummary) -> None:
        self.finished.append(summary)

    def count(self, source: str, since: float = 0.0) -> int:
        return sum(1 for t, r in self.results if r.classification.source_id == source and t > since)

    def states(self, source: str) -> list[SourceState]:
        return [e.state for e in self.events if e.source_id == source]

    def finish(self) -> WatchReport:
        self.watcher.stop()
        self.thread.join(timeout=20)
        assert self.report is not None, "the watcher did not stop"
        return self.report


@pytest.mark.timeout(60)
def test_rtsp_source_reconnects_after_camera_restart(
    rtsp_server: Any,
    server_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a watcher classifying a live RTSP stream
    caplog.set_level("INFO", logger="camera_tools")
    server = server_factory()
    url = rtsp_server.url("viewer:s3cret@")
    source = f"rtsp://***@127.0.0.1:{rtsp_server.port}/test"
    config = WatchConfig(
        (url,), server.address, window=1, reconnect=FAST_RETRY, stall_timeout_s=3.0,
        open_timeout_s=3.0, duration_s=50.0,
    )  # fmt: skip
    run = Run(config)
    try:
        wait_until(
            lambda: run.count(source) >= 5, timeout=20, message=lambda: str(run.states(source))
        )

        # when the camera dies, stays down a moment, and comes back on the same port
        rtsp_server.kill()
        wait_until(
            lambda: {SourceState.STALLED, SourceState.RECONNECTING} & set(run.states(source)),
            timeout=15,
            message=lambda: str(run.states(source)),
        )
        time.sleep(1.0)
        rtsp_server.start()
        restarted = time.monotonic()

        # then the watcher reconnects by itself and classifies again
        wait_until(
            lambda: run.count(source, since=restarted) >= 5,
            timeout=30,
            message=lambda: str(run.states(source)),
        )
    finally:
        report = run.finish()

    states = run.states(source)
    gap = states.index(SourceState.CONNECTED) + 1
    assert states[gap] in (SourceState.STALLED, SourceState.RECONNECTING)
    assert SourceState.CONNECTED in states[gap:]
    (summary,) = report.sources
    assert summary.outcome is SourceOutcome.STOPPED and not report.failed
    assert summary.source_reconnects >= 1 and summary.classified >= 10
    messages = [r.getMessage() for r in caplog.records]
    assert any(source in m and ("reconnecting" in m or "stalled" in m) for m in messages)
    assert all("s3cret" not in m for m in messages)
    assert all("s3cret" not in r.classification.source_id for _, r in run.results)


@pytest.mark.timeout(60)
def test_watcher_survives_a_grpc_server_restart(
    rtsp_server: Any,
    server_factory: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a file played in real time (4 s, 40 frames) and a live stream, on one connection
    caplog.set_level("INFO", logger="camera_tools")
    video = _write_clip(tmp_path / "slow.mp4", frames=40)
    server = server_factory()
    port = int(server.address.rsplit(":", 1)[1])
    live = f"rtsp://127.0.0.1:{rtsp_server.port}/test"
    config = WatchConfig(
        (str(video), live), server.address, window=1, realtime=True, reconnect=FAST_RETRY,
        stall_timeout_s=3.0, open_timeout_s=3.0, duration_s=50.0,
    )  # fmt: skip
    run = Run(config)
    try:
        wait_until(lambda: run.count(str(video)) >= 8 and run.count(live) >= 3, timeout=20)

        # when the gRPC server stops and a new one starts on the same port
        server.stop(grace=0.5)
        server_name = f"server {server.address}"
        assert run.watcher.server_id == server_name
        wait_until(lambda: SourceState.RECONNECTING in run.states(server_name), timeout=10)
        time.sleep(0.5)
        server_factory(address=f"127.0.0.1:{port}")
        restarted = time.monotonic()

        # then both sources carry on with new streams: the live one keeps classifying ...
        wait_until(
            lambda: run.count(live, since=restarted) >= 5,
            timeout=20,
            message=lambda: str(run.states(server_name)),
        )
        # ... and the file is classified to its end (and its source has finished on its own)
        wait_until(lambda: run.count(str(video)) >= 40, timeout=20)
        wait_until(lambda: [s.source for s in run.finished] == [str(video)], timeout=20)
    finally:
        report = run.finish()

    # and no frame of the file was skipped or answered twice (unanswered ones were resent)
    file_frames = [
        r.classification for _, r in run.results if r.classification.source_id == str(video)
    ]
    assert [c.frame_index for c in file_frames] == list(range(40))
    assert [c.frame_label for c in file_frames] == ["blue"] * 20 + ["red"] * 20
    by_source = {s.source: s for s in report.sources}
    assert by_source[str(video)].outcome is SourceOutcome.ENDED
    assert by_source[live].outcome is SourceOutcome.STOPPED
    assert all(s.server_reconnects >= 1 for s in report.sources)
    server_states = run.states(server_name)
    assert server_states[:2] == [SourceState.CONNECTING, SourceState.CONNECTED]
    assert server_states[-1] is SourceState.CONNECTED and SourceState.STALLED in server_states
    gap_logs = [r.getMessage() for r in caplog.records if r.getMessage().startswith(server_name)]
    assert any("reconnecting" in m for m in gap_logs) and any("connected" in m for m in gap_logs)


@pytest.mark.timeout(90)
def test_losing_one_of_two_replicas_reopens_only_its_streams(
    server_factory: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given 6 files played in real time (4 s, 40 frames each) over round_robin on two replicas
    caplog.set_level("INFO", logger="camera_tools")
    videos = [_write_clip(tmp_path / f"clip{i}.mp4", frames=40) for i in range(6)]
    first, second = server_factory(), server_factory()
    target = f"ipv4:{first.address},{second.address}"
    config = WatchConfig(
        tuple(map(str, videos)), target, window=1, realtime=True, reconnect=FAST_RETRY,
        load_balancing="round_robin", duration_s=60.0,
    )  # fmt: skip
    run = Run(config)
    try:
        wait_until(lambda: all(run.count(str(v)) >= 5 for v in videos), timeout=20)
        on_first = first.server.batcher.stream_count
        assert 0 < on_first < len(videos)  # both replicas serve some streams

        # when the first replica drains and stops
        first.stop(grace=0.5)

        # then every file is classified to its end, on the replica left
        wait_until(lambda: all(run.count(str(v)) >= 40 for v in videos), timeout=30)
        # (and each source has finished on its own: stopping it right after its last answer
        # would end it as STOPPED, a race on a loaded machine)
        wait_until(lambda: len(run.finished) == len(videos), timeout=30)
    finally:
        report = run.finish()

    # and no frame was skipped or answered twice
    for video in videos:
        frames = [
            r.classification.frame_index
            for _, r in run.results
            if r.classification.source_id == str(video)
        ]
        assert sorted(frames) == list(range(40)), video
    # and only the lost replica's streams were reopened; the connection was never rebuilt
    assert sorted(s.server_reconnects > 0 for s in report.sources).count(True) == on_first
    assert all(s.outcome is SourceOutcome.ENDED for s in report.sources)
    server_states = run.states(f"server {target}")
    assert server_states == [SourceState.CONNECTING, SourceState.CONNECTED]


def _write_clip(path: Path, frames: int) -> Path:
    """Blue for the first half, red for the rest."""
    labels = ["blue" if i < frames // 2 else "red" for i in range(frames)]
    return write_video(path, colour_frames(labels), fps=10)
