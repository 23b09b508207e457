"""Rows 5 and 8: the real server at full load by stream count and wire format, and its memory."""

from __future__ import annotations

from streaming.bench.harness import Harness, ServerUnderTest, load_row
from streaming.bench.results import Row


def server_row(h: Harness, server: ServerUnderTest, streams: int) -> Row:
    run = h.load(h.spec(server.address, streams), f"server-{streams}")
    return load_row(
        f"server_{streams}",
        f"5. Server, {streams} stream{'s' if streams > 1 else ''}",
        f"--max-batch {h.s.max_batch}, RAW pre-resized, LOSSLESS",
        run,
    )


def jpeg_row(h: Harness, server: ServerUnderTest) -> Row:
    streams = h.s.latency_streams
    run = h.load(h.spec(server.address, streams, wire="jpeg", source_size=(640, 480)), "jpeg")
    return load_row(
        "server_jpeg",
        f"5. Server, {streams} streams JPEG",
        "640x480 JPEG q90, server decodes and resizes, LOSSLESS",
        run,
    )


def memory_summary(h: Harness, server: ServerUnderTest) -> dict[str, object]:
    """Peak RSS of the server at the most streams of row 5, over the whole run, and by phase."""
    rss = server.process.rss
    assert rss is not None  # servers are always sampled
    return {
        "peak_rss_64_mib": rss.peak(f"server-{max(h.s.server_streams)}") / 2**20,
        "peak_rss_all_mib": rss.peak() / 2**20,
        "rss_by_phase_mib": {
            phase: rss.peak(phase) / 2**20 for phase in dict.fromkeys(p for _, p, _ in rss.samples)
        },
    }


def memory_row(h: Harness, memory: dict[str, object]) -> Row:
    streams = max(h.s.server_streams)
    return Row(
        key="memory",
        name="8. Peak memory (RSS)",
        setup=f"server process during row 5 at {streams} streams",
        extra=dict(memory),
        note=f"{memory['peak_rss_64_mib']:.0f} MiB at {streams} streams",
    )
