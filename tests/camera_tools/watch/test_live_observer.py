"""The adapter between the watcher's observer calls and the live outputs, on a real web hub."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

from camera_tools.alert_options import AlertOptions
from camera_tools.alerts import AlertRules, DownRule, parse_label_rule
from camera_tools.capture import SourceState
from camera_tools.live import LiveOptions, LiveOutputs
from camera_tools.sinks.base import Classification
from camera_tools.states import SourceEvent
from camera_tools.watch.live_observer import LiveObserver, stats_from_counters
from camera_tools.watch.observers import ClassifiedFrame
from camera_tools.watch.source_summary import SourceCounters
from camera_tools.web import WebOptions
from client import Prediction

CAM = "rtsp://***@cam.local/live"
SERVER = "server 127.0.0.1:1234"
IMAGE = np.zeros((48, 64, 3), np.uint8)


def live_outputs(options: LiveOptions) -> LiveOutputs:
    return LiveOutputs.start(options, [CAM], console=io.StringIO())


def frame(index: int, label: str, image: np.ndarray | None = IMAGE) -> ClassifiedFrame:
    classification = Classification(CAM, index, time.time(), label, 0.9)
    prediction = Prediction(seq=index, label=label, score=0.9)
    return ClassifiedFrame(classification, prediction, image, 0.01, True, 10.0)


def state(source: str, new: SourceState) -> SourceEvent:
    return SourceEvent(source, new, None, time.time(), reason="why")


def test_late_answers_do_not_bring_a_down_source_back_up(tmp_path: Path) -> None:
    # given the web view and a down alert
    events = tmp_path / "events.jsonl"
    observer = LiveObserver(
        live_outputs(
            LiveOptions(
                web=WebOptions("127.0.0.1", 0),
                alerts=AlertOptions(AlertRules(down=DownRule(0.0)), events_path=events),
            )
        ),
        server_id=SERVER,
    )
    assert observer.wants_images
    hub = observer.live.web.hub  # type: ignore[union-attr]
    try:
        observer.on_state(state(CAM, SourceState.CONNECTED))
        observer.on_frame(frame(0, "program"))
        # when the source goes down and answers to frames sent before still arrive
        observer.on_state(state(CAM, SourceState.RECONNECTING))
        observer.live.monitor.tick()  # type: ignore[union-attr]
        observer.on_frame(frame(1, "program"))
        (down,) = hub.snapshot()["sources"]
        # and then it is back
        observer.on_state(state(CAM, SourceState.CONNECTED))
        observer.on_frame(frame(2, "black"))
        (up,) = hub.snapshot()["sources"]
        # and the server connection's own states are not a source
        observer.on_state(state(SERVER, SourceState.RECONNECTING))
        sources = hub.snapshot()["sources"]
    finally:
        observer.close()

    # then the tile stayed down until the source reconnected
    assert down["down"] and down["state"] == "reconnecting"
    assert not up["down"] and up["label"] == "black"
    assert [s["id"] for s in sources] == [CAM]
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert kinds == ["raised", "cleared"]


def test_alerts_alone_need_no_images(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    observer = LiveObserver(
        live_outputs(
            LiveOptions(
                alerts=AlertOptions(AlertRules((parse_label_rule("black:0"),)), events_path=events)
            )
        ),
        server_id=SERVER,
    )
    assert not observer.wants_images
    observer.on_frame(frame(0, "black", image=None))
    observer.close()
    assert [json.loads(line)["rule"] for line in events.read_text().splitlines()] == ["black:0"]


def test_counters_become_tile_numbers() -> None:
    counters = SourceCounters(CAM, 120, 100, 1, 20, 9.87, 12.0, 30.0, 2, 1)
    stats = stats_from_counters(counters)
    assert (stats.fps, stats.latency_ms, stats.classified, stats.dropped, stats.reconnects) == (
        9.9, 12.0, 100, 20, 3,
    )  # fmt: skip
