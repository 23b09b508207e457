"""Counters of each watched source, the end-of-run summary and its table.

:class:`SourceTally` is the mutable side, kept by one source's loop; :class:`SourceCounters` is
an immutable snapshot of it (published to observers while the run goes on), and
:class:`SourceSummary` is the last snapshot plus how the source ended.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass

import numpy as np

from camera_tools.capture import CaptureStats

_LATENCY_SAMPLES = 10_000  # percentiles over the most recent answers: bounded memory on long runs


class SourceOutcome(enum.Enum):
    """How a source's run ended."""

    ENDED = "ended"  # a file or folder was classified to its end
    STOPPED = "stopped"  # Ctrl+C, --duration, or Watcher.stop()
    FAILED = "failed"  # the source or the server gave up

    @property
    def failed(self) -> bool:
        return self is SourceOutcome.FAILED


@dataclass(frozen=True)
class SourceCounters:
    """Counters of one source at one moment.

    Attributes:
        source: Source id (credentials redacted).
        frames_read: Frames read from the source (including skipped ones).
        classified: Frames answered with a label.
        errors: Frames answered with an error.
        dropped: Live frames never classified: replaced by a newer one before sending,
            dropped by the server, or in flight when the server was lost.
        mean_fps: Answers per second, first send to last answer.
        latency_p50_ms, latency_p95_ms: Send-to-answer latency percentiles.
        source_reconnects: Reopen attempts of the source.
        server_reconnects: Times this source's stream was reopened after losing the server.
    """

    source: str
    frames_read: int
    classified: int
    errors: int
    dropped: int
    mean_fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    source_reconnects: int
    server_reconnects: int


@dataclass(frozen=True)
class SourceSummary(SourceCounters):
    """The last counters of one source, with how its run ended.

    Attributes:
        outcome: ENDED, STOPPED or FAILED.
        reason: Why it failed (empty otherwise).
    """

    outcome: SourceOutcome
    reason: str


@dataclass(frozen=True)
class WatchReport:
    """What :meth:`~camera_tools.watch.Watcher.run` returns."""

    sources: tuple[SourceSummary, ...]
    elapsed_s: float

    @property
    def failed(self) -> bool:
        return any(s.outcome.failed for s in self.sources)


class SourceTally:
    """What one source's loop counts; written by its threads, read for snapshots.

    Plain counters without a lock: each is written by one thread, and a snapshot that is one
    answer behind is good enough for reporting.
    """

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        self.classified = 0
        self.errors = 0
        self.dropped = 0
        self.server_reconnects = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_SAMPLES)
        self.first_send: float | None = None
        self.last_answer: float | None = None

    def sent(self, at: float) -> None:
        if self.first_send is None:
            self.first_send = at

    def answered(self, at: float, latency_s: float, *, ok: bool) -> None:
        self.latencies.append(latency_s)
        self.last_answer = at
        if ok:
            self.classified += 1
        else:
            self.errors += 1

    def snapshot(self, capture: CaptureStats) -> SourceCounters:
        """The counters now, completed with the capture's own."""
        lat = np.array(self.latencies) * 1000.0
        span = (
            (self.last_answer - self.first_send)
            if self.first_send is not None and self.last_answer is not None
            else 0.0
        )
        answered = self.classified + self.errors
        return SourceCounters(
            source=self.source_id,
            frames_read=capture.frames_read,
            classified=self.classified,
            errors=self.errors,
            dropped=self.dropped + capture.frames_overwritten,
            mean_fps=answered / span if span > 0 else 0.0,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else None,
            source_reconnects=capture.reconnects,
            server_reconnects=self.server_reconnects,
        )

    def summary(self, capture: CaptureStats, outcome: SourceOutcome, reason: str) -> SourceSummary:
        counters = self.snapshot(capture)
        return SourceSummary(**vars(counters), outcome=outcome, reason=reason)


def format_summary(report: WatchReport) -> str:
    """The end-of-run table, one row per source, then one line per failure reason."""
    header = (
        "source",
        "status",
        "read",
        "classified",
        "dropped",
        "fps",
        "p50 ms",
        "p95 ms",
        "reconnects",
    )
    rows = [header, *(_summary_row(s) for s in report.sources)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [s for s in report.sources if s.reason]
    lines.extend(f"{s.source}: {s.reason}" for s in failed)
    return "\n".join(lines)


def _summary_row(s: SourceSummary) -> tuple[str, ...]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    classified = str(s.classified) + (f" (+{s.errors} errors)" if s.errors else "")
    reconnects = f"{s.source_reconnects}+{s.server_reconnects}"
    return (
        s.source,
        s.outcome.value,
        str(s.frames_read),
        classified,
        str(s.dropped),
        f"{s.mean_fps:.1f}",
        ms(s.latency_p50_ms),
        ms(s.latency_p95_ms),
        reconnects,
    )
