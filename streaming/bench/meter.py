"""Counting answers inside a measuring window, shared by the load generator and the echo client."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from streaming.bench.results import Latency, LoadResult


@dataclass
class Meter:
    """Answers received between ``start_ns`` and ``end_ns`` (perf_counter clock).

    Frames answered during warm-up or while draining are left out, so the rate is that of the
    steady state, and the latencies are those of frames answered in it.
    """

    start_ns: int
    end_ns: int
    slices: int = 5
    sent: int = 0
    answered: int = 0
    dropped: int = 0
    errors: int = 0
    lost_lossless: int = 0
    skipped: int = 0  # LIVE frames the source skipped because sending was still blocked
    batch_sum: int = 0
    # Model time and count of the batches answered: each frame adds its share of its batch.
    model_ns: float = 0.0
    batches: float = 0.0
    _received_ns: list[int] = field(default_factory=list)
    _latencies_ns: list[int] = field(default_factory=list)

    def on_sent(self, at_ns: int) -> None:
        if self.start_ns <= at_ns < self.end_ns:
            self.sent += 1

    def on_answer(self, latency_ns: int, batch_size: int = 0, inference_us: int = 0) -> None:
        now = time.perf_counter_ns()
        if self.start_ns <= now < self.end_ns:
            self.answered += 1
            self.batch_sum += batch_size
            if batch_size:
                self.model_ns += inference_us * 1000 / batch_size
                self.batches += 1 / batch_size
            self._received_ns.append(now)
            self._latencies_ns.append(latency_ns)

    def result(self, streams: int) -> LoadResult:
        duration = (self.end_ns - self.start_ns) / 1e9
        received = np.asarray(self._received_ns, dtype=np.int64)
        latencies = np.asarray(self._latencies_ns, dtype=np.int64)
        by_slice: list[float] = []
        counts: list[int] = []
        if len(received):
            edges = np.linspace(self.start_ns, self.end_ns, self.slices + 1)
            for low, high in zip(edges[:-1], edges[1:], strict=True):
                part = latencies[(received >= low) & (received < high)]
                by_slice.append(float(np.percentile(part, 99) / 1e6) if len(part) else 0.0)
                counts.append(len(part))
        return LoadResult(
            streams=streams,
            duration_s=duration,
            sent=self.sent,
            answered=self.answered,
            fps=self.answered / duration,
            offered_fps=self.sent / duration,
            latency=Latency.from_ns(latencies),
            dropped=self.dropped,
            errors=self.errors,
            lost_lossless=self.lost_lossless,
            skipped=self.skipped,
            mean_batch=self.batch_sum / self.answered if self.answered else 0.0,
            model_busy=self.model_ns / (self.end_ns - self.start_ns),
            mean_model_ms=self.model_ns / 1e6 / self.batches if self.batches else 0.0,
            p99_by_slice_ms=tuple(by_slice),
            answered_by_slice=tuple(counts),
            window_start_ns=self.start_ns,  # perf_counter is CLOCK_MONOTONIC: comparable across processes
        )
