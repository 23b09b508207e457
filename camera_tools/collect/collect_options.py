"""What ``watch --collect`` keeps and its bounds, as a typed value: :class:`CollectOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CollectOptions:
    """Where collected frames go, which frames are worth a person's look, and the bounds.

    Attributes:
        directory: The collect folder (``frames/``, ``collected.jsonl``, ``labels.txt``); an
            existing one is continued.
        below: A frame whose own score is below this is kept as ``low_confidence``.
        max_per_min: Frames kept per source per minute of the source's time (media time for
            files, time since the source started for live ones).
        max_mb: Size cap of the folder in MB (10^6 bytes); the oldest images are deleted first.
        sample: Chance that any frame is kept as ``sample`` (every label sampled at the same
            rate), so that confident mistakes turn up too; 0 samples nothing.
        seed: Seed of the sample's random draws; ``None`` draws a new one per run.
        max_side: Long side of a kept image in pixels (larger frames are scaled down).
        jpeg_quality: JPEG quality of kept images, 1-100.
        duplicate_bits: Two frames whose 64-bit image hashes differ in at most this many bits
            (and whose mean colours are close) are near-duplicates: the second is skipped.
        duplicate_history: How many of a source's last kept frames a new one is compared with.
        queue_size: Kept frames waiting to be encoded and written; beyond it, frames are
            dropped (and counted) rather than slow down watching.
    """

    directory: Path
    below: float = 0.6
    max_per_min: int = 30
    max_mb: float = 500.0
    sample: float = 0.005
    seed: int | None = None
    max_side: int = 640
    jpeg_quality: int = 90
    duplicate_bits: int = 6
    duplicate_history: int = 32
    queue_size: int = 16

    def __post_init__(self) -> None:
        if not 0.0 <= self.below <= 1.0:
            raise ValueError(f"collect below must be in [0, 1], got {self.below}")
        if self.max_per_min < 1:
            raise ValueError(f"collect max per minute must be >= 1, got {self.max_per_min}")
        if not self.max_mb > 0:
            raise ValueError(f"collect max MB must be > 0, got {self.max_mb}")
        if not 0.0 <= self.sample <= 1.0:
            raise ValueError(f"collect sample must be in [0, 1], got {self.sample}")
        if self.max_side < 16:
            raise ValueError(f"collect max side must be >= 16, got {self.max_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"collect JPEG quality must be in [1, 100], got {self.jpeg_quality}")
        if not 0 <= self.duplicate_bits <= 64:
            raise ValueError(f"duplicate bits must be in [0, 64], got {self.duplicate_bits}")
        if self.duplicate_history < 0 or self.queue_size < 1:
            raise ValueError("duplicate history must be >= 0 and queue size >= 1")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1_000_000)
