"""Frame sources: webcams, network streams, HLS playlists, web pages, video files and folders.

A :class:`FrameSource` is a plain blocking reader with no threads and no policy;
:mod:`camera_tools.capture` runs one in a thread and adds buffering, pacing and
reconnects. :func:`create_source` picks the implementation for a spec string; it
is the default ``source_factory`` and can be replaced (tests use fakes).

Which http(s) URLs are web pages (resolved to their stream by yt-dlp, see
:mod:`camera_tools.page_sources`) and which are media read directly: the extension tells
(``.mp4``... a file, ``.m3u8`` an HLS playlist, ``.html``... a page), else the ``Content-Type``
of a quick probe (:func:`recognise_spec`); ``ytdl:URL`` always means a page.
"""

from __future__ import annotations

import enum
import glob
import http.client
import logging
import os
import re
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urljoin, urlsplit

import cv2
import numpy as np

from camera_tools.camera_errors import SourceError
from camera_tools.redact import redact_url
from camera_tools.video_frames import SourceProperties

logger = logging.getLogger(__name__)

NETWORK_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
PLAYLIST_EXTENSIONS = frozenset({".m3u8"})
PAGE_EXTENSIONS = frozenset({".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx", ".jsp"})
PAGE_PREFIX = "ytdl:"
"""Marks a spec as a web page for yt-dlp whatever its URL looks like: ``ytdl:https://...``."""
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_PLAYLIST_TYPES = frozenset(
    {"application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl"}
)
_PROBE_TIMEOUT_S = 3.0  # a quick look at an http(s) URL's Content-Type, not a download
_USER_AGENT = "Mozilla/5.0 (compatible; stream-classification)"
_MAX_PLAYLIST_BYTES = 4 * 1024 * 1024
_DEVICE = re.compile(r"^/dev/video(\d+)$")
_GLOB_CHARS = re.compile(r"[*?\[]")


class SourceKind(enum.Enum):
    """What a spec string points at; decides buffering and reconnect behaviour."""

    WEBCAM = "webcam"
    NETWORK = "network"
    HLS = "hls"  # an HTTP Live Streaming playlist: live, or a recording when it has an end
    PAGE = "page"  # a web page whose stream yt-dlp finds: live or a recording
    FILE = "file"
    FOLDER = "folder"

    @property
    def is_live(self) -> bool:
        """Live sources keep only the newest frame; the others are read in order.

        For the kinds that are live or not as :attr:`live_decided_at_open` says, this is the
        assumption until the source has been opened.
        """
        return self in (SourceKind.WEBCAM, SourceKind.NETWORK, SourceKind.HLS, SourceKind.PAGE)

    @property
    def live_decided_at_open(self) -> bool:
        """Whether the opened source's :attr:`SourceProperties.is_live` tells if it is live.

        An HLS playlist with an end, or a page whose stream is a recording, is read like a
        file: every frame once, in order, then it ends.
        """
        return self in (SourceKind.HLS, SourceKind.PAGE)

    @property
    def reconnects(self) -> bool:
        """Only network streams, playlists and pages are reopened; a file's end is final."""
        return self in (SourceKind.NETWORK, SourceKind.HLS, SourceKind.PAGE)


@dataclass(frozen=True)
class RawFrame:
    """A frame as a :class:`FrameSource` returns it, before capture adds metadata."""

    image: np.ndarray
    position_s: float | None = None


@runtime_checkable
class FrameSource(Protocol):
    """A blocking frame reader. Not thread-safe: one thread opens, reads and closes it."""

    @property
    def kind(self) -> SourceKind:
        """What kind of source this is."""
        ...

    def open(self) -> SourceProperties:
        """Open the source; raise :class:`SourceError` when it cannot be opened."""
        ...

    def read(self) -> RawFrame | None:
        """Return the next frame, or ``None`` at the end of the stream or on a read error."""
        ...

    def close(self) -> None:
        """Release the source; safe to call more than once."""
        ...


SourceFactory = Callable[[str], FrameSource]
"""Builds a fresh, unopened source for a spec; called again on every reconnect."""


