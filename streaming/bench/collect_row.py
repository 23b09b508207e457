"""What ``watch --collect`` costs ``watch``: classification throughput with and without it.

One measurement: a server with the embedded model, then ``stream-classify watch`` on ``sources``
copies of one video file (the web-view row's moving synthetic clip, so frames differ and the
near-duplicate check does not hide the writing; LOSSLESS, as fast as the server answers) for
``duration_s``, in rounds that alternate *without* ``--collect`` and *with* it (default collect
settings, a fresh folder per round). Throughput is classified frames (the ``--csv`` rows) per
second of the run; the cost is ``1 - with / without``, from the best round of each kind (the
machine is shared: the best round is the one least disturbed by others).

Use from the suite (a server already running)::

    row = collect_row(CollectSpec(server="127.0.0.1:1234"), work_dir)

or alone, as a child process that starts its own server and prints one JSON line::

    python -m streaming.bench.collect_row --sources 8 --duration 20
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from streaming.bench.processes import BenchError, child_env
from streaming.bench.results import Row
from streaming.bench.web_view import (
    WatchABResult,
    WatchABSpec,
    alternate,
    classified_per_second,
    watch_argv,
    with_a_server,
)

logger = logging.getLogger(__name__)

CollectSpec = WatchABSpec


@dataclass(frozen=True)
class CollectResult(WatchABResult):
    kept: tuple[int, ...]  # frames collected per "with" round


def _run_watch(
    spec: CollectSpec, clip: Path, work_dir: Path, tag: str, collect: Path | None
) -> tuple[float, int]:
    """One ``watch`` run; (classified frames per second, frames collected)."""
    csv_path = work_dir / f"collect-{tag}.csv"
    argv = watch_argv(spec, clip, csv_path)
    if collect is not None:
        shutil.rmtree(collect, ignore_errors=True)
        argv += ["--collect", str(collect)]
    with (work_dir / f"collect-{tag}.log").open("wb") as log:
        try:
            done = subprocess.run(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=child_env(),
                timeout=spec.duration_s + 120,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"watch overran its deadline ({tag})") from exc
    if done.returncode != 0:
        raise BenchError(f"watch exited with {done.returncode} ({tag}; see its log)")
    kept = 0
    if collect is not None:
        with (collect / "collected.jsonl").open() as lines:
            kept = sum(1 for _ in lines)
    return classified_per_second(spec, csv_path), kept


def measure(spec: CollectSpec, work_dir: Path) -> CollectResult:
    """Alternate runs without and with ``--collect``; see the module docstring."""
    work_dir.mkdir(parents=True, exist_ok=True)
    clip = work_dir / "collect-clip.mp4"

    def run(round_: int, collect: bool) -> tuple[float, int]:
        if not collect:
            return _run_watch(spec, clip, work_dir, f"plain-{round_}", None)
        return _run_watch(
            spec, clip, work_dir, f"collect-{round_}", work_dir / f"collected-{round_}"
        )

    without, with_collect, kept = alternate(spec, clip, "--collect", run)
    return CollectResult(without, with_collect, tuple(kept))


def collect_row(spec: CollectSpec, work_dir: Path) -> Row:
    """The benchmark table's row: throughput with ``--collect``, and its cost."""
    result = measure(spec, work_dir)
    return Row(
        key="collect",
        name=f"watch, {spec.sources} files, --collect",
        setup=f"default collect settings vs none; {spec.rounds}x{spec.duration_s:g} s",
        fps=max(result.with_fps),
        extra={
            "fps_without": max(result.without_fps),
            "ratio": round(result.ratio, 3),
            "cost_pct": round(100 * result.cost, 1),
            "kept": list(result.kept),
        },
        note="target: cost < 5%",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.bench.collect_row")
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clip", type=float, default=120.0, help="clip length in seconds")
    parser.add_argument("--work-dir", type=Path, default=Path("bench-output"))
    parser.add_argument(
        "--server", default=None, help="a running server (default: start one, embedded model)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="collect: %(message)s")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    def run(server: str) -> CollectResult:
        spec = CollectSpec(server, args.sources, args.duration, args.rounds, args.clip)
        return measure(spec, args.work_dir)

    result = with_a_server(args.server, args.work_dir / "collect-server.log", run)
    print(json.dumps(result.to_json()), flush=True)  # noqa: T201 - the process's output is this JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
