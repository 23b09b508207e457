"""The swap row's arithmetic: the throughput a dip cost, in seconds of full load."""

from __future__ import annotations

import pytest

from streaming.bench.processes import BenchError
from streaming.bench.swap_row import swap_cost


@pytest.mark.parametrize(
    ("counts", "first_after", "expected"),
    [
        ((100, 100, 100, 100, 100, 100), 3, (100.0, 0.0)),  # no dip: no cost
        ((100, 100, 100, 50, 50, 100), 3, (100.0, 1.0)),  # two half slices: one second
        ((100, 100, 100, 0, 100, 100), 3, (100.0, 1.0)),  # one empty slice
        ((90, 100, 110, 100, 80, 100), 3, (100.0, 0.2)),  # baseline is the mean before
        ((100, 100, 100, 110, 90), 3, (100.0, 0.0)),  # a catch-up after the dip pays it back
    ],
)
def test_swap_cost(
    counts: tuple[int, ...], first_after: int, expected: tuple[float, float]
) -> None:
    fps, cost = swap_cost(counts, 1.0, first_after)
    assert (fps, cost) == pytest.approx(expected)


def test_swap_cost_in_half_second_slices() -> None:
    assert swap_cost((50, 50, 50, 25, 25), 0.5, 3) == pytest.approx((100.0, 0.5))


@pytest.mark.parametrize(("counts", "first_after"), [((100, 100, 50), 2), ((0, 0, 0, 5), 3)])
def test_swap_cost_needs_a_baseline(counts: tuple[int, ...], first_after: int) -> None:
    with pytest.raises(BenchError):
        swap_cost(counts, 1.0, first_after)
