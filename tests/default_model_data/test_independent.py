"""The independent evaluation set's frame handling (the ffmpeg sources themselves run in the evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from default_model_data.evaluate_default_model import confusion
from default_model_data.independent import degrade, to_input

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("shape", [(360, 640), (480, 640), (101, 99)])
def test_degrade_yields_the_frame_then_two_lossy_copies(shape: tuple[int, int]) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)

    variants = dict(degrade(frame))

    assert list(variants) == ["raw", "jpeg30", "half+jpeg60"]
    assert variants["raw"] is frame
    assert variants["jpeg30"].shape == frame.shape
    assert variants["half+jpeg60"].shape == (shape[0] // 2, shape[1] // 2, 3)
    assert all(v.dtype == np.uint8 for v in variants.values())


@pytest.mark.parametrize("size", [32, 96])
def test_to_input_squashes_any_frame_to_the_model_square(size: int) -> None:
    frame = np.zeros((360, 640, 3), np.uint8)

    assert to_input(frame, size).shape == (size, size, 3)


@pytest.mark.parametrize(
    ("truth", "predicted", "expected"),
    [
        ([0, 1, 2], [0, 1, 2], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        ([0, 0, 1], [1, 1, 1], [[0, 2, 0], [0, 1, 0], [0, 0, 0]]),
        ([], [], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]),
    ],
)
def test_confusion_counts_truth_by_row_and_prediction_by_column(
    truth: list[int], predicted: list[int], expected: list[list[int]]
) -> None:
    m = confusion(np.array(truth, np.int64), np.array(predicted, np.int64), 3)

    assert m.tolist() == expected
