"""Per-stream sliding window of probability vectors: one odd frame must not flip the label."""

from __future__ import annotations

import numpy as np


class SlidingWindow:
    """The mean of the last ``size`` probability vectors (fewer at the start).

    A ring buffer; the mean is recomputed from it each time rather than kept as a running sum,
    so error never accumulates over a stream that runs for days.
    """

    __slots__ = ("_buffer", "_count", "_next")

    def __init__(self, size: int, num_classes: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._buffer = np.zeros((size, num_classes), dtype=np.float32)
        self._count = 0
        self._next = 0

    @property
    def size(self) -> int:
        return len(self._buffer)

    def __len__(self) -> int:
        return self._count

    def add(self, probabilities: np.ndarray) -> np.ndarray:
        """Add one frame's probabilities and return the window mean (float32)."""
        self._buffer[self._next] = probabilities
        self._next = (self._next + 1) % len(self._buffer)
        self._count = min(self._count + 1, len(self._buffer))
        if self._count == 1:
            return self._buffer[self._next - 1].copy()
        # ndarray.mean's own bookkeeping costs as much as the sum itself at this size.
        total = np.add.reduce(self._buffer[: self._count], axis=0, dtype=np.float64)
        total /= self._count
        return total.astype(np.float32)
