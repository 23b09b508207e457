"""Reduced-scale JPEG decoding, shared by the client's file decoding and the server."""

from __future__ import annotations

import doctest

import cv2
import numpy as np
import pytest

import client.jpeg
from client.jpeg import decode_scaled, reduction_for


@pytest.mark.parametrize(
    ("width", "height", "target", "factor"),
    [
        pytest.param(1920, 1080, (224, 224), 4, id="full-hd-to-224"),
        pytest.param(1792, 1792, (224, 224), 8, id="exactly-eight-times"),
        pytest.param(1791, 1792, (224, 224), 4, id="one-pixel-short-of-eight"),
        pytest.param(448, 2000, (224, 224), 2, id="the-smaller-side-decides"),
        pytest.param(300, 300, (224, 224), 1, id="too-small-to-reduce"),
        pytest.param(100, 100, (224, 224), 1, id="smaller-than-the-target"),
    ],
)
def test_the_largest_reduction_that_still_covers_the_target(
    width: int, height: int, target: tuple[int, int], factor: int
) -> None:
    assert reduction_for(width, height, target) == factor


def jpeg(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)  # red on the left in BGR
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
@pytest.mark.parametrize("grey", [False, True])
def test_a_jpeg_decodes_at_the_reduced_size(factor: int, grey: bool) -> None:
    decoded = decode_scaled(jpeg(640, 480), factor, grey=grey)
    assert decoded is not None
    expected = (480 // factor, 640 // factor) + (() if grey else (3,))
    assert decoded.shape == expected
    if not grey:
        assert decoded[decoded.shape[0] // 2, 1, 2] > 200  # still red on the left


@pytest.mark.parametrize(
    ("data", "factor", "outcome"),
    [
        pytest.param(b"not an image at all", 1, None, id="garbage-gives-none"),
        pytest.param(jpeg(64, 64), 3, ValueError, id="no-such-scale"),
    ],
)
def test_bad_input(data: bytes, factor: int, outcome: type[Exception] | None) -> None:
    if outcome is None:
        assert decode_scaled(data, factor) is None
    else:
        with pytest.raises(outcome):
            decode_scaled(data, factor)


def test_the_examples_in_the_docstring_hold() -> None:
    assert doctest.testmod(client.jpeg).failed == 0
