"""What every row uses: the model under test, servers started as child processes, load runs.

A row is a function of a :class:`Harness` that returns a :class:`Row`; the suite runs the rows in
order and records their failures.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from streaming.bench.loadgen import LoadSpec
from streaming.bench.processes import ChildProcess, free_port, python_module, run_json
from streaming.bench.profile import CpuProfiler, perf_works
from streaming.bench.results import LoadResult, Row
from streaming.bench.settings import BenchSettings

logger = logging.getLogger(__name__)

_PROFILED = ("null", "server-32", "overload")  # load runs whose missed targets need a profile


@dataclass(frozen=True)
class ModelUnderTest:
    """The model every server row serves, as row 1 found it."""

    path: Path
    input_size: tuple[int, int]
    num_classes: int


@dataclass(frozen=True)
class ServerUnderTest:
    """A ``stream-classify serve`` child process and the address it listens on."""

    process: ChildProcess
    address: str


@dataclass(frozen=True)
class LoadRun:
    """One load-generator run: its answers, plus what was measured around it (CPU, profile)."""

    result: LoadResult
    extra: dict[str, Any]


class RowRecorder(Protocol):
    """Measures a row with ``measure(*args)`` and adds it to the table, or records its failure."""

    def __call__(self, name: str, measure: Callable[..., Row], *args: Any) -> None: ...


def deadline_s(measured_s: float) -> float:
    return measured_s + 60.0  # start-up, connect and drain on top of the measured window


def closed_loop_in_flight(max_batch: int, streams: int) -> int:
    """Unanswered frames per stream of a closed loop: enough for four batches (one running,
    one prepared, one filling, one on the wire), at least two per stream: the server never
    starves, and no stream buffers seconds of frames, so latencies mean something."""
    return max(2, -(-4 * max_batch // streams))


def load_output(data: dict[str, Any]) -> tuple[LoadResult, dict[str, Any]]:
    """A load generator's JSON: its answers, and what it says about the run itself."""
    extra = {k: data.pop(k) for k in ("payload_bytes", "loadgen_cores")}
    return LoadResult.from_json(data), extra


