from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from camera_tools.alert_options import AlertOptions
from camera_tools.alerts import AlertRules, DownRule, parse_label_rule
from camera_tools.capture import SourceState
from camera_tools.live import LiveOptions, LiveOutputs
from camera_tools.sinks.base import Classification
from camera_tools.web import SourceStats, WebOptions

CAM = "rtsp://***@cam.local/live"


def test_frames_states_and_alerts_reach_the_web_view_and_the_events_file(tmp_path: Path) -> None:
    # given the options a watch run would get
    events = tmp_path / "events.jsonl"
    rules = AlertRules((parse_label_rule("black:0"),), DownRule(3600.0))
    options = LiveOptions(
        web=WebOptions("127.0.0.1", 0), alerts=AlertOptions(rules, events_path=events)
    )
    console = io.StringIO()
    live = LiveOutputs.start(options, [CAM], console=console)
    assert live.web is not None and live.restreamer is None and live.active
    hub = live.web.hub
    image = np.zeros((48, 64, 3), np.uint8)
    try:
        # when the source goes black, then recovers, then drops
        live.on_frame(CAM, image, Classification(CAM, 0, 1.0, "black", 0.9))
        (source,) = hub.snapshot()["sources"]
        assert source["alerts"] == ["black:0"]
        live.on_frame(CAM, image, Classification(CAM, 1, 2.0, "program", 0.9))
        live.on_stats(CAM, SourceStats(fps=3.0))
        live.on_state(CAM, SourceState.RECONNECTING, "connection refused")
        (source,) = hub.snapshot()["sources"]
    finally:
        live.close()

    # then
    assert source["alerts"] == [] and source["down"] and source["stats"]["fps"] == 3.0
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert kinds == ["raised", "cleared"]
    assert console.getvalue().startswith("ALERT raised black:0 on rtsp://***@cam.local/live")


def test_nothing_asked_nothing_started() -> None:
    live = LiveOutputs.start(LiveOptions(), [CAM])
    assert not live.active
    live.on_frame(CAM, np.zeros((4, 4, 3), np.uint8), Classification(CAM, 0, 1.0, "x", 1.0))
    live.close()
