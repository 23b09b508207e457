"""Camera side of Stream Classification: frame sources, capture, reconnects, overlay, sinks.

Typical use::

    from camera_tools import CaptureOptions, open_source

    with open_source("rtsp://cam/live", options=CaptureOptions(max_fps=5)) as stream:
        for frame in stream:
            ...
"""

from __future__ import annotations

from camera_tools.backoff import NO_RETRY, Backoff, BackoffPolicy
from camera_tools.camera_errors import (
    CameraToolsError,
    DisplayUnavailableError,
    SinkError,
    SourceError,
)
from camera_tools.capture import (
    CaptureOptions,
    CaptureStats,
    RateLimiter,
    VideoStream,
    open_source,
)
from camera_tools.overlay import draw_overlay
from camera_tools.redact import redact_url
from camera_tools.sources import (
    FrameSource,
    ImageFolderSource,
    OpenCVSource,
    RawFrame,
    SourceFactory,
    SourceKind,
    classify_spec,
    create_source,
)
from camera_tools.states import SourceEvent, SourceState
from camera_tools.video_frames import Frame, SourceProperties

__all__ = [
    "NO_RETRY",
    "Backoff",
    "BackoffPolicy",
    "CameraToolsError",
    "CaptureOptions",
    "CaptureStats",
    "DisplayUnavailableError",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "OpenCVSource",
    "RateLimiter",
    "RawFrame",
    "SinkError",
    "SourceError",
    "SourceEvent",
    "SourceFactory",
    "SourceKind",
    "SourceProperties",
    "SourceState",
    "VideoStream",
    "classify_spec",
    "create_source",
    "draw_overlay",
    "open_source",
    "redact_url",
]
