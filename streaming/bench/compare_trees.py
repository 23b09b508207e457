"""Two source trees (two commits) served side by side, load runs alternating between them.

This machine drifts by ±20–30% over minutes, so a row measured on one commit and then, minutes
later, on another says little about the change. Here both servers are up at once (an idle one
costs nothing measurable) and short load runs alternate between them, ABBA, so slow and fast
minutes fall on both; the result is the after/before ratio of every pair and their median.

    python -m streaming.bench.compare_trees --before ../old --after . --row 5 --rounds 6

A tree is a checkout with its protos generated (``make proto`` or the ``grpc_tools.protoc`` line
of the Makefile); both run on this interpreter, so their dependencies are the same. The load
generator is this tree's. Rows: ``3`` (``--null-model``, 16 streams, the server's own work),
``5`` (the model under test, 32 streams of RAW frames; MobileNetV3Small at 224² unless ``--model``)
and ``jpeg`` (row 5 with 640×480 JPEG frames the server decodes). ``--before-env``/``--after-env``
compare one tree under two environments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streaming.bench.harness import closed_loop_in_flight, deadline_s, load_output
from streaming.bench.loadgen import LoadSpec
from streaming.bench.model_limit import DEFAULT_INPUT, build_default_model
from streaming.bench.processes import (
    ChildProcess,
    cpu_ticks,
    free_port,
    python_module,
    run_json,
)

logger = logging.getLogger(__name__)

NUM_CLASSES = 1000


@dataclass(frozen=True)
class RowShape:
    """A load of the full bench: its streams, and what goes on the wire."""

    streams: int
    null_model: bool = False
    wire: str = "raw"  # raw: pre-resized to the model input; jpeg: 640x480 q90, server decodes


ROWS = {
    "3": RowShape(16, null_model=True),
    "5": RowShape(32),
    "jpeg": RowShape(32, wire="jpeg"),  # row 5's JPEG line
}


@dataclass(frozen=True)
class Pair:
    """One ABBA half: the two trees' frames/s measured next to each other."""

    before_fps: float
    after_fps: float

    @property
    def ratio(self) -> float:
        return self.after_fps / self.before_fps if self.before_fps else float("nan")


