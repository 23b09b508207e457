"""``stream-classify bench``: parse, run the suite, write BENCHMARKS.md and the JSON."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from streaming.server.serve_config import ServerConfig

logger = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def _attack_kinds(text: str) -> tuple[str, ...]:
    """``--attacks KINDS``: comma-separated attack kinds, ``all`` (the default) for every one."""
    from streaming.bench.attacks import ATTACKS

    if text == "all":
        return ()
    kinds = tuple(kind.strip() for kind in text.split(","))
    unknown = [kind for kind in kinds if kind not in ATTACKS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown attack {', '.join(map(repr, unknown))}: one of {', '.join(ATTACKS)}"
        )
    return kinds


def _rows(
    listed: str, attacks: bool, all_rows: tuple[int, ...], attack_row: int
) -> tuple[int, ...]:
    """``--rows`` and ``--attacks``: neither means every row; ``--attacks`` alone, row 9 only."""
    rows = tuple(int(r) for r in listed.split(",")) if listed else ()
    if attacks:
        return (*rows, attack_row)
    return rows or all_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model to serve (default: MobileNetV3Small, weights=None, 224x224)",
    )
    parser.add_argument(
        "--input-size",
        type=_size,
        default=None,
        help="WIDTHxHEIGHT for models without a fixed size",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=d.max_batch,
        help="server --max-batch (default %(default)s)",
    )
    parser.add_argument(
        "--max-delay-ms",
        type=float,
        default=d.max_delay_ms,
        help="server --max-delay-ms (default %(default)s)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="measured seconds per load run (default 10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="warm-up seconds per load run (default 3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: checks that everything works"
    )
    parser.add_argument(
        "--soak", action="store_true", help="add 10 minutes at 80%% load for memory growth"
    )
    parser.add_argument(
        "--soak-minutes", type=float, default=10.0, help="length of --soak (default %(default)s)"
    )
    parser.add_argument(
        "--rows",
        default="",
        help="only these rows, e.g. 1,2,3 (row 1 always runs; 11: start-up time; 12: TensorFlow against ONNX Runtime; 13: a model swap under load; 14: watch --collect; 15: CPU per frame of serve --processes 1 and 2)",
    )
    parser.add_argument(
        "--attacks",
        nargs="?",
        type=_attack_kinds,
        const=(),
        default=None,
        metavar="KINDS",
        help="the attack rows (row 9: an 8-stream load beside each attack); alone, or added to "
        "--rows; KINDS picks some, comma-separated (default: all)",
    )
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="skip the whole-machine perf profile of rows 3, 5 @32 and 7 (used when perf works)",
    )
    parser.add_argument(
        "--markdown", type=Path, default=Path("BENCHMARKS.md"), help="(default %(default)s)"
    )
    parser.add_argument(
        "--json", type=Path, default=Path("BENCHMARKS.json"), help="(default %(default)s)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("bench-output"),
        help="logs of every process (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from streaming.bench import bench_report
    from streaming.bench.processes import BenchError
    from streaming.bench.settings import ALL_ROWS, ATTACK_ROW, BenchSettings
    from streaming.bench.suite import Suite

    settings = BenchSettings(
        model_path=args.model,
        input_size=args.input_size,
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        work_dir=args.work_dir,
        rows=_rows(args.rows, args.attacks is not None, ALL_ROWS, ATTACK_ROW),
        attack_kinds=args.attacks or (),
        profile=not args.no_profile,
    )
    if args.quick:
        settings = replace(
            settings,
            warmup_s=0.5,
            duration_s=1.5,
            model_seconds=0.3,
            drain_s=3.0,
            model_batches=(1, 8),
            classify_images=40,
            startup_runs=2,
            processes_streams=8,
        )
    settings = replace(
        settings,
        warmup_s=settings.warmup_s if args.warmup is None else args.warmup,
        duration_s=settings.duration_s if args.duration is None else args.duration,
        soak_s=args.soak_minutes * 60 if args.soak else 0.0,
    )
    # Overload runs twice as long as the others: a growing p99 needs time to show.
    settings = replace(settings, overload_s=2 * settings.duration_s)
    busy = bench_report.busy_processes()
    if busy:
        logger.warning("other processes are using the CPU; numbers will be low: %s", busy)
    try:
        result = Suite(settings).execute()
    except BenchError as exc:
        logger.error("benchmark failed: %s", exc)
        return 1
    targets = bench_report.evaluate(result)
    machine = bench_report.machine_info(busy)
    bench_report.write(result, targets, machine, args.markdown, args.json)
    print(bench_report.markdown_block(result, targets, machine))
    print(f"\nwrote {args.markdown} and {args.json} (logs in {args.work_dir})")
    return 0 if not result.failures else 1
