"""Counters of the batching pipeline since start."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from streaming.server.temporal_cue import CueEffect


@dataclass
class BatcherStats:
    """Counters since start; each is written by one stage and read from the event loop."""

    batches: int = 0
    frames: int = 0
    dropped: int = 0  # LIVE frames dropped unanswered, for any reason
    dropped_by_budget: int = 0  # of which because the server-wide memory budget was full
    frame_errors: int = 0
    failed_batches: int = 0
    # frames whose best label the temporal cue changed, by what it did
    cue_changes: dict[CueEffect, int] = field(default_factory=lambda: dict.fromkeys(CueEffect, 0))
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def mean_batch_size(self) -> float:
        return self.frames / self.batches if self.batches else 0.0
