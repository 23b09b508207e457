"""The benchmark plan: every row of the table, run in order on this machine, each bounded in time."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from streaming.bench.echo import EchoSpec
from streaming.bench.loadgen import LoadSpec
from streaming.bench.processes import BenchError, ChildServer, free_port, python_module, run_json
from streaming.bench.profile import CpuProfiler, perf_works
from streaming.bench.results import Latency, LoadResult, Row

logger = logging.getLogger(__name__)

ALL_ROWS = (1, 2, 3, 4, 5, 6, 7, 8)
_PROFILED = ("null", "server-32", "overload")  # load runs whose missed targets need a profile


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


def _answer_bytes(num_classes: int) -> int:
    """Size of the ClassifyResponse the load generator gets, so the echo answers as many bytes.

    The load generator asks for no probability vector (like `watch`, `classify` and `sc_client`).
    """
    from streaming.convert import result_to_pb
    from streaming.values import FrameResult, ProbabilityFormat

    probs = np.full(num_classes, 1.0 / num_classes, np.float32)
    result = FrameResult(
        seq=123456,
        capture_time_us=time.time_ns() // 1000,
        dropped_frames=0,
        batch_size=32,
        queue_us=1234,
        inference_us=45678,
        label="class_123",
        score=0.5,
        probabilities=probs,
        frame_label="class_123",
        frame_score=0.5,
        top_k=(("class_123", 0.5),),
        window_frames=5,
    )
    return int(result_to_pb(result, ProbabilityFormat.NONE).ByteSize())


class Suite:
    def __init__(self, settings: BenchSettings) -> None:
        self.s = settings
        self.run = BenchRun(settings)
        self.log_dir = settings.work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="sc-bench-")
        self._current: ChildServer | None = None  # the server the next load run measures
        self.last_extra: dict[str, Any] = {}
        self._perf_works = settings.profile and perf_works()
        if settings.profile and not self._perf_works:
            logger.info("perf is not available (or not allowed): rows are not profiled")

    # -- helpers -------------------------------------------------------------------------

    def _deadline(self, spec_s: float) -> float:
        return spec_s + 60.0  # start-up, connect and drain on top of the measured window

    def _load(self, spec: LoadSpec, tag: str) -> LoadResult:
        server = self._current
        if server is not None and server.rss is not None:
            server.rss.phase = tag
        profiler = self._profiler(tag, spec)
        with profiler or contextlib.nullcontext():
            data = run_json(
                python_module("streaming.bench.loadgen", spec.to_json()),
                self._deadline(spec.warmup_s + spec.duration_s + spec.drain_s),
                self.log_dir / f"loadgen-{tag}.log",
            )
        if server is not None and server.rss is not None:
            server.rss.phase = f"{tag} done"  # the server's CPU is that of the run, not after it
        extra = {k: data.pop(k) for k in ("payload_bytes", "loadgen_cores")}
        if profiler is not None:
            shares = profiler.result()
            if shares is not None:
                cores = os.cpu_count() or 1
                extra["cpu_profile_cores"] = {role: share * cores for role, share in shares.items()}
        if server is not None and server.rss is not None:
            extra["server_cores"] = server.rss.cores(tag)
        self.last_extra = extra
        result = LoadResult.from_json(data)
        logger.info(
            "%s: %.1f frames/s answered (offered %.1f), p99 %s ms, extra %s",
            tag,
            result.fps,
            result.offered_fps,
            f"{result.latency.p99_ms:.1f}" if result.latency else "-",
            extra,
        )
        return result

    def _profiler(self, tag: str, spec: LoadSpec) -> CpuProfiler | None:
        """A perf profile in the middle of the measured window of the rows the analysis needs."""
        if tag not in _PROFILED or not self._perf_works or self._current is None:
            return None
        seconds = min(3.0, spec.duration_s / 2)
        delay = spec.warmup_s + (spec.duration_s - seconds) / 2 + 0.5  # + the client's start-up
        folder = self.s.work_dir / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        return CpuProfiler(folder / f"{tag}.perf", self._current.pid, delay, seconds)

    def _server(self, tag: str, *flags: str) -> tuple[ChildServer, str]:
        port = free_port()
        args = python_module(
            "streaming",
            "--log-level",
            "WARNING",
            "serve",
            "-ip",
            f"127.0.0.1:{port}",
            "--max-delay-ms",
            str(self.s.max_delay_ms),
            *flags,
        )
        return ChildServer(
            args, "address:", self.log_dir / f"server-{tag}.log"
        ), f"127.0.0.1:{port}"

    def _model_flags(self) -> list[str]:
        flags = ["-la", str(self.model_path)]
        if self.s.input_size:
            flags += ["--input-size", "x".join(map(str, self.s.input_size))]
        return flags

    def _spec(
        self, address: str, streams: int, max_batch: int | None = None, **kw: Any
    ) -> LoadSpec:
        # Closed loop with enough frames in flight for four batches (one running, one prepared,
        # one filling, one on the wire), at least two per stream: the server never starves,
        # and no stream buffers seconds of frames, so latencies mean something.
        batch = self.s.max_batch if max_batch is None else max_batch
        kw.setdefault("in_flight", max(2, -(-4 * batch // streams)))
        return LoadSpec(
            address=address,
            streams=streams,
            warmup_s=self.s.warmup_s,
            duration_s=self.s.duration_s,
            drain_s=self.s.drain_s,
            **kw,
        )

    def _attempt(self, name: str, fn: Any) -> None:
        try:
            fn()
        except BenchError as exc:
            logger.error("%s failed: %s", name, exc)
            self.run.failures.append(f"{name}: {exc}")

    def _row_from(self, key: str, name: str, setup: str, result: LoadResult, **extra: Any) -> Row:
        extra = {**self.last_extra, **extra}
        self.last_extra = {}
        lat = result.latency
        return Row(
            key=key,
            name=name,
            setup=setup,
            fps=result.fps,
            latency=lat,
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
                **extra,
            },
        )

    # -- rows ----------------------------------------------------------------------------

    def execute(self) -> BenchRun:
        t0 = time.monotonic()
        rows = set(self.s.rows)
        self._model_limit()  # always: every target is relative to it
        if 2 in rows:
            self._attempt("row 2", self._transport)
        if 3 in rows:
            self._attempt("row 3", self._null_server)
        if 4 in rows:
            self._attempt("row 4", self._one_call)
        if rows & {5, 6, 7, 8}:
            self._attempt("rows 5-8", lambda: self._server_rows(rows))
        self.run.elapsed_s = time.monotonic() - t0
        self._tmp.cleanup()
        return self.run

    def _model_limit(self) -> None:
        build = self.s.model_path is None
        self.model_path = self.s.model_path or Path(self._tmp.name) / "mobilenet_v3_small.keras"
        batches = sorted({*self.s.model_batches, self.s.max_batch})
        args = python_module(
            "streaming.bench.model_limit",
            "--model",
            str(self.model_path),
            "--batches",
            ",".join(map(str, batches)),
            "--seconds",
            str(self.s.model_seconds),
        )
        if build:
            args.append("--build")
        if self.s.input_size:
            args += ["--input-size", "x".join(map(str, self.s.input_size))]
        data = run_json(
            args,
            120 + 4 * len(batches) * self.s.model_seconds,
            self.log_dir / "model-limit.log",
        )
        self.run.model = data
        best = data["per_batch"][str(data["best_batch"])]
        self.input_size = tuple(data["input_size"])
        self.num_classes = int(data["num_classes"])
        self.run.rows.append(
            Row(
                key="model",
                name="1. Model limit",
                setup=f"{data['model_name']} in-process, batch {data['best_batch']} (best of {batches})",
                fps=best["fps"],
                latency=Latency(**best["latency"]),
                extra={
                    "per_batch_fps": {k: v["fps"] for k, v in data["per_batch"].items()},
                    "per_batch_ms": {k: v["batch_ms"] for k, v in data["per_batch"].items()},
                },
                note="latency = one model call of the best batch",
            )
        )

    def _transport(self) -> None:
        port = free_port()
        width, height = self.input_size
        answer = _answer_bytes(self.num_classes)
        server = ChildServer(
            python_module("streaming.bench.echo", "serve", str(port), str(answer)),
            "ready",
            self.log_dir / "echo-server.log",
        )
        spec = EchoSpec(
            address=f"127.0.0.1:{port}",
            streams=self.s.transport_streams,
            payload_bytes=width * height * 3,
            answer_bytes=answer,
            warmup_s=self.s.warmup_s,
            duration_s=self.s.duration_s,
        )
        with server:
            data = run_json(
                python_module("streaming.bench.echo", "load", spec.to_json()),
                self._deadline(spec.warmup_s + spec.duration_s + 15),
                self.log_dir / "echo-client.log",
            )
        data.pop("payload_bytes", None)
        result = LoadResult.from_json(data)
        self.run.rows.append(
            self._row_from(
                "transport",
                "2. Transport limit",
                f"grpc.aio bidi echo, {spec.streams} streams, {spec.payload_bytes} B up / {answer} B back",
                result,
            )
        )

    def _null_server(self) -> None:
        width, height = self.input_size
        streams = self.s.transport_streams
        server, address = self._server(
            "null",
            "--null-model",
            str(self.num_classes),
            "--input-size",
            f"{width}x{height}",
            "--max-batch",
            str(self.s.max_batch),
        )
        with server:
            self._current = server
            result = self._load(self._spec(address, streams), "null")
            self.run.rows.append(
                self._row_from(
                    "null",
                    "3. Server overhead",
                    f"--null-model {self.num_classes}, {streams} streams, RAW {width}x{height}, LOSSLESS",
                    result,
                )
            )
            # The client's own capacity, with no model competing for the two cores.
            self._attempt(
                "classify (no-op model)",
                lambda: self._classify_row(address, "classify_null", " (no-op model)"),
            )

    def _one_call(self) -> None:
        streams = self.s.one_call_streams
        server, address = self._server("batch1", *self._model_flags(), "--max-batch", "1")
        with server:
            self._current = server
            result = self._load(self._spec(address, streams, max_batch=1), "batch1")
        self.run.rows.append(
            self._row_from(
                "one_call",
                "4. One call per frame",
                f"--max-batch 1, {streams} streams, RAW, LOSSLESS",
                result,
            )
        )

    def _server_rows(self, rows: set[int]) -> None:
        server, address = self._server(
            "main", *self._model_flags(), "--max-batch", str(self.s.max_batch)
        )
        width, height = self.input_size
        with server:
            assert server.rss is not None
            self._current = server
            if rows & {5, 6, 7, 8}:
                for streams in self.s.server_streams:
                    self._attempt(
                        f"row 5 ({streams} streams)", lambda n=streams: self._server_row(address, n)
                    )
            if 5 in rows:
                self._attempt("row 5 (JPEG)", lambda: self._jpeg_row(address))
                self._attempt("row 5 (classify)", lambda: self._classify_row(address))
            base = self.run.row("server_32")
            if base is None or not base.fps:
                raise BenchError("row 5 at 32 streams is missing: rows 6 and 7 need its throughput")
            if 6 in rows:
                for share in self.s.latency_loads:
                    self._attempt(
                        f"row 6 ({share:.0%})",
                        lambda x=share: self._latency_row(address, base.fps * x, x),
                    )
            if 7 in rows:
                self._attempt(
                    "row 7", lambda: self._overload_row(address, base.fps * self.s.overload_factor)
                )
            if self.s.soak_s > 0:
                self._attempt(
                    "soak",
                    lambda: self._soak(address, base.fps * max(self.s.latency_loads), server),
                )
            self.run.memory["peak_rss_64_mib"] = (
                server.rss.peak(f"server-{max(self.s.server_streams)}") / 2**20
            )
            self.run.memory["peak_rss_all_mib"] = server.rss.peak() / 2**20
            self.run.memory["rss_by_phase_mib"] = {
                phase: server.rss.peak(phase) / 2**20
                for phase in dict.fromkeys(p for _, p, _ in server.rss.samples)
            }
        streams = max(self.s.server_streams)
        self.run.rows.append(
            Row(
                key="memory",
                name="8. Peak memory (RSS)",
                setup=f"server process during row 5 at {streams} streams",
                extra=dict(self.run.memory),
                note=f"{self.run.memory['peak_rss_64_mib']:.0f} MiB at {streams} streams",
            )
        )
        _ = (width, height)

    def _server_row(self, address: str, streams: int) -> None:
        result = self._load(self._spec(address, streams), f"server-{streams}")
        self.run.rows.append(
            self._row_from(
                f"server_{streams}",
                f"5. Server, {streams} stream{'s' if streams > 1 else ''}",
                f"--max-batch {self.s.max_batch}, RAW pre-resized, LOSSLESS",
                result,
            )
        )

    def _jpeg_row(self, address: str) -> None:
        streams = self.s.latency_streams
        result = self._load(
            self._spec(address, streams, wire="jpeg", source_size=(640, 480)), "jpeg"
        )
        self.run.rows.append(
            self._row_from(
                "server_jpeg",
                f"5. Server, {streams} streams JPEG",
                "640x480 JPEG q90, server decodes and resizes, LOSSLESS",
                result,
            )
        )

    def _classify_images(self) -> Path:
        import cv2

        folder = Path(self._tmp.name) / "classify-images"
        if folder.exists():
            return folder
        folder.mkdir()
        rng = np.random.default_rng(5)
        ramp = np.linspace(0, 255, 640, dtype=np.float32)
        for i in range(self.s.classify_images):
            image = np.empty((480, 640, 3), np.float32)
            image[:] = ramp[None, :, None]
            image += rng.normal(0, 25, (480, 640, 3)).astype(np.float32) + rng.integers(-60, 60, 3)
            cv2.imwrite(str(folder / f"img{i:04d}.jpg"), np.clip(image, 0, 255).astype(np.uint8))
        return folder

    def _classify_row(self, address: str, key: str = "classify", server: str = "") -> None:
        """`stream-classify classify` on a folder of 640x480 JPEGs: one LOSSLESS stream, end to end."""
        folder = self._classify_images()
        log_path = self.log_dir / f"{key}.log"
        args = python_module(
            "streaming", "classify", str(folder), "--server", address, "--format", "csv"
        )
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchError("classify overran its 300 s deadline") from exc
        log_path.write_text(done.stderr)
        match = re.search(
            r"classified (\d+) image\(s\) in ([\d.]+) s \(([\d.]+) images/s\)", done.stderr
        )
        if done.returncode != 0 or match is None:
            raise BenchError(f"classify failed with exit code {done.returncode} (log: {log_path})")
        rows = done.stdout.strip().splitlines()[1:]
        in_order = [line.split(",", 1)[0].rsplit("/", 1)[-1] for line in rows] == sorted(
            p.name for p in folder.iterdir()
        )
        self.run.rows.append(
            Row(
                key=key,
                name=f"5. `classify` command, 1 stream{server}",
                setup=f"{self.s.classify_images} JPEG 640x480 files: read, decode, resize, RAW, LOSSLESS",
                fps=float(match.group(3)),
                extra={
                    "images": int(match.group(1)),
                    "seconds": float(match.group(2)),
                    "in_order": in_order,
                },
                note=f"{len(rows)} results printed, in order: {in_order}",
            )
        )

    def _latency_row(self, address: str, rate: float, share: float) -> None:
        streams = self.s.latency_streams
        result = self._load(self._spec(address, streams, rate_fps=rate), f"latency-{share:g}")
        self.run.rows.append(
            self._row_from(
                f"latency_{int(share * 100)}",
                f"6. Steady load {share:.0%}",
                f"{streams} streams, {rate:.0f} frames/s offered in total, LOSSLESS",
                result,
                share=share,
            )
        )

    def _overload_row(self, address: str, rate: float) -> None:
        streams = self.s.latency_streams
        spec = replace(
            self._spec(address, streams, rate_fps=rate, delivery="live"),
            duration_s=self.s.overload_s,
        )
        result = self._load(spec, "overload")
        offered = max(result.sent, 1)
        self.run.rows.append(
            self._row_from(
                "overload",
                "7. Overload (LIVE)",
                f"{streams} LIVE streams, {rate:.0f} frames/s offered ({self.s.overload_factor:g}x row 5)",
                # Shares within the window (the server's dropped_frames counter spans the whole run).
                result,
                dropped_share=max(0.0, 1 - (result.answered + result.skipped) / offered),
                skipped_share=result.skipped / offered,
            )
        )

    def _soak(self, address: str, rate: float, server: ChildServer) -> None:
        streams = self.s.latency_streams
        spec = replace(
            self._spec(address, streams, rate_fps=rate), duration_s=self.s.soak_s, slices=10
        )
        result = self._load(spec, "soak")
        assert server.rss is not None
        series = server.rss.series("soak")
        t = np.array([s[0] for s in series]) - series[0][0]
        rss = np.array([s[1] for s in series], dtype=np.float64) / 2**20
        after = t > spec.warmup_s + 0.2 * spec.duration_s  # ignore ramp-up
        slope = float(np.polyfit(t[after] / 60, rss[after], 1)[0]) if after.sum() > 2 else 0.0
        # Lowest RSS in each third after ramp-up: a leak raises the floor, while a backlog that
        # comes and goes near capacity only raises the peaks (and moves the slope's end points).
        floors = [float(part.min()) for part in np.array_split(rss[after], 3) if len(part)]
        self.run.rows.append(
            self._row_from(
                "soak",
                f"8. Soak {spec.duration_s / 60:g} min at {max(self.s.latency_loads):.0%}",
                f"{streams} streams, {rate:.0f} frames/s, LOSSLESS",
                result,
                rss_start_mib=float(rss[after][0]) if after.any() else 0.0,
                rss_end_mib=float(rss[-1]) if len(rss) else 0.0,
                rss_peak_mib=float(rss.max()) if len(rss) else 0.0,
                rss_slope_mib_per_min=slope,
                rss_floor_by_third_mib=floors,
            )
        )


def dump(run: BenchRun) -> str:
    return json.dumps(run.settings.__dict__, default=str)
