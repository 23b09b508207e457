"""The one resize rule for frames on their way to a model (client and server)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from client.resize import interpolation_for, resize_to


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((480, 640, 3), (224, 224), cv2.INTER_AREA),  # 2.1x and 2.9x: area
        ((448, 448, 3), (224, 224), cv2.INTER_AREA),  # exactly 2x on both axes: area
        ((448, 300, 3), (224, 224), cv2.INTER_AREA),  # 2x on one axis is enough
        ((240, 320, 3), (224, 224), cv2.INTER_LINEAR),  # a JPEG decoded at 1/2: under 2x
        ((447, 447, 3), (224, 224), cv2.INTER_LINEAR),
        ((100, 100, 3), (224, 224), cv2.INTER_LINEAR),  # enlarging
        ((240, 320), (224, 224), cv2.INTER_LINEAR),  # grey
    ],
)
def test_interpolation_for(shape: tuple[int, ...], size: tuple[int, int], expected: int) -> None:
    assert interpolation_for(shape, *size) == expected


@pytest.mark.parametrize("shape", [(240, 320, 3), (480, 640, 3), (12, 16, 3), (240, 320, 1)])
def test_resize_to_uses_the_rule_and_keeps_the_channel_axis(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, np.uint8)
    out = resize_to(image, 56, 42)
    assert out.shape == (42, 56, shape[2]) and out.dtype == np.uint8
    expected = cv2.resize(image, (56, 42), interpolation=interpolation_for(shape, 56, 42))
    np.testing.assert_array_equal(out, expected.reshape(out.shape))


def test_an_image_that_fits_is_returned_as_it_is() -> None:
    image = np.zeros((24, 32, 3), np.uint8)
    assert resize_to(image, 32, 24) is image


def test_area_averages_a_2x_shrink_that_bilinear_would_alias() -> None:
    stripes = np.zeros((8, 8, 1), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: the average is mid-grey
    out = resize_to(stripes, 4, 4)
    assert np.all(out == 128)
