"""Sinks for classified frames: CSV log, segments, video recorder, display window."""

from __future__ import annotations

from camera_tools.sinks.base import Classification, Sink, slugify
from camera_tools.sinks.csv_log import CSV_COLUMNS, CsvFrameLog
from camera_tools.sinks.display import DisplaySink, check_display
from camera_tools.sinks.recorder import VideoRecorder, derive_output_path
from camera_tools.sinks.segments import (
    SEGMENT_FIELDS,
    Segment,
    SegmentLog,
    SegmentTracker,
    SegmentWriter,
    read_segments,
)

__all__ = [
    "CSV_COLUMNS",
    "SEGMENT_FIELDS",
    "Classification",
    "CsvFrameLog",
    "DisplaySink",
    "Segment",
    "SegmentLog",
    "SegmentTracker",
    "SegmentWriter",
    "Sink",
    "VideoRecorder",
    "check_display",
    "derive_output_path",
    "read_segments",
    "slugify",
]
