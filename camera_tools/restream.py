"""Re-stream each source's annotated video over RTSP (H.264), with GStreamer's RTSP server.

GStreamer's Python bindings come from Debian (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``)
and live in the system Python, not in the project's virtualenv, so the server runs as a child
process: ``/usr/bin/python3 camera_tools/_restream_server.py``. :class:`RtspRestreamer` feeds
it raw frames over a pipe from one writer thread; :meth:`~RtspRestreamer.publish_frame` only
drops the frame into a per-source latest-frame slot, so a slow encoder never slows the caller.

Each source is served at ``rtsp://HOST:PORT/<slug>`` (see :meth:`RtspRestreamer.url`), once
its first frame arrived; frames keep the first frame's size (scaled to ``max_width``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import cv2
import numpy as np

from camera_tools.camera_errors import CameraToolsError
from camera_tools.overlay import OverlayPainter
from camera_tools.sinks.base import Classification, unique_slug

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("_restream_server.py")
INSTALL_HINT = (
    "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-ugly"
)
_HEADER_MAGIC = b"FRM1"


class RestreamUnavailableError(CameraToolsError):
    """The RTSP re-stream cannot start: missing system packages, or the port is taken."""


def parse_restream_url(url: str) -> tuple[str, int]:
    """``rtsp://HOST:PORT/`` → (host, port); the port defaults to 8554.

    Raises:
        ValueError: Not an ``rtsp://`` URL with a host.

    Example:
        >>> parse_restream_url("rtsp://127.0.0.1:8554/")
        ('127.0.0.1', 8554)
    """
    parts = urlsplit(url)
    if parts.scheme != "rtsp" or not parts.hostname:
        raise ValueError(f"--restream needs rtsp://HOST:PORT/, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    return parts.hostname, 8554 if port is None else port


def encode_frame(slug: str, image: np.ndarray) -> bytes:
    """One frame in the child's wire format (see ``_restream_server.py``)."""
    height, width = image.shape[:2]
    name = slug.encode("utf-8")
    head = _HEADER_MAGIC + b"".join(
        value.to_bytes(size, "big")
        for value, size in ((len(name), 2), (width, 2), (height, 2), (width * height * 3, 4))
    )
    return head + name + np.ascontiguousarray(image).tobytes()


class RtspRestreamer:
    """Serves every published source as ``rtsp://HOST:PORT/<slug>`` (H.264).

    Args:
        host: Address to listen on (loopback by default).
        port: RTSP port; 0 picks a free one (see :attr:`port`).
        fps: Frame rate of the re-streams (frames are repeated or dropped to keep it).
        max_width: Frames wider than this are scaled down (and sizes made even for H.264).
        annotate: Draw the overlay (pass raw frames); ``False`` for frames already annotated.
        python: The Python that has GStreamer's bindings.
        start_timeout_s: How long the server may take to start.
        clock: Wall clock for the overlay's strip, injectable for tests.

    Raises:
        RestreamUnavailableError: No system Python, no bindings or encoder (the message names
            the packages to install), or the port is taken.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8554,
        fps: int = 10,
        max_width: int = 1280,
        annotate: bool = True,
        python: str = SYSTEM_PYTHON,
        start_timeout_s: float = 20.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= fps <= 60 or max_width < 16:
            raise ValueError("fps must be in [1, 60] and max_width >= 16")
        self.host = host
        self.fps = fps
        self.max_width = max_width
        self._painter = OverlayPainter(clock=clock) if annotate else None
        self._clock = clock
        self._process = self._start(python, host, port, fps, start_timeout_s)
        self.port = self._read_ready(start_timeout_s)
        self._lock = threading.Condition()
        self._slugs: dict[str, str] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, tuple[np.ndarray, Classification]] = {}
        self._last_accepted: dict[str, float] = {}
        self._closed = False
        self.frames_sent = 0
        self._writer = threading.Thread(target=self._write_loop, name="restream", daemon=True)
        self._writer.start()
        logger.info("re-streaming on rtsp://%s:%d/", host, self.port)

    @staticmethod
    def _start(
        python: str, host: str, port: int, fps: int, timeout_s: float
    ) -> subprocess.Popen[bytes]:
        if not os.access(python, os.X_OK):
            raise RestreamUnavailableError(
                f"the RTSP re-stream needs the system Python with GStreamer ({python} not found): "
                f"{INSTALL_HINT}"
            )
        try:
            return subprocess.Popen(
                [
                    python,
                    str(SERVER_SCRIPT),
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--fps",
                    str(fps),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise RestreamUnavailableError(f"cannot start the RTSP server: {exc}") from exc

    def _read_ready(self, timeout_s: float) -> int:
        stdout = self._process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout_s)
        line = stdout.readline().decode("utf-8", "replace").strip() if ready else ""
        if line.startswith("READY "):
            return int(line.split()[1])
        self._stop_process()
        if line.startswith("ERROR "):
            problem = line[len("ERROR ") :]
            if "listen" in problem:
                raise RestreamUnavailableError(f"RTSP re-stream: {problem}")
            raise RestreamUnavailableError(f"RTSP re-stream unavailable: {problem}; {INSTALL_HINT}")
        raise RestreamUnavailableError(
            f"the RTSP server did not start within {timeout_s:g} s (got {line!r}); {INSTALL_HINT}"
        )

    def url(self, source: str) -> str:
        """Where ``source`` is (or will be) served."""
        with self._lock:
            slug = self._slug(source)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"rtsp://{host}:{self.port}/{slug}"

    def publish_frame(self, source: str, image: np.ndarray, classification: Classification) -> None:
        """Offer a classified frame; returns at once (frames beyond ``fps`` are dropped)."""
        if self._painter is not None:
            self._painter.observe(source, classification.label)
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            self._slug(source)
            if now - self._last_accepted.get(source, float("-inf")) < 1.0 / self.fps:
                return
            self._last_accepted[source] = now
            self._pending[source] = (image, classification)
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._writer.join(timeout=5)
        self._stop_process()

    def __enter__(self) -> RtspRestreamer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _slug(self, source: str) -> str:
        slug = self._slugs.get(source)
        if slug is None:
            slug = self._slugs[source] = unique_slug(source, set(self._slugs.values()))
        return slug

    def _write_loop(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or bool(self._pending))
                if self._closed:
                    return
                work = list(self._pending.items())
                self._pending.clear()
            for source, (image, classification) in work:
                if not self._send(stdin, source, image, classification):
                    return

    def _send(
        self, stdin: IO[bytes], source: str, image: np.ndarray, classification: Classification
    ) -> bool:
        with self._lock:
            slug = self._slugs[source]
            size = self._sizes.get(source)
        if size is None:
            height, width = image.shape[:2]
            scale = min(1.0, self.max_width / width)
            # H.264 in 4:2:0 needs even sizes.
            size = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
            with self._lock:
                self._sizes[source] = size
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if self._painter is not None:
            image = self._painter.paint(
                image,
                source=source,
                label=classification.label,
                score=classification.score,
                observe=False,
            )
        try:
            stdin.write(encode_frame(slug, image))
            stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            logger.error("RTSP re-stream server stopped (%s); no more re-streamed frames", exc)
            return False
        self.frames_sent += 1
        return True

    def _stop_process(self) -> None:
        process = self._process
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # already broken: the child is gone
                    pipe.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
