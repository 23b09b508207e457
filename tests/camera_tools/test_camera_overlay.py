from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from camera_tools.overlay import draw_overlay, overlay_lines


def gray(height: int = 120, width: int = 160) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


@pytest.mark.parametrize(("height", "width"), [(48, 64), (120, 160), (720, 1280)])
def test_overlay_draws_a_dark_box_with_text_and_leaves_input_alone(height: int, width: int) -> None:
    image = gray(height, width)
    out = draw_overlay(image, label="cat", score=0.93, source="cam1", timestamp=0.0, fps=9.5)

    assert out is not image
    assert (image == 128).all()
    assert out.shape == image.shape and out.dtype == np.uint8
    corner = out[: height // 8, : width // 8]
    assert corner.min() < 128  # darkened box
    assert out.max() > 200  # white text
    assert (out[-2:, -2:] == 128).all()  # far corner untouched


def test_overlay_in_place_modifies_the_input() -> None:
    image = gray()
    out = draw_overlay(image, label="dog", score=0.5, in_place=True)
    assert out is image
    assert (image != 128).any()


@pytest.mark.parametrize(
    ("corner", "region"),
    [
        ("top-left", (slice(0, 10), slice(0, 10))),
        ("top-right", (slice(0, 10), slice(-10, None))),
        ("bottom-left", (slice(-10, None), slice(0, 10))),
        ("bottom-right", (slice(-10, None), slice(-10, None))),
    ],
)
def test_overlay_corner(corner: str, region: tuple[slice, slice]) -> None:
    out = draw_overlay(gray(), label="a-rather-long-label", score=1.0, corner=corner)
    assert out[region].mean() < 128


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (np.zeros((10, 10), np.uint8), {}),
        (np.zeros((10, 10, 3), np.float32), {}),
        (np.zeros((10, 10, 3), np.uint8), {"corner": "middle"}),
        (np.zeros((10, 10, 3), np.uint8), {"box_alpha": 1.5}),
    ],
)
def test_overlay_rejects_bad_input(image: np.ndarray, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        draw_overlay(image, label="x", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"label": "cat", "score": 0.934}, ["cat 0.93"]),
        ({"label": "cat", "score": None, "source": "cam"}, ["cat", "cam"]),
        ({"label": None, "score": None, "fps": 12.34, "extra": ["hi"]}, ["12.3 fps", "hi"]),
        ({"label": None, "score": None}, []),
    ],
)
def test_overlay_lines(kwargs: dict[str, Any], expected: list[str]) -> None:
    assert overlay_lines(**kwargs) == expected


def test_overlay_without_text_returns_a_copy() -> None:
    image = gray()
    out = draw_overlay(image, label=None)
    assert out is not image and (out == image).all()
