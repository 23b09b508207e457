"""Web page sources: the format choice, URL expiry, the missing extra, and real pages and HLS
streams served on loopback, resolved by the real yt-dlp and read by the real capture."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camera_tools.backoff import BackoffPolicy
from camera_tools.camera_errors import PageSupportUnavailableError, SourceError, SourceOfflineError
from camera_tools.capture import CaptureOptions, VideoStream, open_source
from camera_tools.page_sources import (
    PageSource,
    StreamFormat,
    choose_format,
    page_url,
    resolve_page,
    url_expiry,
)
from camera_tools.sources import SourceKind, create_source
from camera_tools.states import SourceEvent, SourceState
from tests.camera_tools.pages import PageServer, grey_index
from tests.support import wait_until

FAST_RETRY = BackoffPolicy(initial_delay=0.2, max_delay=0.5)
MODEL = (224, 224)


def fmt(
    format_id: str,
    size: tuple[int, int] | None,
    *,
    video: bool | None = True,
    audio: bool | None = False,
    protocol: str = "https",
    kbps: float | None = None,
) -> StreamFormat:
    width, height = size or (None, None)
    return StreamFormat(format_id, f"https://cdn/{format_id}", protocol, width, height, video,
                        audio, kbps)  # fmt: skip


@pytest.mark.parametrize(
    ("formats", "min_size", "expected"),
    [
        # the smallest at or above the model's input, whatever the listing order
        ([fmt("720", (1280, 720)), fmt("144", (256, 144)), fmt("360", (640, 360))], MODEL, "360"),
        # exactly the model's size is large enough
        ([fmt("224", (224, 224)), fmt("360", (640, 360))], MODEL, "224"),
        # wide enough but not tall enough is too small
        ([fmt("wide", (400, 200)), fmt("240", (426, 240))], MODEL, "240"),
        # none large enough: the largest
        ([fmt("144", (256, 144)), fmt("180", (320, 180))], MODEL, "180"),
        # at the same size, video-only beats muxed, then the lower bitrate wins
        ([fmt("muxed", (640, 360), audio=True), fmt("video", (640, 360))], MODEL, "video"),
        ([fmt("hi", (640, 360), kbps=900), fmt("lo", (640, 360), kbps=400)], MODEL, "lo"),
        # no minimum: the smallest
        ([fmt("360", (640, 360)), fmt("144", (256, 144))], None, "144"),
        # a known size beats an unknown one; unknown ones alone: the last (yt-dlp's best)
        ([fmt("hls", None, protocol="m3u8_native"), fmt("144", (256, 144))], MODEL, "144"),
        ([fmt("a", None, video=None, protocol="m3u8"), fmt("b", None, video=None)], MODEL, "b"),
        # what FFmpeg cannot read from one URL, or has no video, is never chosen
        ([fmt("audio", None, video=False, audio=True)], MODEL, None),
        ([fmt("dash", (640, 360), protocol="http_dash_segments")], MODEL, None),
        (
            [fmt("dash", (640, 360), protocol="http_dash_segments"), fmt("ok", (256, 144))],
            MODEL,
            "ok",
        ),  # fmt: skip
        ([], MODEL, None),
    ],
)
def test_choose_format(
    formats: list[StreamFormat], min_size: tuple[int, int] | None, expected: str | None
) -> None:
    chosen = choose_format(formats, min_size)
    assert (chosen.format_id if chosen else None) == expected


def test_stream_format_from_a_yt_dlp_format() -> None:
    info = {"format_id": "18", "url": "https://cdn/18", "protocol": "https", "width": 640,
            "height": 360, "vcodec": "avc1", "acodec": "none", "tbr": 500.0}  # fmt: skip
    assert StreamFormat.from_info(info) == StreamFormat(
        "18", "https://cdn/18", "https", 640, 360, True, False, 500.0
    )
    assert StreamFormat.from_info({"url": "u", "protocol": "m3u8_native"}).has_video is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://r1.cdn/videoplayback?expire=1893456000&sig=x", 1893456000.0),
        ("https://m.cdn/api/manifest/hls_playlist/expire/1893456000/id/y/index.m3u8", 1893456000.0),
        ("https://cf.cdn/v.m3u8?Expires=1893456000&Signature=z", 1893456000.0),
        ("https://cdn/live/index.m3u8", None),
        ("https://cdn/v.m3u8?expire=soon", None),
        ("https://cdn/v.m3u8?notexpire=1893456000", None),
    ],
)
def test_url_expiry(url: str, expected: float | None) -> None:
    assert url_expiry(url) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ytdl:https://example.com/live", "https://example.com/live"),
        ("YTDL: https://example.com/live ", "https://example.com/live"),
        ("https://example.com/live.html", "https://example.com/live.html"),
    ],
)
def test_page_url(spec: str, expected: str) -> None:
    assert page_url(spec) == expected


@pytest.mark.parametrize(
    "build",
    [
        lambda: PageSource("https://example.com/live.html"),
        lambda: create_source("ytdl:https://example.com/live"),
    ],
)
def test_without_yt_dlp_a_page_fails_in_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, build: Callable[[], Any]
) -> None:
    monkeypatch.setitem(sys.modules, "yt_dlp", None)  # `import yt_dlp` now raises ImportError
    with pytest.raises(PageSupportUnavailableError) as caught:
        build()
    message = str(caught.value)
    assert "stream-classification[live]" in message and "yt-dlp" in message
    assert "\n" not in message


# -- real pages on loopback, resolved by yt-dlp ------------------------------------------------


@pytest.mark.slow  # ffmpeg encodes the stream; yt-dlp resolves the page
@pytest.mark.timeout(120)
def test_resolve_page(grey_hls: Path, page_server: Callable[[Path], PageServer]) -> None:
    pages = page_server(grey_hls)

    recorded = resolve_page(pages.url("vod.html"), min_size=MODEL)
    assert recorded.url == pages.url("g0/vod.m3u8")
    assert recorded.kind is SourceKind.HLS and recorded.is_live is not True
    # (yt-dlp's generic extractor does not tell a live <video> playlist: the playlist itself does)
    live = resolve_page(pages.url("live.html"), min_size=MODEL)
    assert live.url == pages.url("g0/live.m3u8") and live.kind is SourceKind.HLS
    assert resolve_page(pages.url("vod.html"), page_format="hls").format.format_id == "hls"

    # a page without video is offline (retried); an error no wait fixes is a plain failure
    with pytest.raises(SourceOfflineError, match="Unsupported URL"):
        resolve_page(pages.url("empty.html"))
    for url, page_format in ((pages.url("missing.html"), None), (pages.url("vod.html"), "nope")):
        with pytest.raises(SourceError) as caught:
            resolve_page(url, page_format=page_format, timeout_s=5)
        assert not isinstance(caught.value, SourceOfflineError), caught.value


def read_all(stream: VideoStream, timeout: float) -> list[int]:
    """Grey indices of every frame until the stream is finished."""
    deadline = time.monotonic() + timeout
    indices: list[int] = []
    while not stream.finished:
        assert time.monotonic() < deadline, f"not finished; frames so far: {indices}"
        frame = stream.read(timeout=0.2)
        if frame is not None:
            indices.append(grey_index(frame.image))
    return indices


@pytest.mark.slow  # ffmpeg encodes the stream; yt-dlp resolves the page
@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["vod.html", "g0/vod.m3u8"], ids=["page", "direct-hls"])
def test_a_recording_is_read_like_a_file_every_frame_once_in_order(
    grey_hls: Path, page_server: Callable[[Path], PageServer], path: str
) -> None:
    # given a page (or the HLS playlist itself) whose stream is a recording of 30 frames
    pages = page_server(grey_hls)
    events: list[SourceEvent] = []

    # when it is read with a reconnect policy that would replay it if it counted as live
    with open_source(
        pages.url(path), options=CaptureOptions(reconnect=FAST_RETRY), on_event=events.append
    ) as stream:
        indices = read_all(stream, timeout=90)

    # then every frame came once, in order, and the source ended without reopening
    assert indices == list(range(30))
    assert stream.live is False
    assert [e.state for e in events] == [
        SourceState.CONNECTING, SourceState.CONNECTED, SourceState.ENDED,
    ]  # fmt: skip
    assert stream.stats().reconnects == 0 and stream.stats().frames_overwritten == 0
    assert pages.requested("/vod.html") == (1 if path == "vod.html" else 0)


@pytest.mark.slow  # ffmpeg encodes the stream; yt-dlp resolves the page
@pytest.mark.timeout(120)
def test_a_live_page_is_read_live_and_resolved_again_when_its_stream_moves(
    grey_hls: Path,
    page_server: Callable[[Path], PageServer],
) -> None:
    # given a live page read by the capture
    pages = page_server(grey_hls)
    events: list[SourceEvent] = []
    options = CaptureOptions(reconnect=FAST_RETRY, stall_timeout_s=3.0)
    factory = lambda spec: create_source(spec, open_timeout_s=3.0, read_timeout_s=3.0)  # noqa: E731
    stream = open_source(
        pages.url("live.html"), options=options, source_factory=factory, on_event=events.append
    )
    try:
        wait_until(lambda: stream.stats().frames_read >= 5, 60, message=lambda: str(events))
        assert stream.live is True and stream.kind is SourceKind.PAGE

        # when its stream moves (the old URL answers 404, like an expired signed URL)
        pages.rotate()
        moved_at = stream.stats().frames_read

        # then the page is resolved again and the new stream is read
        wait_until(lambda: pages.requested("/g1/seg_") >= 2, 60, message=lambda: str(events))
        wait_until(
            lambda: stream.stats().frames_read >= moved_at + 10, 30, message=lambda: str(events)
        )
    finally:
        stream.stop()
    assert pages.requested("/live.html") >= 2
    assert stream.stats().reconnects >= 1
    states = [e.state for e in events]
    assert states[:2] == [SourceState.CONNECTING, SourceState.CONNECTED]
    assert SourceState.CONNECTED in states[2:] and SourceState.OFFLINE not in states


@pytest.mark.slow  # ffmpeg encodes the stream; yt-dlp resolves the page
@pytest.mark.timeout(60)
def test_a_page_without_video_is_offline_and_retried_on_backoff(
    grey_hls: Path,
    page_server: Callable[[Path], PageServer],
) -> None:
    pages = page_server(grey_hls)
    events: list[SourceEvent] = []
    stream = open_source(
        pages.url("empty.html"),
        options=CaptureOptions(reconnect=FAST_RETRY),
        on_event=events.append,
    )
    try:
        wait_until(lambda: pages.requested("/empty.html") >= 3, 40, message=lambda: str(events))
    finally:
        stream.stop()
    offline = [e for e in events if e.state is SourceState.OFFLINE]
    assert [e.state for e in events][:2] == [SourceState.CONNECTING, SourceState.OFFLINE]
    assert "Unsupported URL" in offline[0].reason and offline[0].delay_s is not None
    assert stream.stats().reconnects >= 2 and stream.stats().frames_read == 0
    assert events[-1].state is SourceState.ENDED and events[-1].reason == "stopped"
