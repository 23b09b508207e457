"""What a benchmark run is asked to do, and the record it fills in row by row."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming.bench.results import Row

ATTACK_ROW = 9  # the group of attack rows: a well-behaved load beside each attack
WEB_VIEW_ROW = 10  # watch on 8 files with its web view open in readers, against none
STARTUP_ROW = 11  # seconds from `serve` to health SERVING, embedded model
ONNX_ROW = 12  # the model under test served from TensorFlow and from ONNX Runtime
SWAP_ROW = 13  # a new model version published under the load of row 5 @32
COLLECT_ROW = 14  # watch on 8 files with --collect, against without
PROCESSES_ROW = 15  # CPU per answered frame of `serve --processes N`, N = 1 and 2
ALL_ROWS = (
    *range(1, 9), ATTACK_ROW, WEB_VIEW_ROW, STARTUP_ROW, ONNX_ROW, SWAP_ROW, COLLECT_ROW,
    PROCESSES_ROW,
)  # fmt: skip


@dataclass(frozen=True)
class BenchSettings:
    """What ``stream-classify bench`` was asked to do."""

    model_path: Path | None = None  # None: build MobileNetV3Small (weights=None) at 224x224
    input_size: tuple[int, int] | None = None
    max_batch: int = 32
    max_delay_ms: float = 5.0
    warmup_s: float = 3.0
    duration_s: float = 10.0
    overload_s: float = 20.0
    model_seconds: float = 3.0
    transport_streams: int = 16
    server_streams: tuple[int, ...] = (1, 8, 32, 64)
    one_call_streams: int = 32
    latency_streams: int = 32
    latency_loads: tuple[float, ...] = (0.5, 0.8)
    overload_factor: float = 2.0
    soak_s: float = 0.0
    drain_s: float = 10.0
    model_batches: tuple[int, ...] = (1, 8, 16, 32, 64)
    classify_images: int = 500
    attack_streams: int = 8  # the well-behaved load measured beside each attack
    attack_kinds: tuple[str, ...] = ()  # the attacks of row 9 (`--attacks KINDS`); () = all
    startup_runs: int = 3  # fresh `serve` processes timed to SERVING (the median is reported)
    process_counts: tuple[int, ...] = (1, 2)  # row 13: `serve --processes N` for each N
    processes_streams: int = 32  # row 13's load
    profile: bool = True  # whole-machine perf profile of rows 3, 5 @32 and 7 when perf works
    rows: tuple[int, ...] = ALL_ROWS
    work_dir: Path = Path("bench-output")


@dataclass
class BenchRun:
    """Everything measured, filled in row by row; failures are recorded, not raised."""

    settings: BenchSettings
    model: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)
