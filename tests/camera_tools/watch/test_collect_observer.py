"""The adapter between the watcher's observer calls and the collector (no server: fake answers)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from camera_tools.capture import CaptureStats, SourceState
from camera_tools.collect import CollectOptions, Collector
from camera_tools.sinks.base import Classification
from camera_tools.states import SourceEvent
from camera_tools.watch.collect_observer import CollectObserver
from camera_tools.watch.observers import ClassifiedFrame
from camera_tools.watch.source_summary import SourceOutcome, SourceTally
from client import Prediction, ScoredLabel
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)

CAM = "rtsp://***@cam.local/live"
SERVER = "server 127.0.0.1:1234"
STARTED = 1_764_806_400.0


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def answer(
    index: int,
    *,
    at: float,
    position_s: float | None = None,
    window_label: str = "program",
    frame_label: str = "program",
    frame_score: float = 0.9,
    source: str = CAM,
) -> ClassifiedFrame:
    classification = Classification(
        source, index, at, window_label, 0.8, position_s, frame_label, model_version="4"
    )
    prediction = Prediction(
        seq=index,
        label=window_label,
        score=0.8,
        frame_label=frame_label,
        frame_score=frame_score,
        top_k=(ScoredLabel(window_label, 0.8), ScoredLabel("black", 0.2)),
        model_version="4",
    )
    return ClassifiedFrame(classification, prediction, image(index), 0.01, position_s is None, 10.0)


def lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "collected.jsonl").read_text().splitlines()]


def observer_for(tmp_path: Path, **fetch: Any) -> CollectObserver:
    options = CollectOptions(tmp_path / "collect", sample=0.0)
    return CollectObserver(Collector(options, **fetch), server_id=SERVER)


def test_a_live_frame_is_timed_from_the_source_first_answer(tmp_path: Path) -> None:
    # given: a live source's answers, the third unsure and its label not the window's
    observer = observer_for(tmp_path)
    try:
        for i, at in enumerate((STARTED, STARTED + 0.5)):
            observer.on_frame(answer(i, at=at))
        observer.on_frame(answer(2, at=STARTED + 2.25, frame_label="black", frame_score=0.3))
    finally:
        observer.close()  # decides the frame held last

    # then: its line has the frame's own label and score, the window's, and the live time
    (line,) = lines(tmp_path / "collect")
    assert line["source"] == CAM and line["frame"] == 2
    assert line["time"] == pytest.approx(2.25)
    assert line["wall_time"] == "2025-12-04T00:00:02.250Z"
    assert (line["label"], line["score"]) == ("black", pytest.approx(0.3))
    assert (line["window_label"], line["window_score"]) == ("program", pytest.approx(0.8))
    assert line["top"] == [["program", pytest.approx(0.8)], ["black", pytest.approx(0.2)]]
    assert line["model_version"] == "4"
    assert line["reasons"] == ["low_confidence", "disagreement"]
    assert observer.counts is not None and observer.counts.kept == 1


def test_a_file_frame_is_timed_by_its_position(tmp_path: Path) -> None:
    observer = observer_for(tmp_path)
    try:
        observer.on_frame(
            answer(30, at=time.time(), position_s=1.2, frame_score=0.1, source="a.mp4")
        )
        # when: the source ends, its held frame is decided at once
        tally = SourceTally("a.mp4")
        observer.on_source_finished(
            tally.summary(CaptureStats(1, 0, 0, 1, 0), SourceOutcome.ENDED, "")
        )
        wait_until(lambda: (tmp_path / "collect" / "collected.jsonl").stat().st_size > 0, 10)
    finally:
        observer.close()
    (line,) = lines(tmp_path / "collect")
    assert (line["source"], line["frame"], line["time"]) == ("a.mp4", 30, pytest.approx(1.2))


@pytest.mark.parametrize(
    ("source", "state", "asks"),
    [
        (SERVER, SourceState.CONNECTED, True),  # connected (or reconnected): labels asked
        (SERVER, SourceState.RECONNECTING, False),
        (CAM, SourceState.CONNECTED, False),  # a source, not the server
    ],
)
def test_labels_are_asked_when_the_server_connects(
    tmp_path: Path, source: str, state: SourceState, asks: bool
) -> None:
    asked: list[int] = []

    def fetch() -> tuple[str, list[str]]:
        asked.append(1)
        return "4", ["program", "black"]

    observer = observer_for(tmp_path, fetch_labels=fetch)
    try:
        observer.on_state(SourceEvent(source, state, None, time.time()))
        if asks:
            wait_until(lambda: (tmp_path / "collect" / "labels.txt").exists(), 10)
    finally:
        observer.close()
    assert bool(asked) is asks
    if asks:
        assert (tmp_path / "collect" / "labels.txt").read_text() == "program\nblack\n"
