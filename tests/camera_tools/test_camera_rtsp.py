"""End-to-end tests against a real RTSP server (GStreamer's, run by Debian's python3)."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from camera_tools.backoff import BackoffPolicy
from camera_tools.capture import CaptureOptions, VideoStream, open_source
from camera_tools.sources import create_source
from camera_tools.states import SourceEvent, SourceState
from tests.support import wait_until

# The RTSP server and its fixture (which skips when GStreamer's RTSP server is missing) live in conftest.py.
pytestmark = pytest.mark.slow


def rtsp_stream(url: str, events: list[SourceEvent], read_timeout_s: float = 2.0) -> VideoStream:
    factory = functools.partial(create_source, open_timeout_s=3.0, read_timeout_s=read_timeout_s)
    options = CaptureOptions(
        stall_timeout_s=3.0,
        connect_timeout_s=8.0,
        reconnect=BackoffPolicy(initial_delay=0.2, max_delay=1.0),
    )
    return open_source(url, options=options, source_factory=factory, on_event=events.append)


def read_frames(stream: VideoStream, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    indices: list[int] = []
    while len(indices) < count and time.monotonic() < deadline:
        frame = stream.read(timeout=0.5)
        if frame is not None:
            indices.append(frame.index)
    return indices


@pytest.mark.timeout(40)
def test_frames_flow_from_rtsp(rtsp_server: Any) -> None:
    events: list[SourceEvent] = []
    stream = rtsp_stream(rtsp_server.url("viewer:s3cret@"), events)
    try:
        indices = read_frames(stream, 10, timeout=20)
        frame = stream.read(timeout=5)
        props = stream.properties
    finally:
        stream.stop()

    assert len(indices) == 10 and indices == sorted(indices)
    assert frame is not None and frame.image.shape == (120, 160, 3)
    assert frame.source_id == f"rtsp://***@127.0.0.1:{rtsp_server.port}/test"
    assert props is not None and props.is_live and (props.width, props.height) == (160, 120)
    assert [e.state for e in events][:2] == [SourceState.CONNECTING, SourceState.CONNECTED]
    assert all("s3cret" not in e.source_id + e.reason for e in events)


@pytest.mark.timeout(60)
def test_rtsp_source_reconnects_after_server_restart(
    rtsp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given a stream that is delivering frames
    caplog.set_level("INFO", logger="camera_tools")
    events: list[SourceEvent] = []
    stream = rtsp_stream(rtsp_server.url("viewer:s3cret@"), events)
    try:
        assert len(read_frames(stream, 5, timeout=20)) == 5
        # when the server dies, stays down a moment, and comes back on the same port
        rtsp_server.kill()
        wait_until(
            lambda: stream.state in (SourceState.STALLED, SourceState.RECONNECTING),
            timeout=15,
            message=lambda: f"no stall/reconnect noticed: {[e.state for e in events]}",
        )
        time.sleep(1.0)
        rtsp_server.start()
        # then the source reconnects by itself and frames flow again
        wait_until(
            lambda: stream.state is SourceState.CONNECTED,
            timeout=30,
            message=lambda: str([e.state for e in events]),
        )
        after = read_frames(stream, 5, timeout=15)
        stats = stream.stats()
    finally:
        stream.stop()

    assert len(after) == 5
    assert stats.reconnects >= 1
    states = [e.state for e in events]
    first_gap = states.index(SourceState.CONNECTED) + 1
    assert states[first_gap] in (SourceState.STALLED, SourceState.RECONNECTING)
    assert SourceState.CONNECTED in states[first_gap:]
    gap_logs = [
        r for r in caplog.records if "reconnecting" in r.getMessage() or "stalled" in r.getMessage()
    ]
    assert gap_logs, "the gap was not logged"
    assert all("s3cret" not in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
def test_rtsp_watchdog_reconnects_a_frozen_server(rtsp_server: Any) -> None:
    # given a stream that is delivering frames
    events: list[SourceEvent] = []
    # OpenCV's own read timeout is set longer than the watchdog's, so the watchdog must act.
    stream = rtsp_stream(rtsp_server.url(), events, read_timeout_s=15.0)
    try:
        assert len(read_frames(stream, 5, timeout=20)) == 5
        # when the server freezes with its connection open (OpenCV's read blocks)
        rtsp_server.freeze()
        try:
            # then the watchdog declares the stall ...
            wait_until(
                lambda: SourceState.STALLED in [e.state for e in events],
                timeout=15,
                message=lambda: str([e.state for e in events]),
            )
        finally:
            rtsp_server.thaw()
        # ... and a fresh connection delivers again
        wait_until(
            lambda: stream.state is SourceState.CONNECTED,
            timeout=30,
            message=lambda: str([e.state for e in events]),
        )
        assert len(read_frames(stream, 5, timeout=15)) == 5
    finally:
        stream.stop()

    states = [e.state for e in events]
    assert states[1:5] == [
        SourceState.CONNECTED,
        SourceState.STALLED,
        SourceState.RECONNECTING,
        SourceState.CONNECTED,
    ]
    assert events[2].reason == "no frame for 3s"