def server_flags(row: str, model: Path | None, max_batch: int, max_delay_ms: float) -> list[str]:
    width, height = DEFAULT_INPUT
    common = ["--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms)]
    if ROWS[row].null_model:
        return ["--null-model", str(NUM_CLASSES), "--input-size", f"{width}x{height}", *common]
    if model is None:
        raise ValueError(f"row {row} serves a model: give its path")
    return ["-la", str(model), *common]


@dataclass(frozen=True)
class Server:
    address: str
    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds of the whole process so far (every thread)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        return cpu_ticks(stat) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(tree: Path, flags: list[str], log: Path, env: dict[str, str]) -> Iterator[Server]:
    """A ``serve`` process whose code is ``tree``'s, with ``env`` added to its environment."""
    port = free_port()
    args = python_module("streaming", "--log-level", "WARNING", "serve", "-ip", f"127.0.0.1:{port}")
    child = ChildProcess(
        [*args, *flags], "address:", log, cwd=tree, extra_env=env, sample_rss=False
    )
    with child:
        yield Server(f"127.0.0.1:{port}", child.pid)


def measure(server: Server, shape: RowShape, max_batch: int, seconds: float, log: Path) -> float:
    """Frames/s of one closed-loop LOSSLESS run (the bench's in-flight rule); the server's CPU
    per answered frame is logged beside it (warm-up and drain included in both counts)."""
    address = server.address
    spec = LoadSpec(
        address=address,
        streams=shape.streams,
        wire=shape.wire,
        source_size=(640, 480),
        in_flight=closed_loop_in_flight(max_batch, shape.streams),
        warmup_s=2.0,
        duration_s=seconds,
        drain_s=10.0,
    )
    cpu_before = server.cpu_s()
    data = run_json(
        python_module("streaming.bench.loadgen", spec.to_json()),
        deadline_s(spec.warmup_s + spec.duration_s + spec.drain_s),
        log,
    )
    cpu_s = server.cpu_s() - cpu_before
    result, _ = load_output(data)
    if result.lost_lossless or result.errors:
        raise RuntimeError(f"LOSSLESS frames lost or failed: see {log}")
    logger.info(
        "%s: %.1f frames/s, p50 %.0f ms, p99 %.0f ms, mean batch %.1f, model busy %.0f%%, "
        "%.1f ms/call, server CPU %.2f ms per frame sent",
        address,
        result.fps,
        result.latency.p50_ms if result.latency else float("nan"),
        result.latency.p99_ms if result.latency else float("nan"),
        result.mean_batch or 0.0,
        100 * (result.model_busy or 0.0),
        result.mean_model_ms or 0.0,
        1000 * cpu_s / max(1, result.sent_total),
    )
    return result.fps


@dataclass(frozen=True)
class Side:
    """One of the two servers compared: its source tree and what its environment adds."""

    tree: Path
    env: dict[str, str] = field(default_factory=dict)


def compare(
    before: Side,
    after: Side,
    row: str,
    rounds: int,
    seconds: float,
    model: Path | None,
    work: Path,
    max_batch: int = 32,
    max_delay_ms: float = 5.0,
) -> list[Pair]:
    """``rounds`` ABBA rounds of ``row``'s load, A on ``before``'s server, B on ``after``'s."""
    flags = server_flags(row, model, max_batch, max_delay_ms)
    shape = ROWS[row]
    log = work / "loadgen.log"
    with ExitStack() as stack:
        a = stack.enter_context(serving(before.tree, flags, work / "server-before.log", before.env))
        b = stack.enter_context(serving(after.tree, flags, work / "server-after.log", after.env))
        return _abba(
            lambda s: measure(a, shape, max_batch, s, log),
            lambda s: measure(b, shape, max_batch, s, log),
            rounds,
            seconds,
        )


def compare_loads(
    side: Side,
    rows: tuple[str, str],
    rounds: int,
    seconds: float,
    model: Path | None,
    work: Path,
    max_batch: int = 32,
) -> list[Pair]:
    """One server, two rows' loads alternating ABBA (A the first row, B the second): a ratio of
    two rows that is not the machine's drift (e.g. ``("5", "jpeg")``: JPEG against RAW)."""
    flags = {tuple(server_flags(row, model, max_batch, 5.0)) for row in rows}
    if len(flags) != 1:
        raise ValueError(f"rows {rows} need different servers: compare them with compare()")
    log = work / "loadgen.log"
    with serving(side.tree, list(flags.pop()), work / "server.log", side.env) as server:
        return _abba(
            lambda s: measure(server, ROWS[rows[0]], max_batch, s, log),
            lambda s: measure(server, ROWS[rows[1]], max_batch, s, log),
            rounds,
            seconds,
        )


def _abba(
    run_a: Callable[[float], float], run_b: Callable[[float], float], rounds: int, seconds: float
) -> list[Pair]:
    """One unmeasured run each (first calls, caches, duration estimates), then ``rounds`` ABBA
    rounds; each gives two pairs (AB, then BA)."""
    for run in (run_a, run_b):
        run(min(3.0, seconds))
    pairs: list[Pair] = []
    for i in range(rounds):
        fps_a1 = run_a(seconds)
        fps_b1 = run_b(seconds)
        fps_b2 = run_b(seconds)
        fps_a2 = run_a(seconds)
        pairs += [Pair(fps_a1, fps_b1), Pair(fps_a2, fps_b2)]
        logger.info("round %d: A %.1f, %.1f; B %.1f, %.1f", i + 1, fps_a1, fps_a2, fps_b1, fps_b2)
    return pairs


def summary(row: str, pairs: list[Pair]) -> dict[str, object]:
    ratios = [p.ratio for p in pairs]
    return {
        "row": row,
        "before_fps": [round(p.before_fps, 1) for p in pairs],
        "after_fps": [round(p.after_fps, 1) for p in pairs],
        "ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "min_ratio": round(min(ratios), 3),
        "max_ratio": round(max(ratios), 3),
        "after_higher": sum(r > 1 for r in ratios),
        "pairs": len(ratios),
    }


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` as a mapping."""
    env = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="the older source tree")
    parser.add_argument("--after", type=Path, default=Path("."), help="the newer source tree")
    for side in ("before", "after"):
        parser.add_argument(
            f"--{side}-env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"added to the {side} server's environment (the same tree twice: a setting)",
        )
    parser.add_argument("--row", choices=sorted(ROWS), action="append")
    parser.add_argument(
        "--loads",
        metavar="A,B",
        help="one server of --after's tree, two rows' loads alternating (e.g. 5,jpeg: the "
        "ratio is B/A); --before is not served",
    )
    parser.add_argument("--rounds", type=int, default=4, help="ABBA rounds (2 pairs each)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--model", type=Path, help="row 5's model (default MobileNetV3Small 224²)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="compare-trees-") as scratch:
        work = Path(scratch)
        model = args.model
        loads = tuple(args.loads.split(",")) if args.loads else ()
        if loads and (len(loads) != 2 or not set(loads) <= set(ROWS)):
            parser.error(f"--loads takes two of {sorted(ROWS)}, e.g. 5,jpeg")
        if not loads and args.before is None:
            parser.error("--before is required (unless --loads)")
        rows = list(loads) or args.row or ["3", "5"]
        if model is None and any(not ROWS[row].null_model for row in rows):
            model = build_default_model(work / "model.keras")
        if loads:
            after = Side(args.after.resolve(), parse_env(args.after_env))
            pairs = compare_loads(
                after, (loads[0], loads[1]), args.rounds, args.seconds, model, work
            )
            print(json.dumps(summary(args.loads, pairs)), flush=True)  # noqa: T201 - the output
            return 0
        for row in rows:
            pairs = compare(
                Side(args.before.resolve(), parse_env(args.before_env)),
                Side(args.after.resolve(), parse_env(args.after_env)),
                row,
                args.rounds,
                args.seconds,
                model,
                work,
            )
            print(json.dumps(summary(row, pairs)), flush=True)  # noqa: T201 - the output is this JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
