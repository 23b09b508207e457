"""Rows 6 and 7: latency at a steady share of row 5's throughput, and LIVE streams overloaded."""

from __future__ import annotations

from dataclasses import replace

from streaming.bench.harness import Harness, ServerUnderTest, load_row
from streaming.bench.results import Row


def latency_row(h: Harness, server: ServerUnderTest, rate: float, share: float) -> Row:
    streams = h.s.latency_streams
    run = h.load(h.spec(server.address, streams, rate_fps=rate), f"latency-{share:g}")
    return load_row(
        f"latency_{int(share * 100)}",
        f"6. Steady load {share:.0%}",
        f"{streams} streams, {rate:.0f} frames/s offered in total, LOSSLESS",
        run,
        share=share,
    )


def overload_row(h: Harness, server: ServerUnderTest, rate: float) -> Row:
    streams = h.s.latency_streams
    spec = replace(
        h.spec(server.address, streams, rate_fps=rate, delivery="live"),
        duration_s=h.s.overload_s,
    )
    run = h.load(spec, "overload")
    result = run.result
    offered = max(result.sent, 1)
    return load_row(
        "overload",
        "7. Overload (LIVE)",
        f"{streams} LIVE streams, {rate:.0f} frames/s offered ({h.s.overload_factor:g}x row 5)",
        run,
        # Shares within the window (the server's dropped_frames counter spans the whole run).
        dropped_share=max(0.0, 1 - (result.answered + result.skipped) / offered),
        skipped_share=result.skipped / offered,
    )
