from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_tools.overlay import label_color
from camera_tools.restream import (
    RestreamUnavailableError,
    RtspRestreamer,
    encode_frame,
    parse_restream_url,
)
from camera_tools.sinks.base import Classification

SOURCE = "rtsp://***@studio.local/bars"


@pytest.fixture
def restreamer() -> Iterator[RtspRestreamer]:
    try:
        server = RtspRestreamer(port=0, fps=10)
    except RestreamUnavailableError as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
def test_restreamed_video_carries_the_overlay(restreamer: RtspRestreamer, tmp_path: Path) -> None:
    # given a publisher sending grey frames labelled color_bars
    stop = threading.Event()

    def publish() -> None:
        for i in range(3000):  # bounded: the test ends long before
            if stop.wait(0.03):
                return
            image = np.full((240, 320, 3), 128, np.uint8)
            restreamer.publish_frame(
                SOURCE, image, Classification(SOURCE, i, 1000.0 + i, "color_bars", 0.95)
            )

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    capture = None
    try:
        url = restreamer.url(SOURCE)
        assert url == f"rtsp://127.0.0.1:{restreamer.port}/rtsp-studio-local-bars"
        # when the URL is read back (the mount appears with the first frame: retry a few times)
        decoded = None
        for _ in range(10):
            capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
            if capture.isOpened():
                for _ in range(30):
                    ok, image = capture.read()
                    if ok:
                        decoded = image
                        break
            if decoded is not None:
                break
            capture.release()
            stop.wait(0.5)
    finally:
        stop.set()
        publisher.join(timeout=10)
        if capture is not None:
            capture.release()

    # then the decoded frame has the grey scene and the badge in the label's colour
    assert decoded is not None, "no frame read back from the re-stream"
    cv2.imwrite(str(tmp_path / "restream.png"), decoded)
    assert decoded.shape == (240, 320, 3)
    assert abs(float(decoded[160:200, 200:300].mean()) - 128) < 12
    near = np.abs(decoded[:40, :160].astype(int) - label_color("color_bars")).max(axis=2) < 40
    assert near.mean() > 0.25


def test_without_gstreamer_bindings_the_message_names_the_packages() -> None:
    # The project's virtualenv Python has no gi: the same failure as a machine without them.
    with pytest.raises(RestreamUnavailableError, match="gir1.2-gst-rtsp-server-1.0"):
        RtspRestreamer(port=0, python=sys.executable)
    with pytest.raises(RestreamUnavailableError, match="python3-gi"):
        RtspRestreamer(port=0, python="/nonexistent/python3")


@pytest.mark.parametrize(
    ("url", "expected"),
    [("rtsp://127.0.0.1:8554/", ("127.0.0.1", 8554)), ("rtsp://0.0.0.0", ("0.0.0.0", 8554))],
)
def test_parse_restream_url(url: str, expected: tuple[str, int]) -> None:
    assert parse_restream_url(url) == expected


@pytest.mark.parametrize("url", ["http://x:1/", "rtsp://", "rtsp://h:99999/"])
def test_parse_restream_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        parse_restream_url(url)


def test_frame_wire_format() -> None:
    data = encode_frame("cam", np.zeros((2, 4, 3), np.uint8))
    assert data[:4] == b"FRM1" and len(data) == 4 + 2 + 2 + 2 + 4 + 3 + 2 * 4 * 3
