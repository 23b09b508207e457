from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from camera_tools.camera_errors import SourceError
from camera_tools.sources import (
    ImageFolderSource,
    OpenCVSource,
    Playlist,
    SourceKind,
    classify_spec,
    create_source,
    kind_from_content_type,
    recognise_spec,
)
from camera_tools.video_frames import Frame, SourceProperties
from tests.camera_tools.pages import PageServer


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("0", SourceKind.WEBCAM),
        ("2", SourceKind.WEBCAM),
        ("/dev/video0", SourceKind.WEBCAM),
        ("rtsp://user:pw@cam/live", SourceKind.NETWORK),
        ("rtsps://cam:322/live", SourceKind.NETWORK),
        ("http://cam/mjpeg", SourceKind.NETWORK),
        ("https://cdn/live/index.m3u8", SourceKind.HLS),
        ("https://cdn/live/index.m3u8?token=x", SourceKind.HLS),
        ("https://cdn/clips/movie.mp4", SourceKind.FILE),
        ("https://broadcaster.example/live.html", SourceKind.PAGE),
        ("http://site.example/player.php?ch=2", SourceKind.PAGE),
        ("ytdl:https://www.youtube.com/watch?v=x", SourceKind.PAGE),
        ("ytdl:https://cdn/clips/movie.mp4", SourceKind.PAGE),  # the prefix wins
        ("https://www.youtube.com/watch?v=x", SourceKind.NETWORK),  # a probe tells, not the string
        ("clip.mp4", SourceKind.FILE),
        ("file:///videos/clip.mkv", SourceKind.FILE),
        ("frames/*.png", SourceKind.FOLDER),
        ("photo.jpg", SourceKind.FOLDER),
    ],
)
def test_classify_spec(spec: str, kind: SourceKind) -> None:
    assert classify_spec(spec) is kind


@pytest.mark.parametrize(
    "spec", ["", "   ", "ftp://host/file.mp4", "gopher://x", "ytdl:", "ytdl:  "]
)
def test_classify_spec_rejects_unknown(spec: str) -> None:
    with pytest.raises(SourceError):
        classify_spec(spec)


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/html", SourceKind.PAGE),
        ("Text/HTML; charset=UTF-8", SourceKind.PAGE),
        ("application/xhtml+xml", SourceKind.PAGE),
        ("application/vnd.apple.mpegurl", SourceKind.HLS),
        ("audio/x-mpegurl", SourceKind.HLS),
        ("multipart/x-mixed-replace; boundary=frame", SourceKind.NETWORK),  # MJPEG camera
        ("video/mp2t", SourceKind.NETWORK),
        ("", SourceKind.NETWORK),
    ],
)
def test_kind_from_content_type(content_type: str, kind: SourceKind) -> None:
    assert kind_from_content_type(content_type) is kind


@pytest.mark.slow  # ffmpeg encodes the stream the server serves
@pytest.mark.timeout(60)
def test_recognise_spec_probes_http_urls_the_string_cannot_tell(
    grey_hls: Path, page_server: Callable[[Path], PageServer]
) -> None:
    pages = page_server(grey_hls)
    assert recognise_spec(pages.url("probe/page")) is SourceKind.PAGE
    assert recognise_spec(pages.url("probe/playlist")) is SourceKind.HLS
    assert recognise_spec(pages.url("probe/binary")) is SourceKind.NETWORK
    # an error status or a refused connection keeps today's path: a stream, reopened with backoff
    assert recognise_spec(pages.url("probe/missing")) is SourceKind.NETWORK
    assert recognise_spec("http://127.0.0.1:1/stream", probe_timeout_s=1) is SourceKind.NETWORK
    # the string alone decides when it can: no request is made
    before = len(pages.requests)
    assert recognise_spec(pages.url("clip.mp4")) is SourceKind.FILE
    assert recognise_spec("ytdl:" + pages.url("probe/binary")) is SourceKind.PAGE
    assert len(pages.requests) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#EXTM3U\n#EXTINF:1,\na.ts\n#EXT-X-ENDLIST\n", Playlist(True, ())),
        ("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:1,\na.ts\n", Playlist(True, ())),
        ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1,\na.ts\n", Playlist(False, ())),
        (
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/i.m3u8\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=2\n\nhigh/i.m3u8\n",
            Playlist(False, ("low/i.m3u8", "high/i.m3u8")),
        ),
    ],
)
def test_playlist_parse(text: str, expected: Playlist) -> None:
    assert Playlist.parse(text) == expected


