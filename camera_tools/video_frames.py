"""Values produced by frame sources."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SourceProperties:
    """What is known about a source once it is open.

    Attributes:
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Nominal frame rate; ``None`` when the source does not say.
        is_live: True for cameras and network streams (newest frame wins),
            False for files and image folders (read in order).
        total_frames: Frame count when known (files, folders), else ``None``.
    """

    width: int
    height: int
    fps: float | None
    is_live: bool
    total_frames: int | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive or None, got {self.fps}")
        if self.total_frames is not None and self.total_frames < 0:
            raise ValueError(f"total_frames must be >= 0 or None, got {self.total_frames}")


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured frame.

    Attributes:
        image: BGR ``uint8`` array of shape (height, width, 3).
        index: 0-based index of the frame in its source (counts every frame
            read, including skipped ones, and keeps counting across reconnects).
        captured_at: Wall-clock capture time (``time.time()``).
        source_id: Identifier of the source, with credentials redacted.
        position_s: Position in the file in seconds, when known.
    """

    image: np.ndarray
    index: int
    captured_at: float
    source_id: str
    position_s: float | None = None

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(
                f"image must be a BGR uint8 array (H, W, 3), got {self.image.dtype} {self.image.shape}"
            )
        if self.index < 0:
            raise ValueError(f"index must be >= 0, got {self.index}")
