"""Web pages and HLS streams served on loopback, for the page-source and watch tests.

:func:`write_hls` encodes frames with ffmpeg into HLS segments; :class:`PageServer` serves them
behind HTML pages whose ``<video>`` yt-dlp's generic extractor finds, as a recording (a playlist
with an end) or as a live, sliding playlist, and moves the stream to a new path on
:meth:`~PageServer.rotate` (the old path then answers 404, like an expired signed URL).

Imported as ``tests.camera_tools.pages`` (test modules cannot import each other or the conftest).
"""

from __future__ import annotations

import contextlib
import http.server
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

SEGMENT_S = 1.0
LIVE_WINDOW = 3  # segments listed by the live playlist at any time
_SEGMENT = re.compile(r"^seg_(\d+)\.ts$")
_STREAM = re.compile(r"^/g(\d+)/(vod\.m3u8|live\.m3u8|seg_\d+\.ts)$")


def write_hls(folder: Path, images: Sequence[np.ndarray], fps: float) -> Path:
    """Encode BGR ``images`` as H.264 HLS: ``seg_000.ts``... and ``vod.m3u8`` in ``folder``.

    One key frame per segment of :data:`SEGMENT_S`, no B-frames; skips the test without ffmpeg.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("no ffmpeg: apt-get install ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    height, width = images[0].shape[:2]
    gop = str(round(fps * SEGMENT_S))
    command = [
        ffmpeg, "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", gop, "-keyint_min", gop,
        "-sc_threshold", "0", "-pix_fmt", "yuv420p",
        "-f", "hls", "-hls_time", str(SEGMENT_S), "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(folder / "seg_%03d.ts"), str(folder / "vod.m3u8"),
    ]  # fmt: skip
    raw = b"".join(np.ascontiguousarray(image).tobytes() for image in images)
    subprocess.run(command, input=raw, check=True, timeout=120)
    return folder / "vod.m3u8"


def grey_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Frames whose brightness is ``8 * index``: the order survives lossy encoding."""
    width, height = size
    return [np.full((height, width, 3), 8 * i, np.uint8) for i in range(count)]


def grey_index(image: np.ndarray) -> int:
    """The index of a :func:`grey_frames` frame after decoding."""
    return round(float(image.mean()) / 8)


def video_page(src: str) -> str:
    return (
        "<!doctype html><html><head><title>Live</title></head><body>"
        f'<video controls autoplay><source src="{src}" type="application/x-mpegURL"></video>'
        "</body></html>"
    )


class PageServer:
    """HTML pages and HLS on ``http://127.0.0.1:PORT``, served from a thread until :meth:`close`.

    Paths:
        ``/vod.html``, ``/live.html``: a ``<video>`` whose source is the current generation's
        ``vod.m3u8`` (the file, with its end) or ``live.m3u8`` (a sliding window of
        :data:`LIVE_WINDOW` segments that moves on one segment per :data:`SEGMENT_S`, looping
        over the segments with a discontinuity).
        ``/empty.html``: a page without video.
        ``/g<N>/...``: the playlists and segments of generation N; 404 unless N is current.
        ``/probe/<name>``: no extension, for the content-type probe: ``page`` (HTML),
        ``playlist`` (an HLS playlist), ``binary`` (octet-stream); anything else is 404.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.segments = len(list(folder.glob("seg_*.ts")))
        self.generation = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def rotate(self) -> None:
        """Move the stream to the next generation's path; the old one answers 404 from now."""
        with self._lock:
            self.generation += 1

    def requested(self, prefix: str) -> int:
        """How many requests had a path starting with ``prefix``."""
        with self._lock:
            return sum(1 for path in self.requests if path.startswith(prefix))

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def live_playlist(self) -> str:
        first = int((time.monotonic() - self._started) / SEGMENT_S)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{round(SEGMENT_S)}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for i in range(first, first + LIVE_WINDOW):
            if i and i % self.segments == 0:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += [f"#EXTINF:{SEGMENT_S:.3f},", f"seg_{i}.ts"]
        return "\n".join(lines) + "\n"

    def _serve(self, request: http.server.BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(path)
            generation = self.generation
        html = {
            "/vod.html": video_page(f"/g{generation}/vod.m3u8"),
            "/live.html": video_page(f"/g{generation}/live.m3u8"),
            "/empty.html": "<!doctype html><html><body><p>Nothing to see.</p></body></html>",
            "/probe/page": "<!doctype html><html><body>a page</body></html>",
        }
        if path in html:
            self._reply(request, "text/html; charset=utf-8", html[path].encode())
            return
        if path == "/probe/playlist":
            body = (self.folder / "vod.m3u8").read_bytes()
            self._reply(request, "application/vnd.apple.mpegurl", body)
            return
        if path == "/probe/binary":
            self._reply(request, "application/octet-stream", b"\0" * 16)
            return
        match = _STREAM.match(path)
        if match is None or int(match.group(1)) != generation:
            request.send_error(404)
            return
        name = match.group(2)
        if name == "live.m3u8":
            self._reply(request, "application/vnd.apple.mpegurl", self.live_playlist().encode())
        elif name == "vod.m3u8":
            body = (self.folder / "vod.m3u8").read_bytes()
            self._reply(request, "application/vnd.apple.mpegurl", body)
        else:
            index = int(_SEGMENT.match(name).group(1)) % self.segments  # type: ignore[union-attr]
            body = (self.folder / f"seg_{index:03d}.ts").read_bytes()
            self._reply(request, "video/mp2t", body)

    @staticmethod
    def _reply(request: http.server.BaseHTTPRequestHandler, content_type: str, body: bytes) -> None:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            request.wfile.write(body)  # the probe reads the headers only