@pytest.mark.parametrize("text", ["", "<html></html>", "#EXTINF:1,\na.ts\n"])
def test_playlist_parse_rejects_what_is_not_a_playlist(text: str) -> None:
    with pytest.raises(ValueError, match="EXTM3U"):
        Playlist.parse(text)


def test_classify_spec_directory(image_folder: Path) -> None:
    assert classify_spec(str(image_folder)) is SourceKind.FOLDER


def test_unknown_scheme_error_is_redacted() -> None:
    with pytest.raises(SourceError) as info:
        classify_spec("ftp://bob:secret@host/x")
    assert "secret" not in str(info.value)


def test_video_file_source_reads_every_frame_with_positions(video_30f_10fps: Path) -> None:
    source = create_source(str(video_30f_10fps))
    props = source.open()
    frames = []
    while (raw := source.read()) is not None:
        frames.append(raw)
    source.close()

    assert props == SourceProperties(width=64, height=48, fps=10.0, is_live=False, total_frames=30)
    assert len(frames) == 30
    assert [f.position_s for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2])
    assert frames[0].image.shape == (48, 64, 3)
    assert frames[0].image.dtype == np.uint8


@pytest.mark.parametrize("spec", ["missing.mp4", "rtsp://127.0.0.1:9/none"])
def test_unopenable_source_raises(tmp_path: Path, spec: str) -> None:
    if "://" not in spec:
        spec = str(tmp_path / spec)
    source = OpenCVSource(spec, open_timeout_s=2, read_timeout_s=2)
    with pytest.raises(SourceError):
        source.open()


@pytest.mark.parametrize(
    ("spec_of", "count"),
    [
        (lambda d: str(d), 5),
        (lambda d: str(d / "img_00[0-2].png"), 3),
        (lambda d: str(d / "img_004.png"), 1),
    ],
)
def test_image_folder_source(image_folder: Path, spec_of: Any, count: int) -> None:
    source = ImageFolderSource(spec_of(image_folder), fps=5)
    props = source.open()
    positions = []
    while (raw := source.read()) is not None:
        positions.append(raw.position_s)
    assert props.total_frames == count
    assert props.is_live is False
    assert positions == pytest.approx([i / 5 for i in range(count)])


def test_image_folder_skips_unreadable_images(image_folder: Path) -> None:
    (image_folder / "img_002.png").write_bytes(b"not a png")
    source = ImageFolderSource(str(image_folder))
    source.open()
    read = 0
    while source.read() is not None:
        read += 1
    assert read == 4


def test_empty_image_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(str(tmp_path)).open()


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({"width": 640, "height": 480, "fps": 30.0, "is_live": True}, True),
        ({"width": 640, "height": 480, "fps": None, "is_live": False, "total_frames": 0}, True),
        ({"width": 0, "height": 480, "fps": 30.0, "is_live": True}, False),
        ({"width": 640, "height": 480, "fps": -1.0, "is_live": True}, False),
        ({"width": 640, "height": 480, "fps": 30.0, "is_live": False, "total_frames": -5}, False),
    ],
)
def test_source_properties_validation(kwargs: dict[str, Any], ok: bool) -> None:
    if ok:
        SourceProperties(**kwargs)
    else:
        with pytest.raises(ValueError):
            SourceProperties(**kwargs)


@pytest.mark.parametrize(
    ("image", "index", "ok"),
    [
        (np.zeros((4, 4, 3), np.uint8), 0, True),
        (np.zeros((4, 4), np.uint8), 0, False),
        (np.zeros((4, 4, 3), np.float32), 0, False),
        (np.zeros((4, 4, 4), np.uint8), 0, False),
        (np.zeros((4, 4, 3), np.uint8), -1, False),
    ],
)
def test_frame_validation(image: np.ndarray, index: int, ok: bool) -> None:
    if ok:
        Frame(image=image, index=index, captured_at=0.0, source_id="cam")
    else:
        with pytest.raises(ValueError):
            Frame(image=image, index=index, captured_at=0.0, source_id="cam")
