"""The bundled photographs: RGB uint8, split once into training and held-out photos that never overlap."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from default_model_data.photos import HOLDOUT_NAMES, load_photos

pytestmark = pytest.mark.timeout(60)


def _digests(photos: tuple[np.ndarray, ...]) -> set[str]:
    return {hashlib.sha256(p.tobytes()).hexdigest() for p in photos}


@pytest.mark.slow  # decodes every photograph
@pytest.mark.parametrize("holdout", [False, True])
def test_photos_are_rgb_uint8(holdout: bool) -> None:
    photos = load_photos(holdout)

    assert photos
    for photo in photos:
        assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8
        assert photo.flags["C_CONTIGUOUS"]


def test_held_out_photos_are_never_training_photos() -> None:
    training, held_out = load_photos(False), load_photos(True)

    assert len(held_out) == len(HOLDOUT_NAMES)
    assert _digests(training).isdisjoint(_digests(held_out))
