"""The soak row: hours-long streams compressed into minutes, looking for memory that grows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from streaming.bench.harness import Harness, ServerUnderTest, load_row
from streaming.bench.results import Row


def soak_row(h: Harness, server: ServerUnderTest, rate: float) -> Row:
    streams = h.s.latency_streams
    spec = replace(h.spec(server.address, streams, rate_fps=rate), duration_s=h.s.soak_s, slices=10)
    run = h.load(spec, "soak")
    assert server.process.rss is not None  # servers are always sampled
    series = server.process.rss.series("soak")
    t = np.array([s[0] for s in series]) - series[0][0]
    rss = np.array([s[1] for s in series], dtype=np.float64) / 2**20
    after = t > spec.warmup_s + 0.2 * spec.duration_s  # ignore ramp-up
    slope = float(np.polyfit(t[after] / 60, rss[after], 1)[0]) if after.sum() > 2 else 0.0
    # Lowest RSS in each third after ramp-up: a leak raises the floor, while a backlog that
    # comes and goes near capacity only raises the peaks (and moves the slope's end points).
    floors = [float(part.min()) for part in np.array_split(rss[after], 3) if len(part)]
    return load_row(
        "soak",
        f"8. Soak {spec.duration_s / 60:g} min at {max(h.s.latency_loads):.0%}",
        f"{streams} streams, {rate:.0f} frames/s, LOSSLESS",
        run,
        rss_start_mib=float(rss[after][0]) if after.any() else 0.0,
        rss_end_mib=float(rss[-1]) if len(rss) else 0.0,
        rss_peak_mib=float(rss.max()) if len(rss) else 0.0,
        rss_slope_mib_per_min=slope,
        rss_floor_by_third_mib=floors,
    )
