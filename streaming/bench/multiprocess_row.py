"""Row 15: CPU seconds per answered frame of the whole ``serve --processes N`` tree, N = 1 and 2.

Each N gets a fresh server (the model under test, ``--max-batch``) and the same closed-loop
LOSSLESS load of RAW frames, spread over several connections (the kernel places connections on
processes, not streams). The CPU is that of the process tree (the supervisor and every server
process, from ``/proc`` through psutil) from just before the load generator starts to just after
it ends, over every frame answered in that time (warm-up and drain included on both sides). Its
inverse is the frames/s one core answers, which projects a many-core host's capacity: cores ×
frames per core-second, as long as the cores are not shared with anything else.

Alone: ``python -m streaming.bench.multiprocess_row --quick`` (the embedded model) prints the
rows as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from streaming.bench.harness import Harness, RowRecorder, ServerUnderTest
from streaming.bench.processes import BenchError
from streaming.bench.results import Row
from streaming.bench.settings import BenchSettings

STREAMS_PER_CONNECTION = 2  # 32 streams on 16 connections: both processes get a share


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants so far."""
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess as exc:
        raise BenchError(f"the server (pid {pid}) is gone") from exc
    total = 0.0
    for member in members:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue  # ended between the listing and now
        total += times.user + times.system
    return total


def processes_row(h: Harness, server: ServerUnderTest, processes: int) -> Row:
    """One N: answered frames/s, and the tree's CPU seconds per answered frame."""
    streams = h.s.processes_streams
    spec = h.spec(server.address, streams, streams_per_connection=STREAMS_PER_CONNECTION)
    before = tree_cpu_seconds(server.process.pid)
    run = h.load(spec, f"processes-{processes}")
    cpu_s = tree_cpu_seconds(server.process.pid) - before
    answered = run.result.answered_total
    if answered <= 0:
        raise BenchError(f"--processes {processes}: no frame answered")
    cpu_per_frame = cpu_s / answered
    per_core = 1.0 / cpu_per_frame if cpu_per_frame > 0 else 0.0
    return Row(
        key=f"processes_{processes}",
        name=f"15. `serve --processes {processes}`, CPU per frame",
        setup=f"{streams} LOSSLESS streams, RAW, {STREAMS_PER_CONNECTION} per connection; "
        "CPU of the supervisor and every server process",
        fps=run.result.fps,
        latency=run.result.latency,
        extra={
            "processes": processes,
            "tree_cpu_s": round(cpu_s, 3),
            "answered_total": answered,
            "cpu_ms_per_frame": round(1000 * cpu_per_frame, 4),
            "frames_per_core_s": round(per_core, 1),
            "loadgen_cores": run.extra.get("loadgen_cores"),
        },
        note=f"{1000 * cpu_per_frame:.2f} CPU ms per answered frame: {per_core:.0f} frames/s "
        "per core",
    )


def processes_rows(h: Harness, record: RowRecorder) -> None:
    """Row 15 for every N in the settings, each on a server of its own."""
    for processes in h.s.process_counts:
        flags = (*h.model_flags(), "--max-batch", str(h.s.max_batch))
        with h.serving(f"processes-{processes}", *flags, "--processes", str(processes)) as server:
            record(f"row 15 (--processes {processes})", processes_row, h, server, processes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run per N")
    args = parser.parse_args()
    from streaming import default_model
    from streaming.bench.harness import ModelUnderTest

    rows: list[Row] = []
    failures: list[str] = []

    def record(name: str, measure: Callable[..., Row], *measure_args: Any) -> None:
        try:
            rows.append(measure(*measure_args))
        except BenchError as exc:
            failures.append(f"{name}: {exc}")

    with tempfile.TemporaryDirectory(prefix="sc-processes-") as scratch:
        settings = BenchSettings(work_dir=Path(scratch), profile=False)
        if args.quick:
            settings = BenchSettings(
                work_dir=Path(scratch),
                profile=False,
                warmup_s=0.5,
                duration_s=1.5,
                drain_s=3.0,
                processes_streams=8,
            )
        h = Harness(settings, Path(scratch))
        h.model = ModelUnderTest(default_model.MODEL_PATH, (96, 96), 4)
        processes_rows(h, record)
    for row in rows:
        print(json.dumps(row.to_json()), flush=True)  # noqa: T201 - the output is this JSON
    for failure in failures:
        print(failure, file=sys.stderr, flush=True)  # noqa: T201
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
