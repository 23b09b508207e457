from __future__ import annotations

import pytest

from camera_tools.redact import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://user:pass@host/x", "rtsp://***@host/x"),
        ("rtsps://admin:p%40ss@10.0.0.5:322/stream1", "rtsps://***@10.0.0.5:322/stream1"),
        ("rtsp://user@host:554/x", "rtsp://***@host:554/x"),
        ("http://cam/video.m3u8?password=hunter2&ch=1", "http://cam/video.m3u8?password=***&ch=1"),
        (
            "https://cdn/live.m3u8?token=abc.def&Token=x",
            "https://cdn/live.m3u8?token=***&Token=***",
        ),
        ("rtsp://u:p@host/x?PASSWORD=s", "rtsp://***@host/x?PASSWORD=***"),
        # nothing secret: unchanged
        ("rtsp://host/x", "rtsp://host/x"),
        ("https://cdn/live.m3u8?ch=1&quality=hd", "https://cdn/live.m3u8?ch=1&quality=hd"),
        ("rtsp://host/path@weird", "rtsp://host/path@weird"),
        ("/videos/clip.mp4", "/videos/clip.mp4"),
        ("0", "0"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redacted_url_leaks_no_secret() -> None:
    redacted = redact_url("rtsp://alice:s3cret@cam/live?token=t0k&x=1")
    assert "alice" not in redacted
    assert "s3cret" not in redacted
    assert "t0k" not in redacted