def classify_spec(spec: str) -> SourceKind:
    """Tell which kind of source a spec string names.

    Looks at the string only; :func:`recognise_spec` also probes an http(s) URL that this
    calls NETWORK, which may be a web page.

    Args:
        spec: ``0`` or ``/dev/video0`` (webcam), ``rtsp://...``/``http(s)://...``
            (network stream; an http(s) URL of a video file counts as a file, of a
            ``.m3u8`` playlist as HLS, of a ``.html``/``.php``... page as a page),
            ``ytdl:URL`` (a page for yt-dlp), a directory or glob of images, or a video file path.

    Raises:
        SourceError: The spec is empty or names an unknown URL scheme.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError("empty source spec")
    if spec.isdigit() or _DEVICE.match(spec):
        return SourceKind.WEBCAM
    if spec.lower().startswith(PAGE_PREFIX):
        if not spec[len(PAGE_PREFIX) :].strip():
            raise SourceError(f"no URL after {PAGE_PREFIX!r}")
        return SourceKind.PAGE
    if "://" in spec:
        parts = urlsplit(spec)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return classify_spec(parts.path)
        if scheme not in NETWORK_SCHEMES:
            raise SourceError(f"unsupported URL scheme {scheme!r} in {redact_url(spec)}")
        if scheme in ("http", "https"):
            suffix = Path(parts.path).suffix.lower()
            if suffix in VIDEO_EXTENSIONS:
                return SourceKind.FILE
            if suffix in PLAYLIST_EXTENSIONS:
                return SourceKind.HLS
            if suffix in PAGE_EXTENSIONS:
                return SourceKind.PAGE
        return SourceKind.NETWORK
    if os.path.isdir(spec) or _GLOB_CHARS.search(spec):
        return SourceKind.FOLDER
    if Path(spec).suffix.lower() in IMAGE_EXTENSIONS:
        return SourceKind.FOLDER  # a single image is a one-frame folder
    return SourceKind.FILE


def kind_from_content_type(content_type: str) -> SourceKind:
    """The kind of an http(s) URL by the ``Content-Type`` it answers with.

    Only a page and a playlist are told apart; anything else (MJPEG, MPEG-TS...) stays a
    network stream, as before pages were recognised.

    >>> kind_from_content_type("text/html; charset=utf-8").name
    'PAGE'
    >>> kind_from_content_type("application/vnd.apple.mpegurl").name
    'HLS'
    >>> kind_from_content_type("multipart/x-mixed-replace; boundary=frame").name
    'NETWORK'
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _PAGE_TYPES:
        return SourceKind.PAGE
    if media_type in _PLAYLIST_TYPES:
        return SourceKind.HLS
    return SourceKind.NETWORK


def recognise_spec(spec: str, *, probe_timeout_s: float = _PROBE_TIMEOUT_S) -> SourceKind:
    """Like :func:`classify_spec`, but an http(s) URL that names no known extension is probed.

    The probe is one GET whose headers are read and whose body is not; a URL that cannot be
    probed (refused, an error status, a timeout) keeps today's path: a network stream,
    reopened with backoff. Prefix ``ytdl:`` to send a URL to yt-dlp regardless.

    Raises:
        SourceError: The spec is empty or names an unknown URL scheme.
    """
    kind = classify_spec(spec)
    url = spec.strip()
    if kind is not SourceKind.NETWORK or urlsplit(url).scheme.lower() not in ("http", "https"):
        return kind
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=probe_timeout_s) as response:
            content_type = response.headers.get("Content-Type", "")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        logger.debug("cannot probe %s (%s): read as a network stream", redact_url(url), exc)
        return kind
    found = kind_from_content_type(content_type)
    logger.debug("%s answers %r: %s", redact_url(url), content_type, found.value)
    return found


