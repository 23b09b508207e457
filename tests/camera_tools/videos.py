"""Small real video files for the camera and watch tests, encoded with OpenCV's FFmpeg backend.

Imported as ``tests.camera_tools.videos`` (pytest's importlib mode, see ``tests/strategies.py``):
test modules cannot import each other or the conftest, so the one encoder lives here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

T = TypeVar("T")

# BGR colours the tiny test model labels by name.
BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def write_video(path: Path, images: Iterable[np.ndarray], fps: float) -> Path:
    """Encode ``images`` (BGR, all the size of the first) as an mp4v file at ``fps``."""
    frames = iter(images)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: a video needs at least one frame")
    height, width = first.shape[:2]  # the writer needs the size before the first frame
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height)
    )
    assert writer.isOpened(), "mp4v writer unavailable"
    for image in itertools.chain([first], frames):
        writer.write(image)
    writer.release()
    return path


def solid(label: str, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """One frame of ``size`` (width, height) in the colour named ``label``."""
    width, height = size
    return np.full((height, width, 3), BGR[label], np.uint8)


def colour_frames(labels: Iterable[str], size: tuple[int, int] = (64, 48)) -> Iterator[np.ndarray]:
    """One solid frame per label, in order."""
    return (solid(label, size) for label in labels)


def for_seconds(stretches: Iterable[tuple[T, float]], fps: float) -> Iterator[T]:
    """Each item repeated for its number of seconds at ``fps`` (rounded to whole frames)."""
    for item, seconds in stretches:
        yield from itertools.repeat(item, round(seconds * fps))
