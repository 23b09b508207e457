"""The watcher's observer interface, against a real gRPC server and real encoded video files."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camera_tools.states import SourceEvent, SourceState
from camera_tools.watch import (
    ClassifiedFrame,
    SourceCounters,
    SourceOutcome,
    SourceSummary,
    WatchConfig,
    Watcher,
    WatchObserver,
)
from tests.camera_tools.videos import BGR, colour_frames, write_video


class Recorder(WatchObserver):
    """Keeps every call, in order, with the thread that made it."""

    def __init__(self, *, wants_images: bool = False, fail_on_frame: int | None = None) -> None:
        self.wants_images = wants_images
        self._fail_on_frame = fail_on_frame
        self.calls: list[tuple[str, int]] = []  # (method, thread id)
        self.frames: list[ClassifiedFrame] = []
        self.events: list[SourceEvent] = []
        self.counters: list[SourceCounters] = []
        self.finished: list[SourceSummary] = []

    def _called(self, method: str) -> None:
        self.calls.append((method, threading.get_ident()))

    def on_frame(self, frame: ClassifiedFrame) -> None:
        self._called("on_frame")
        if (
            self._fail_on_frame is not None
            and frame.classification.frame_index == self._fail_on_frame
        ):
            raise RuntimeError("observer bug")
        self.frames.append(frame)

    def on_state(self, event: SourceEvent) -> None:
        self._called("on_state")
        self.events.append(event)

    def on_counters(self, counters: SourceCounters) -> None:
        self._called("on_counters")
        self.counters.append(counters)

    def on_source_finished(self, summary: SourceSummary) -> None:
        self._called("on_source_finished")
        self.finished.append(summary)

    def close(self) -> None:
        self._called("close")


@pytest.mark.timeout(60)
def test_observer_sees_frames_states_counters_and_the_end(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given a 2 s file played in real time, and an observer that wants no images
    video = write_video(tmp_path / "clip.mp4", colour_frames(["red"] * 10 + ["blue"] * 10), fps=10)
    server = server_factory()
    config = WatchConfig(
        (str(video),), server.address, window=1, realtime=True, counters_interval_s=0.2
    )
    observer = Recorder()
    watcher = Watcher(config, observers=[observer])

    # when it is watched to its end
    report = watcher.run()

    # then every frame was published once, in order, with its label and no image
    assert [f.classification.frame_index for f in observer.frames] == list(range(20))
    assert [f.classification.label for f in observer.frames] == ["red"] * 10 + ["blue"] * 10
    assert all(f.image is None and not f.live for f in observer.frames)
    assert all(f.playback_fps == pytest.approx(10.0) for f in observer.frames)
    # and the state changes of the source and of the server connection, with their ids
    source_states = [e.state for e in observer.events if e.source_id == str(video)]
    assert source_states == [SourceState.CONNECTING, SourceState.CONNECTED, SourceState.ENDED]
    server_states = [e.state for e in observer.events if e.source_id == watcher.server_id]
    assert server_states == [SourceState.CONNECTING, SourceState.CONNECTED]
    # and running counters that only grow, then one final summary equal to the report's
    classified = [c.classified for c in observer.counters]
    assert len(classified) >= 2 and classified == sorted(classified)
    assert all(c.source == str(video) for c in observer.counters)
    (summary,) = observer.finished
    assert summary.outcome is SourceOutcome.ENDED and summary.classified == 20
    assert report.sources == (summary,)
    # and every call came from the thread that ran the watcher, close last and once
    assert {thread for _, thread in observer.calls} == {threading.get_ident()}
    methods = [method for method, _ in observer.calls]
    assert methods.count("close") == 1 and methods[-1] == "close"
    assert methods.index("on_source_finished") > max(
        i for i, m in enumerate(methods) if m == "on_frame"
    )


@pytest.mark.timeout(60)
def test_images_are_published_only_when_an_observer_wants_them(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given two observers, one of which wants images
    video = write_video(tmp_path / "clip.mp4", colour_frames(["blue"] * 5), fps=10)
    server = server_factory()
    blind, seeing = Recorder(), Recorder(wants_images=True)

    # when a file is watched
    Watcher(WatchConfig((str(video),), server.address), observers=[blind, seeing]).run()

    # then both receive the same frames, carrying the full frame, without overlay
    assert len(seeing.frames) == len(blind.frames) == 5
    assert blind.frames == seeing.frames
    for frame in seeing.frames:
        assert frame.image is not None and frame.image.shape == (48, 64, 3)
        assert frame.image.mean(axis=(0, 1)) == pytest.approx(BGR["blue"], abs=8)


@pytest.mark.timeout(60)
def test_an_observer_error_ends_the_run_and_still_closes_every_output(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given a CSV output and two observers, the first of which fails on the third frame
    video = write_video(tmp_path / "clip.mp4", colour_frames(["red"] * 30), fps=10)
    server = server_factory()
    frames_csv = tmp_path / "frames.csv"
    config = WatchConfig((str(video),), server.address, realtime=True, csv_path=frames_csv)
    broken, after = Recorder(fail_on_frame=2), Recorder()
    watcher = Watcher(config, observers=[broken, after])

    # when it is watched, then the error ends the run
    with pytest.raises(RuntimeError, match="observer bug"):
        watcher.run()

    # and every output was closed: both observers, and the CSV with the frames before the error
    assert [m for m, _ in broken.calls][-1] == "close"
    assert [m for m, _ in after.calls][-1] == "close"
    rows = frames_csv.read_text().splitlines()
    assert len(rows) >= 4 and rows[0].startswith("date")  # header, then frames 0, 1, 2