@dataclass(frozen=True)
class Playlist:
    """What capture needs to know of an HLS playlist.

    Attributes:
        has_end: A media playlist with ``#EXT-X-ENDLIST`` (or of type VOD): a recording.
        variants: The URIs of a master playlist's renditions, as written (maybe relative);
            empty for a media playlist.
    """

    has_end: bool
    variants: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Playlist:
        """Read a playlist's tags.

        >>> Playlist.parse("#EXTM3U\n#EXTINF:1,\na.ts\n#EXT-X-ENDLIST\n")
        Playlist(has_end=True, variants=())
        >>> Playlist.parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/index.m3u8\n")
        Playlist(has_end=False, variants=('low/index.m3u8',))

        Raises:
            ValueError: The text is not an HLS playlist.
        """
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines or not lines[0].startswith("#EXTM3U"):
            raise ValueError("not an HLS playlist (no #EXTM3U)")
        variants = [
            uri
            for tag, uri in zip(lines, lines[1:], strict=False)
            if tag.startswith("#EXT-X-STREAM-INF") and not uri.startswith("#")
        ]
        has_end = "#EXT-X-ENDLIST" in lines or "#EXT-X-PLAYLIST-TYPE:VOD" in lines
        return cls(has_end=has_end, variants=tuple(variants))


def hls_has_end(url: str, *, timeout_s: float) -> bool:
    """Whether the HLS playlist at ``url`` is a recording (for a master playlist: its first
    rendition, the one FFmpeg reads).

    Raises:
        SourceError: The playlist cannot be fetched or is not one.
    """
    for _ in range(2):  # a master playlist, then one of its media playlists
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                text = response.read(_MAX_PLAYLIST_BYTES).decode("utf-8", "replace")
            playlist = Playlist.parse(text)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise SourceError(f"cannot read the playlist {redact_url(url)}: {exc}") from exc
        if not playlist.variants:
            return playlist.has_end
        url = urljoin(url, playlist.variants[0])
    return False  # a master playlist of master playlists: not a recording we can vouch for


