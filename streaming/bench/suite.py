"""The benchmark plan: every row of the table, run in order on this machine, each bounded in time.

The suite decides which server each row runs against and records a failed row instead of
stopping; the rows themselves are measured in ``limit_rows``, ``server_rows``, ``latency_rows``,
``classify_row``, ``soak``, ``attack_rows``, ``web_view``, ``startup_row``, ``onnx_rows``,
``swap_row``, ``collect_row`` and ``multiprocess_row``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.bench.attack_rows import attack_rows
from streaming.bench.classify_row import classify_row
from streaming.bench.collect_row import CollectSpec, collect_row
from streaming.bench.harness import Harness, ServerUnderTest
from streaming.bench.latency_rows import latency_row, overload_row
from streaming.bench.limit_rows import (
    model_limit,
    null_server_flags,
    null_server_row,
    one_call_row,
    transport_row,
    wire_floor_row,
)
from streaming.bench.multiprocess_row import processes_rows
from streaming.bench.onnx_rows import onnx_rows
from streaming.bench.processes import BenchError
from streaming.bench.results import Row
from streaming.bench.server_rows import jpeg_row, memory_row, memory_summary, server_row
from streaming.bench.settings import (
    ATTACK_ROW,
    COLLECT_ROW,
    ONNX_ROW,
    PROCESSES_ROW,
    STARTUP_ROW,
    SWAP_ROW,
    WEB_VIEW_ROW,
    BenchRun,
    BenchSettings,
)
from streaming.bench.soak import soak_row
from streaming.bench.startup_row import startup_row
from streaming.bench.swap_row import swap_row
from streaming.bench.web_view import WebViewSpec, web_view_row
from streaming.server.serve_config import DEFAULT_RECEIVE_WINDOW

logger = logging.getLogger(__name__)


class Suite:
    def __init__(self, settings: BenchSettings) -> None:
        self.s = settings
        self.run = BenchRun(settings)

    def execute(self) -> BenchRun:
        t0 = time.monotonic()
        rows = set(self.s.rows)
        with tempfile.TemporaryDirectory(prefix="sc-bench-") as scratch:
            h = Harness(self.s, Path(scratch))
            row, self.run.model = model_limit(h)  # always: every target is relative to it
            self.run.rows.append(row)
            if 2 in rows:
                self._row("row 2", transport_row, h)
                self._row("row 2, server's window", transport_row, h, DEFAULT_RECEIVE_WINDOW)
                self._row("row 2, the real wire", wire_floor_row, h)
            if 3 in rows:
                self._attempt("row 3", lambda: self._null_server(h))
            if 4 in rows:
                self._attempt("row 4", lambda: self._one_call(h))
            if rows & {5, 6, 7, 8}:
                self._attempt("rows 5-8", lambda: self._server_rows(h, rows))
            if 5 in rows:
                self._row("row 1 again", lambda: model_limit(h, again=True)[0])
            if ATTACK_ROW in rows:
                self._attempt("attack rows", lambda: attack_rows(h, self._row))
            if WEB_VIEW_ROW in rows:
                self._attempt("web view row", lambda: self._web_view(h))
            if STARTUP_ROW in rows:
                self._row("start-up row", startup_row, h.log_dir, self.s.startup_runs)
            if ONNX_ROW in rows:
                self._attempt("ONNX row", lambda: onnx_rows(h, self._row))
            if SWAP_ROW in rows:
                self._row("swap row", swap_row, h)
            if COLLECT_ROW in rows:
                self._attempt("collect row", lambda: self._collect(h))
            if PROCESSES_ROW in rows:
                self._attempt("row 15", lambda: processes_rows(h, self._row))
        self.run.elapsed_s = time.monotonic() - t0
        return self.run

    def _attempt(self, name: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BenchError as exc:
            logger.error("%s failed: %s", name, exc)
            self.run.failures.append(f"{name}: {exc}")

    def _row(self, name: str, measure: Callable[..., Row], *args: Any) -> None:
        """Measure a row and add it to the table, or record why it failed."""
        self._attempt(name, lambda: self.run.rows.append(measure(*args)))

    def _null_server(self, h: Harness) -> None:
        with h.serving("null", *null_server_flags(h)) as server:
            self._row("row 3", null_server_row, h, server)
            # The client's own capacity, with no model competing for the two cores.
            self._row(
                "classify (no-op model)",
                classify_row,
                h,
                server.address,
                "classify_null",
                " (no-op model)",
            )

    def _web_view(self, h: Harness) -> None:
        # The embedded model: the watch client, not the model, is what this row loads.
        with h.serving("web-view") as server:
            spec = WebViewSpec(server=server.address, duration_s=self.s.duration_s)
            self._row("web view", web_view_row, spec, self.s.work_dir / "web-view")

    def _collect(self, h: Harness) -> None:
        # The embedded model, like the web-view row: the watch client is what this row loads.
        with h.serving("collect") as server:
            spec = CollectSpec(server=server.address, duration_s=self.s.duration_s)
            self._row("collect", collect_row, spec, self.s.work_dir / "collect")

    def _one_call(self, h: Harness) -> None:
        with h.serving("batch1", *h.model_flags(), "--max-batch", "1") as server:
            self._row("row 4", one_call_row, h, server)

    def _server_rows(self, h: Harness, rows: set[int]) -> None:
        with h.serving("main", *h.model_flags(), "--max-batch", str(self.s.max_batch)) as server:
            for streams in self.s.server_streams:
                self._row(f"row 5 ({streams} streams)", server_row, h, server, streams)
            if 5 in rows:
                self._row("row 5 (JPEG)", jpeg_row, h, server)
                self._row("row 5 (classify)", classify_row, h, server.address)
            self._rows_relative_to_full_load(h, server, rows)
            self.run.memory.update(memory_summary(h, server))
        self.run.rows.append(memory_row(h, self.run.memory))

    def _rows_relative_to_full_load(
        self, h: Harness, server: ServerUnderTest, rows: set[int]
    ) -> None:
        base = self.run.row("server_32")
        if base is None or not base.fps:
            raise BenchError("row 5 at 32 streams is missing: rows 6 and 7 need its throughput")
        full = base.fps
        if 6 in rows:
            for share in self.s.latency_loads:
                self._row(f"row 6 ({share:.0%})", latency_row, h, server, full * share, share)
        if 7 in rows:
            self._row("row 7", overload_row, h, server, full * self.s.overload_factor)
        if self.s.soak_s > 0:
            self._row("soak", soak_row, h, server, full * max(self.s.latency_loads))
