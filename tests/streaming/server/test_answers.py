from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streaming.server.answers import top_indices

NAN = float("nan")

CASES = [
    pytest.param([0.1, 0.7, 0.2], 1, [1], id="best-only"),
    pytest.param([0.1, 0.7, 0.2], 2, [1, 2], id="two-largest-first"),
    pytest.param([0.1, 0.7, 0.2], 3, [1, 2, 0], id="all"),
    pytest.param([0.1, 0.7, 0.2], 9, [1, 2, 0], id="more-than-there-are"),
    pytest.param([0.5], 1, [0], id="one-class"),
    pytest.param([0.3, 0.3, 0.1], 1, [0], id="tie-for-best-to-the-lower-index"),
    pytest.param([NAN, 0.2, 0.6], 1, [2], id="nan-never-best"),
    pytest.param([NAN, 0.2, 0.6], 2, [2, 1], id="nan-not-in-top-2"),
    pytest.param([NAN, 0.2, 0.6], 3, [2, 1, 0], id="nan-last"),
    pytest.param([NAN, NAN, 0.1], 1, [2], id="the-one-number-among-nans-is-best"),
]


@pytest.mark.parametrize(("values", "k", "expected"), CASES)
def test_top_indices_are_the_largest_first(
    values: list[float], k: int, expected: list[int]
) -> None:
    assert top_indices(np.array(values, np.float32), k) == expected


@given(
    hnp.arrays(np.float32, st.integers(1, 40), elements=st.floats(0, 1, width=32), unique=True),
    st.integers(1, 45),
)
def test_top_indices_agree_with_a_full_sort(values: np.ndarray, k: int) -> None:
    assert top_indices(values, k) == [int(i) for i in np.argsort(-values)[:k]]