class OpenCVSource:
    """A webcam, network stream, HLS playlist or video file read with ``cv2.VideoCapture``.

    Args:
        spec: Webcam index or device, URL, or file path.
        kind: Kind of source; derived from ``spec`` when omitted.
        open_timeout_s: Limit on opening a network stream (FFmpeg backend).
        read_timeout_s: Limit on one read of a network stream (FFmpeg backend).
            OpenCV may retry internally, so a silent stream can take a few times
            this long to fail; the capture watchdog covers the rest.

    An HLS playlist is fetched once at :meth:`open` to tell a recording (it has an end) from
    a live stream: its properties say which.
    """

    def __init__(
        self,
        spec: str,
        *,
        kind: SourceKind | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.spec = spec
        self._kind = kind or classify_spec(spec)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._props: SourceProperties | None = None

    @property
    def kind(self) -> SourceKind:
        return self._kind

    def open(self) -> SourceProperties:
        is_live = self._kind.is_live
        if self._kind is SourceKind.HLS:
            is_live = not hls_has_end(self.spec, timeout_s=self.open_timeout_s)
        cap = self._open_capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self._kind.value} source {redact_url(self.spec)}")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width <= 0 or height <= 0:
            cap.release()
            raise SourceError(f"source {redact_url(self.spec)} reports no frame size")
        fps = cap.get(cv2.CAP_PROP_FPS)
        # Live streams report garbage counts (negative or huge); trust files only.
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self._kind is SourceKind.FILE else 0
        self._cap = cap
        self._props = SourceProperties(
            width=width,
            height=height,
            fps=fps if 0 < fps < 1000 else None,
            is_live=is_live,
            total_frames=count if count > 0 else None,
        )
        return self._props

    def _open_capture(self) -> cv2.VideoCapture:
        if self._kind is SourceKind.WEBCAM:
            match = _DEVICE.match(self.spec)
            index = int(match.group(1)) if match else int(self.spec)
            return cv2.VideoCapture(index)
        if self._kind in (SourceKind.NETWORK, SourceKind.HLS):
            # Without these an unreachable or silent stream blocks open()/read() for OpenCV's
            # defaults (LIBAVFORMAT_INTERRUPT_{OPEN,READ}_DEFAULT_TIMEOUT_MS: 30 s each).
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.read_timeout_s * 1000),
            ]
            return cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params)
        if "://" not in self.spec and not os.path.isfile(self.spec):
            raise SourceError(f"video file not found: {self.spec}")
        return cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG)

    def read(self) -> RawFrame | None:
        if self._cap is None:
            raise SourceError("read() before open()")
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        position = None
        if self._kind is SourceKind.FILE:
            # After read() the FFmpeg backend reports the pts of the frame just decoded.
            position = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return RawFrame(image=image, position_s=position)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """Images from a directory, a glob pattern or a single file, in sorted name order.

    Args:
        spec: Directory, glob (``frames/*.png``) or image path.
        fps: Frame rate assigned to the sequence; it gives each image a position
            and paces ``realtime`` playback.
    """

    def __init__(self, spec: str, *, fps: float = 10.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.spec = spec
        self.fps = fps
        self._paths: list[str] = []
        self._next = 0

    @property
    def kind(self) -> SourceKind:
        return SourceKind.FOLDER

    @staticmethod
    def list_images(spec: str) -> list[str]:
        """Return the sorted image paths that ``spec`` names."""
        if os.path.isdir(spec):
            candidates: Sequence[str] = [os.path.join(spec, name) for name in os.listdir(spec)]
        elif _GLOB_CHARS.search(spec):
            candidates = glob.glob(spec)
        else:
            candidates = [spec] if os.path.isfile(spec) else []
        return sorted(
            p
            for p in candidates
            if Path(p).suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(p)
        )

    def open(self) -> SourceProperties:
        self._paths = self.list_images(self.spec)
        self._next = 0
        if not self._paths:
            raise SourceError(f"no images found at {self.spec}")
        first = cv2.imread(self._paths[0], cv2.IMREAD_COLOR)
        if first is None:
            raise SourceError(f"cannot decode image {self._paths[0]}")
        height, width = first.shape[:2]
        return SourceProperties(
            width=width, height=height, fps=self.fps, is_live=False, total_frames=len(self._paths)
        )

    def read(self) -> RawFrame | None:
        while self._next < len(self._paths):
            index = self._next
            self._next += 1
            image = cv2.imread(self._paths[index], cv2.IMREAD_COLOR)
            if image is None:
                logger.warning("skipping unreadable image %s", self._paths[index])
                continue
            return RawFrame(image=image, position_s=index / self.fps)
        return None

    def close(self) -> None:
        self._paths = []


def create_source(
    spec: str,
    *,
    kind: SourceKind | None = None,
    open_timeout_s: float = 10.0,
    read_timeout_s: float = 5.0,
    folder_fps: float = 10.0,
    page_format: str | None = None,
    min_size: tuple[int, int] | None = None,
) -> FrameSource:
    """Build the right unopened :class:`FrameSource` for ``spec``.

    This is the default source factory; bind options with :func:`functools.partial`.

    Args:
        spec: What to read (see :func:`classify_spec`).
        kind: What ``spec`` is, when already known; by default :func:`recognise_spec`, which
            may probe an http(s) URL (bind the kind to probe once rather than per reconnect).
        open_timeout_s, read_timeout_s: Limits on network streams (see :class:`OpenCVSource`).
        folder_fps: Frame rate given to image folders.
        page_format: yt-dlp format selector for web pages; ``None`` picks the smallest
            rendition at or above ``min_size``.
        min_size: ``(width, height)`` frames are classified at (the model's input).

    Raises:
        SourceError: The spec is not recognised (PageSupportUnavailableError: it is a page
            and yt-dlp is not installed).
    """
    kind = kind or recognise_spec(spec, probe_timeout_s=min(open_timeout_s, _PROBE_TIMEOUT_S))
    if kind is SourceKind.FOLDER:
        return ImageFolderSource(spec, fps=folder_fps)
    if kind is SourceKind.PAGE:
        # Here, not at the top: page_sources builds on this module (and imports yt-dlp lazily).
        from camera_tools.page_sources import PageSource

        return PageSource(
            spec,
            page_format=page_format,
            min_size=min_size,
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
        )
    return OpenCVSource(
        spec, kind=kind, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s
    )
