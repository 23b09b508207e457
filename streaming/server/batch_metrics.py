"""What the batcher tells the Prometheus metrics per answered batch, and the load gauges it reads.

Histograms (queue wait, latency, batch size, model call) are observed per batch on the event loop;
drop counts are carried over from the scheduler's counters; the load gauges (busy share, frames
and bytes held) are read when Prometheus scrapes, so they cost nothing per frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from streaming.server.answers import Answers
from streaming.server.batch_stats import BatcherStats
from streaming.server.scheduler import TakenBatch
from streaming.server.server_metrics import DropReason, FailReason, ServerMetrics
from streaming.server.server_values import StatusCode
from streaming.server.temporal_cue import CueEffect

# The busy share is the model's share of the last 5 to 10 seconds of wall time.
_BUSY_WINDOW_NS = 5_000_000_000


class BatchMetrics:
    """Feeds one server's ``ServerMetrics`` from its batcher."""

    def __init__(
        self,
        metrics: ServerMetrics,
        stats: BatcherStats,
        clock: Callable[[], int],
        *,
        held_frames: Callable[[], int],
        held_bytes: Callable[[], int],
        frame_budget: int,
        memory_budget: int,
        decodes_starved: Callable[[], int] = lambda: 0,
    ) -> None:
        self._metrics = metrics
        self._stats = stats
        self._clock = clock
        self._drops_reported = 0
        self._budget_drops_reported = 0
        self._cue_reported = dict.fromkeys(CueEffect, 0)
        self._decodes_starved = decodes_starved
        self._starved_reported = 0
        self._busy_ns = 0  # model time of every answered batch so far
        now = clock()
        # (wall, busy) at the start of the previous and the current window; read by the scrape thread
        self._marks = ((now, 0), (now, 0))
        self._lock = threading.Lock()
        metrics.watch(
            busy=self._busy_share,
            held_frames=held_frames,
            held_bytes=held_bytes,
            frame_budget=frame_budget,
            memory_budget=memory_budget,
        )

    def batch_answered(self, batch: TakenBatch, answers: Answers) -> None:
        """Observe one answered batch (event loop, after its answers reached their streams)."""
        metrics, now = self._metrics, self._clock()
        items = batch.items
        model_s = answers[0][1].inference_us / 1e6 if answers else 0.0
        metrics.observe_batch(
            len(items),
            [(batch.taken_ns - item.arrived_ns) / 1e9 for item in items],
            model_s,
            [(now - item.arrived_ns) / 1e9 for item in items if not item.stream.closed],
        )
        for stream, result in answers:
            if stream.closed:
                continue  # its answer was never sent
            metrics.frames_answered(stream.settings.delivery)
            if result.error is not None:
                bad = result.error.code == StatusCode.INVALID_ARGUMENT
                metrics.frame_failed(FailReason.BAD_FRAME if bad else FailReason.MODEL_ERROR)
        with self._lock:
            self._busy_ns += int(model_s * 1e9)
            if now - self._marks[1][0] >= _BUSY_WINDOW_NS:
                self._marks = (self._marks[1], (now, self._busy_ns))
        self.report_drops()

    def report_drops(self) -> None:
        """Carry the scheduler's drop counts (and the temporal cue's changes, and the decodes
        idle decoders left too long) over to the counters (they only grow)."""
        stats = self._stats
        starved = self._decodes_starved()
        if starved != self._starved_reported:
            self._metrics.decodes_starved(starved - self._starved_reported)
            self._starved_reported = starved
        for effect, total in stats.cue_changes.items():
            changed = total - self._cue_reported[effect]
            if changed:
                self._metrics.cue_changes(effect, changed)
                self._cue_reported[effect] = total
        budget = stats.dropped_by_budget - self._budget_drops_reported
        replaced = stats.dropped - self._drops_reported - budget
        if budget:
            self._metrics.frame_dropped(DropReason.BUDGET, budget)
        if replaced:
            self._metrics.frame_dropped(DropReason.LIVE_REPLACED, replaced)
        self._drops_reported = stats.dropped
        self._budget_drops_reported = stats.dropped_by_budget

    def _busy_share(self) -> float:
        with self._lock:
            (start, busy_then), busy_now = self._marks[0], self._busy_ns
        elapsed = self._clock() - start
        return (busy_now - busy_then) / elapsed if elapsed > 0 else 0.0
