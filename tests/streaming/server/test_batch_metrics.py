"""The batcher's counters reach Prometheus by reason, only ever growing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streaming.server.batch_metrics import BatchMetrics
from streaming.server.batch_stats import BatcherStats
from streaming.server.server_metrics import ServerMetrics
from streaming.server.temporal_cue import CueEffect

DROPPED = "stream_classify_frames_dropped_total"


def _recorder(
    metrics: ServerMetrics, stats: BatcherStats, starved: Callable[[], int] = lambda: 0
) -> BatchMetrics:
    """A recorder with a fixed clock and nothing held: only the counters it carries over move."""
    return BatchMetrics(
        metrics,
        stats,
        lambda: 0,
        held_frames=lambda: 0,
        held_bytes=lambda: 0,
        frame_budget=64,
        memory_budget=1 << 20,
        decodes_starved=starved,
    )


@pytest.mark.parametrize(
    ("steps", "replaced", "budget"),
    [
        ([(0, 0)], 0, 0),
        ([(3, 0)], 3, 0),
        ([(5, 2)], 3, 2),
        ([(1, 0), (4, 1), (9, 6)], 3, 6),  # reported in three goes: the sums, never twice
        ([(2, 2), (2, 2)], 0, 2),  # nothing new: nothing added
    ],
)
def test_drops_are_reported_by_reason(
    steps: list[tuple[int, int]], replaced: int, budget: int
) -> None:
    stats = BatcherStats()
    metrics = ServerMetrics()
    recorder = _recorder(metrics, stats)
    for dropped, by_budget in steps:
        stats.dropped, stats.dropped_by_budget = dropped, by_budget
        recorder.report_drops()
    assert metrics.value(DROPPED, reason="live_replaced") == replaced
    assert metrics.value(DROPPED, reason="budget") == budget
    assert metrics.value("stream_classify_frame_budget") == 64
    assert metrics.value("stream_classify_held_frames") == 0


@pytest.mark.parametrize(
    ("steps", "vetoes", "boosts"),
    [
        ([(0, 0)], 0, 0),
        ([(2, 1)], 2, 1),
        ([(1, 0), (1, 3), (4, 3)], 4, 3),  # reported in three goes: the sums, never twice
    ],
)
def test_temporal_cue_changes_are_reported_by_effect(
    steps: list[tuple[int, int]], vetoes: int, boosts: int
) -> None:
    stats = BatcherStats()
    metrics = ServerMetrics()
    recorder = _recorder(metrics, stats)
    for veto, boost in steps:
        stats.cue_changes = {CueEffect.VETO: veto, CueEffect.BOOST: boost}
        recorder.report_drops()
    changes = "stream_classify_temporal_cue_changes_total"
    assert metrics.value(changes, effect="veto") == vetoes
    assert metrics.value(changes, effect="boost") == boosts


@pytest.mark.parametrize(
    ("steps", "expected"),
    [([0], 0), ([3], 3), ([1, 1, 4], 4)],  # reported in goes: the total, never twice
)
def test_starved_decodes_are_reported(steps: list[int], expected: int) -> None:
    metrics = ServerMetrics()
    starved = 0
    recorder = _recorder(metrics, BatcherStats(), lambda: starved)
    for starved in steps:  # noqa: B007 - the recorder's callable reads it
        recorder.report_drops()
    assert metrics.value("stream_classify_decodes_starved_total") == expected
