"""Values the benchmark processes exchange (as JSON) and the report is built from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Frame latency percentiles in milliseconds (send to answer)."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    samples: int

    @classmethod
    def from_ns(cls, values: list[int] | np.ndarray) -> Latency | None:
        if len(values) == 0:
            return None
        ms = np.asarray(values, dtype=np.float64) / 1e6
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(ms.max()), int(len(ms)))


@dataclass(frozen=True)
class LoadResult:
    """What one load-generator (or echo-client) run measured inside its measuring window."""

    streams: int
    duration_s: float
    sent: int
    answered: int
    fps: float
    offered_fps: float
    latency: Latency | None
    dropped: int = 0
    errors: int = 0
    lost_lossless: int = 0  # LOSSLESS frames skipped in the answered sequence (a drop or reorder)
    skipped: int = 0  # LIVE frames skipped at the source while a send was blocked
    unanswered_after_drain: int = 0  # LOSSLESS frames still queued when the bounded drain ended
    mean_batch: float = 0.0
    model_busy: float = 0.0  # share of the window the model was running (summed over answers)
    mean_model_ms: float = 0.0  # mean duration of one model call
    # p99 of the latency over each successive slice of the window: shows whether it grows.
    p99_by_slice_ms: tuple[float, ...] = ()
    answered_by_slice: tuple[int, ...] = ()  # answers in each slice: shows a dip and its length
    window_start_ns: int = 0  # the window's start on the machine's monotonic clock
    # Over the whole run (warm-up and drain included), for the load beside an attack.
    sent_total: int = 0
    answered_total: int = 0  # answers without an error
    failed_streams: int = 0  # streams the server ended (LoadSpec.keep_going)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadResult:
        latency = data.get("latency")
        values = dict(data)
        values["latency"] = Latency(**latency) if latency else None
        values["p99_by_slice_ms"] = tuple(data.get("p99_by_slice_ms", ()))
        values["answered_by_slice"] = tuple(data.get("answered_by_slice", ()))
        return cls(**values)


@dataclass
class Row:
    """One line of the table."""

    key: str
    name: str
    setup: str
    fps: float | None = None
    latency: Latency | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """One target of the issue, evaluated on numbers of the same run."""

    name: str
    rule: str
    measured: str
    met: bool | None  # None: could not be evaluated (a row failed)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
