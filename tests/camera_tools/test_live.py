from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest

from camera_tools.capture import SourceState
from camera_tools.live import LiveOutputs, add_live_arguments
from camera_tools.sinks.base import Classification
from camera_tools.web import SourceStats

CAM = "rtsp://***@cam.local/live"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_live_arguments(parser)
    return parser.parse_args(argv)


def test_frames_states_and_alerts_reach_the_web_view_and_the_events_file(tmp_path: Path) -> None:
    # given the flags a watch run would get
    events = tmp_path / "events.jsonl"
    args = parse(["--web", "127.0.0.1:0", "--alert", "black:0", "--alert-down", "3600",
                  "--events", str(events)])  # fmt: skip
    console = io.StringIO()
    live = LiveOutputs.from_args(args, [CAM], console=console)
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
    live = LiveOutputs.from_args(parse([]), [CAM])
    assert not live.active
    live.on_frame(CAM, np.zeros((4, 4, 3), np.uint8), Classification(CAM, 0, 1.0, "x", 1.0))
    live.close()


@pytest.mark.parametrize(
    "argv", [["--web", "nope"], ["--restream", "http://x/"], ["--alert", "black"]]
)
def test_bad_flags_are_rejected(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(argv)
