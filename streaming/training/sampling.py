"""Frames from annotated videos: which moments to take, and reading them in one pass per video."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camera_tools.camera_errors import SourceError
from camera_tools.sources import OpenCVSource, SourceKind
from streaming.training.training_values import Annotation, Problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingPolicy:
    """How frames are taken from annotated videos.

    Attributes:
        fps: frames taken per second of video.
        cut_margin_s: seconds skipped after each segment start and before each end, where a
            hand-placed or detected cut is least certain (fades, the window's lag).
        min_change: mean absolute grey-level difference (0-255, on a 32x32 thumbnail) below
            which a frame repeats the previous one of its segment and is skipped.
        block_s: a long video is split into blocks of this many seconds; all frames of one
            block go to the same side of the validation split.
    """

    fps: float = 2.0
    cut_margin_s: float = 0.5
    min_change: float = 2.0
    block_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.fps > 0 and self.cut_margin_s >= 0 and self.min_change >= 0):
            raise ValueError("sample fps must be > 0; cut margin and min change >= 0")
        if self.block_s <= 0:
            raise ValueError("block seconds must be > 0")

    def times(self, row: Annotation) -> list[float]:
        """Sample times inside one segment, the margins left out."""
        start, end = row.start_s + self.cut_margin_s, row.end_s - self.cut_margin_s
        if end < start:
            return []
        count = math.floor((end - start) * self.fps + 1e-9) + 1
        return [start + i / self.fps for i in range(count)]

    def group(self, video: Path, time_s: float) -> str:
        return f"{video}#{int(time_s // self.block_s)}"


class RepeatFilter:
    """Says whether a frame is (nearly) the same picture as the last one it let through."""

    def __init__(self, min_change: float) -> None:
        self._min_change = min_change
        self._last: np.ndarray | None = None

    def is_repeat(self, image_bgr: np.ndarray) -> bool:
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
        thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._last is not None and float(np.abs(thumb - self._last).mean()) < self._min_change:
            return True
        self._last = thumb
        return False


@dataclass(frozen=True)
class VideoFrame:
    row: Annotation
    time_s: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoSample:
    frames: list[VideoFrame]
    problems: list[Problem]
    repeats: int


def sample_video(
    video: Path,
    rows: Sequence[Annotation],
    policy: SamplingPolicy,
    convert: Callable[[np.ndarray], np.ndarray],
) -> VideoSample:
    """Read ``video`` once and keep the frames the rows ask for, each passed through ``convert``.

    ``convert`` gets the BGR frame as decoded and returns what is kept (the resized model
    input), so full-size frames never pile up in memory.
    """
    wanted = sorted((t, i) for i, row in enumerate(rows) for t in policy.times(row))
    problems = [
        Problem(
            row.where,
            f"segment shorter than twice the cut margin ({policy.cut_margin_s:g} s): no frames",
        )
        for row in rows
        if not policy.times(row)
    ]
    source = OpenCVSource(str(video), kind=SourceKind.FILE)
    try:
        props = source.open()
    except SourceError as exc:
        return VideoSample([], [Problem(row.where, f"{exc}: row skipped") for row in rows], 0)
    half_frame = 0.5 / (props.fps or 25.0)
    filters = [RepeatFilter(policy.min_change) for _ in rows]
    frames: list[VideoFrame] = []
    repeats, next_wanted, last_position = 0, 0, 0.0
    try:
        while next_wanted < len(wanted):
            raw = source.read()
            if raw is None:
                break
            position = raw.position_s or 0.0
            last_position = position
            while next_wanted < len(wanted) and wanted[next_wanted][0] <= position + half_frame:
                time_s, index = wanted[next_wanted]
                next_wanted += 1
                if filters[index].is_repeat(raw.image):
                    repeats += 1
                    continue
                frames.append(VideoFrame(rows[index], time_s, convert(raw.image)))
    except cv2.error as exc:
        problems.append(Problem(str(video), f"decoding failed at {last_position:.2f} s: {exc}"))
    missed = sorted({wanted[i][1] for i in range(next_wanted, len(wanted))})
    for index in missed:
        problems.append(
            Problem(
                rows[index].where,
                f"{video.name} ends at {last_position:.2f} s, before this segment's frames "
                f"(up to {rows[index].end_s:g} s): those frames skipped",
            )
        )
    source.close()
    return VideoSample(frames, problems, repeats)
