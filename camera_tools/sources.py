"""Frame sources: webcams, network streams, video files and image folders.

A :class:`FrameSource` is a plain blocking reader with no threads and no policy;
:mod:`camera_tools.capture` runs one in a thread and adds buffering, pacing and
reconnects. :func:`create_source` picks the implementation for a spec string; it
is the default ``source_factory`` and can be replaced (tests use fakes).
"""

from __future__ import annotations

import enum
import glob
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

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
_DEVICE = re.compile(r"^/dev/video(\d+)$")
_GLOB_CHARS = re.compile(r"[*?\[]")


class SourceKind(enum.Enum):
    """What a spec string points at; decides buffering and reconnect behaviour."""

    WEBCAM = "webcam"
    NETWORK = "network"
    FILE = "file"
    FOLDER = "folder"

    @property
    def is_live(self) -> bool:
        """Live sources keep only the newest frame; the others are read in order."""
        return self in (SourceKind.WEBCAM, SourceKind.NETWORK)

    @property
    def reconnects(self) -> bool:
        """Only network streams are reopened; a file's end is final."""
        return self is SourceKind.NETWORK


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

    Args:
        spec: ``0`` or ``/dev/video0`` (webcam), ``rtsp://...``/``http(s)://...``
            (network stream; an http(s) URL of a video file counts as a file),
            a directory or glob of images, or a video file path.

    Raises:
        SourceError: The spec is empty or names an unknown URL scheme.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError("empty source spec")
    if spec.isdigit() or _DEVICE.match(spec):
        return SourceKind.WEBCAM
    if "://" in spec:
        parts = urlsplit(spec)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return classify_spec(parts.path)
        if scheme not in NETWORK_SCHEMES:
            raise SourceError(f"unsupported URL scheme {scheme!r} in {redact_url(spec)}")
        if scheme in ("http", "https") and Path(parts.path).suffix.lower() in VIDEO_EXTENSIONS:
            return SourceKind.FILE
        return SourceKind.NETWORK
    if os.path.isdir(spec) or _GLOB_CHARS.search(spec):
        return SourceKind.FOLDER
    if Path(spec).suffix.lower() in IMAGE_EXTENSIONS:
        return SourceKind.FOLDER  # a single image is a one-frame folder
    return SourceKind.FILE


class OpenCVSource:
    """A webcam, network stream or video file read with ``cv2.VideoCapture``.

    Args:
        spec: Webcam index or device, URL, or file path.
        kind: Kind of source; derived from ``spec`` when omitted.
        open_timeout_s: Limit on opening a network stream (FFmpeg backend).
        read_timeout_s: Limit on one read of a network stream (FFmpeg backend).
            OpenCV may retry internally, so a silent stream can take a few times
            this long to fail; the capture watchdog covers the rest.
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
            is_live=self._kind.is_live,
            total_frames=count if count > 0 else None,
        )
        return self._props

    def _open_capture(self) -> cv2.VideoCapture:
        if self._kind is SourceKind.WEBCAM:
            match = _DEVICE.match(self.spec)
            index = int(match.group(1)) if match else int(self.spec)
            return cv2.VideoCapture(index)
        if self._kind is SourceKind.NETWORK:
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
    open_timeout_s: float = 10.0,
    read_timeout_s: float = 5.0,
    folder_fps: float = 10.0,
) -> FrameSource:
    """Build the right unopened :class:`FrameSource` for ``spec``.

    This is the default source factory; bind options with :func:`functools.partial`.

    Raises:
        SourceError: The spec is not recognised.
    """
    kind = classify_spec(spec)
    if kind is SourceKind.FOLDER:
        return ImageFolderSource(spec, fps=folder_fps)
    return OpenCVSource(
        spec, kind=kind, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s
    )
