"""Values shared by the trainer's modules: reported problems and frames in memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Problem:
    """Something in the inputs that was skipped; ``where`` is ``path`` or ``path:line``."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class ImageItem:
    """One labelled image file. ``group`` keeps related images on one side of the split."""

    path: Path
    label: str
    group: str


@dataclass(frozen=True)
class Annotation:
    """One row of a segments file: ``video`` shows ``label`` from ``start_s`` to ``end_s``."""

    file: Path
    line: int
    video: Path
    label: str
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not self.end_s > self.start_s:
            raise ValueError(f"end ({self.end_s}) must be after start ({self.start_s})")

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class FrameSet:
    """Labelled frames at the model's input size, as the server would feed them.

    Attributes:
        images: uint8 RGB ``(n, height, width, 3)``, already resized like the server resizes.
        labels: label of each frame.
        groups: frames sharing a group (one video or time block, one folder of frames) are
            never split between training and validation.
        origins: where each frame came from (``path`` or ``video@12.50s``), for reports.
    """

    images: np.ndarray
    labels: tuple[str, ...]
    groups: tuple[str, ...]
    origins: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.labels) == len(self.groups) == len(self.origins) == n):
            raise ValueError("images, labels, groups and origins must have the same length")
        if self.images.dtype != np.uint8 or (n and self.images.ndim != 4):
            raise ValueError("images must be uint8 (n, height, width, channels)")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> Counter[str]:
        return Counter(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> FrameSet:
        order = [int(i) for i in indices]
        return FrameSet(
            self.images[order] if order else self.images[:0],
            tuple(self.labels[i] for i in order),
            tuple(self.groups[i] for i in order),
            tuple(self.origins[i] for i in order),
        )

    @staticmethod
    def empty(height: int, width: int) -> FrameSet:
        return FrameSet(np.zeros((0, height, width, 3), np.uint8), (), (), ())

    @staticmethod
    def concat(parts: Sequence[FrameSet], height: int, width: int) -> FrameSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            return FrameSet.empty(height, width)
        return FrameSet(
            np.concatenate([p.images for p in parts]),
            tuple(x for p in parts for x in p.labels),
            tuple(x for p in parts for x in p.groups),
            tuple(x for p in parts for x in p.origins),
        )
