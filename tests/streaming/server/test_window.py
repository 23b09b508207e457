from __future__ import annotations

import numpy as np
import pytest

from streaming.server.window import SlidingWindow

CASES = [
    pytest.param(1, 4, id="window-1"),
    pytest.param(3, 10, id="window-3"),
    pytest.param(5, 5, id="exactly-full"),
    pytest.param(8, 3, id="never-full"),
]


@pytest.mark.parametrize(("size", "frames"), CASES)
def test_window_mean_is_the_mean_of_the_last_frames(size: int, frames: int) -> None:
    rng = np.random.default_rng(size)
    vectors = rng.random((frames, 4)).astype(np.float32)
    window = SlidingWindow(size, 4)
    for i, vector in enumerate(vectors):
        mean = window.add(vector)
        np.testing.assert_allclose(
            mean, vectors[max(0, i - size + 1) : i + 1].mean(axis=0), rtol=1e-6
        )
        assert len(window) == min(i + 1, size)


def test_window_result_is_not_a_view_of_its_buffer() -> None:
    window = SlidingWindow(1, 2)
    first = window.add(np.array([1.0, 0.0]))
    window.add(np.array([0.0, 1.0]))
    assert first.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("size", [0, -1])
def test_window_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValueError, match="window size must be >= 1"):
        SlidingWindow(size, 3)