class Harness:
    """Settings, folders and the server the next load run measures, shared by the rows."""

    def __init__(self, settings: BenchSettings, scratch: Path) -> None:
        self.s = settings
        self.scratch = scratch  # files that live as long as the run (the built model, images)
        self.log_dir = settings.work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._model: ModelUnderTest | None = None
        self._current: ChildProcess | None = None  # the server the next load run measures
        self._perf_works = settings.profile and perf_works()
        if settings.profile and not self._perf_works:
            logger.info("perf is not available (or not allowed): rows are not profiled")

    @property
    def model(self) -> ModelUnderTest:
        if self._model is None:
            raise RuntimeError("the model limit (row 1) runs before any other row")
        return self._model

    @model.setter
    def model(self, model: ModelUnderTest) -> None:
        self._model = model

    # -- servers -------------------------------------------------------------------------

    def model_flags(self, path: Path | None = None) -> list[str]:
        """``-la`` and ``--input-size`` of the model under test (or of ``path``, the same
        model in another format)."""
        flags = ["-la", str(path or self.model.path)]
        if self.s.input_size:
            flags += ["--input-size", "x".join(map(str, self.s.input_size))]
        return flags

    @contextlib.contextmanager
    def serving(
        self, tag: str, *flags: str, log_level: str = "WARNING"
    ) -> Iterator[ServerUnderTest]:
        """A server with ``flags``, measured by the load runs inside the block; stopped after it.

        Its log is ``log_dir/server-<tag>.log``.
        """
        port = free_port()
        args = python_module(
            "streaming",
            "--log-level",
            log_level,
            "serve",
            "-ip",
            f"127.0.0.1:{port}",
            "--max-delay-ms",
            str(self.s.max_delay_ms),
            *flags,
        )
        with self.serving_child(tag, args, "address:", port) as server:
            yield server

    @contextlib.contextmanager
    def serving_child(
        self, tag: str, args: list[str], ready_text: str, port: int
    ) -> Iterator[ServerUnderTest]:
        """Any server process (``args``, listening on ``port`` of loopback once it printed
        ``ready_text``) as the one the load runs inside the block measure."""
        with ChildProcess(args, ready_text, self.log_dir / f"server-{tag}.log") as process:
            self._current = process
            try:
                yield ServerUnderTest(process, f"127.0.0.1:{port}")
            finally:
                self._current = None

    # -- load runs -----------------------------------------------------------------------

    def spec(self, address: str, streams: int, max_batch: int | None = None, **kw: Any) -> LoadSpec:
        batch = self.s.max_batch if max_batch is None else max_batch
        kw.setdefault("in_flight", closed_loop_in_flight(batch, streams))
        kw.setdefault("warmup_s", self.s.warmup_s)
        kw.setdefault("duration_s", self.s.duration_s)
        kw.setdefault("drain_s", self.s.drain_s)
        return LoadSpec(address=address, streams=streams, **kw)

    def load(self, spec: LoadSpec, tag: str) -> LoadRun:
        """Run the load generator against the current server; its RSS and CPU are tagged ``tag``."""
        server = self._current
        if server is not None and server.rss is not None:
            server.rss.phase = tag
        profiler = self._profiler(tag, spec)
        with profiler or contextlib.nullcontext():
            data = run_json(
                python_module("streaming.bench.loadgen", spec.to_json()),
                deadline_s(spec.warmup_s + spec.duration_s + spec.drain_s),
                self.log_dir / f"loadgen-{tag}.log",
            )
        if server is not None and server.rss is not None:
            server.rss.phase = f"{tag} done"  # the server's CPU is that of the run, not after it
        result, extra = load_output(data)
        if profiler is not None:
            shares = profiler.result()
            if shares is not None:
                cores = os.cpu_count() or 1
                extra["cpu_profile_cores"] = {role: share * cores for role, share in shares.items()}
        if server is not None and server.rss is not None:
            extra["server_cores"] = server.rss.cores(tag)
        logger.info(
            "%s: %.1f frames/s answered (offered %.1f), p99 %s ms, extra %s",
            tag,
            result.fps,
            result.offered_fps,
            f"{result.latency.p99_ms:.1f}" if result.latency else "-",
            extra,
        )
        return LoadRun(result, extra)

    def _profiler(self, tag: str, spec: LoadSpec) -> CpuProfiler | None:
        """A perf profile in the middle of the measured window of the rows the analysis needs."""
        if tag not in _PROFILED or not self._perf_works or self._current is None:
            return None
        seconds = min(3.0, spec.duration_s / 2)
        delay = spec.warmup_s + (spec.duration_s - seconds) / 2 + 0.5  # + the client's start-up
        folder = self.s.work_dir / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        return CpuProfiler(folder / f"{tag}.perf", self._current.pid, delay, seconds)


def load_row(key: str, name: str, setup: str, run: LoadRun, **extra: Any) -> Row:
    """The table row of a load run (or of the echo client's run)."""
    result = run.result
    return Row(
        key=key,
        name=name,
        setup=setup,
        fps=result.fps,
        latency=result.latency,
        extra={
            "offered_fps": result.offered_fps,
            "mean_batch": result.mean_batch,
            "model_busy": result.model_busy,
            "mean_model_ms": result.mean_model_ms,
            "dropped": result.dropped,
            "errors": result.errors,
            "lost_lossless": result.lost_lossless,
            "sent": result.sent,
            "unanswered_after_drain": result.unanswered_after_drain,
            "skipped_at_source": result.skipped,
            "answered": result.answered,
            "p99_by_slice_ms": list(result.p99_by_slice_ms),
            **run.extra,
            **extra,
        },
    )
