"""The running estimates of model-call and preparation time (used to take batches late)."""

from __future__ import annotations

import pytest

from streaming.server.durations import DurationEstimates

MS = 1_000_000


def durations(**calls_ms: float) -> DurationEstimates:
    d = DurationEstimates()
    for size, ms in calls_ms.items():
        d.model_call(int(size.removeprefix("b")), int(ms * MS))
    return d


@pytest.mark.parametrize(
    ("known", "size", "expected_ms"),
    [
        pytest.param({}, 8, 0.0, id="nothing-timed-yet-takes-at-once"),
        pytest.param({"b8": 20.0}, 8, 20.0, id="same-size"),
        pytest.param({"b8": 20.0, "b32": 50.0}, 16, 30.0, id="between-two-sizes-interpolates"),
        pytest.param({"b8": 20.0}, 32, 20.0, id="larger-than-seen-errs-short"),
        pytest.param({"b32": 48.0}, 8, 12.0, id="smaller-than-seen-scales-down"),
    ],
)
def test_model_call_estimate(known: dict[str, float], size: int, expected_ms: float) -> None:
    assert durations(**known).model_ns(size) / MS == pytest.approx(expected_ms)


def test_estimates_follow_recent_calls() -> None:
    d = DurationEstimates()
    d.model_call(32, 50 * MS)
    for _ in range(30):
        d.model_call(32, 80 * MS)  # the machine got busier
    assert d.model_ns(32) / MS == pytest.approx(80, rel=0.01)
    d.prepared(32, 32 * MS)
    assert d.prepare_ns(16) / MS == pytest.approx(16)
