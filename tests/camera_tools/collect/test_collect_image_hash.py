"""Near-duplicate frames by fingerprint: the same scene slightly changed is near, others are not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camera_tools.collect import Fingerprint, RecentFingerprints, fingerprint

MAX_BITS = 6


def scene(seed: int, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A textured BGR frame: smooth random blobs, different per seed."""
    width, height = size
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def noisy(image: np.ndarray, amount: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-amount, amount + 1, image.shape)
    return np.clip(image.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def solid(bgr: tuple[int, int, int], size: tuple[int, int] = (640, 360)) -> np.ndarray:
    width, height = size
    return np.full((height, width, 3), bgr, np.uint8)


@pytest.mark.parametrize(
    ("first", "second", "near"),
    [
        (scene(1), scene(1), True),  # the same frame
        (scene(1), noisy(scene(1), 6), True),  # sensor noise / compression
        (scene(1), cv2.resize(scene(1), (1280, 720)), True),  # the same scene at another size
        (scene(1), np.clip(scene(1).astype(np.int32) + 10, 0, 255).astype(np.uint8), True),
        (scene(1), scene(2), False),  # another scene
        (scene(1), cv2.flip(scene(1), 1), False),  # mirrored: gradients reversed
        (solid((0, 0, 0)), solid((0, 0, 0)), True),  # black and black
        (solid((0, 0, 0)), solid((255, 0, 0)), False),  # flat frames differ by colour alone
        (solid((0, 0, 255)), solid((0, 255, 0)), False),
    ],
)
def test_near(first: np.ndarray, second: np.ndarray, near: bool) -> None:
    assert fingerprint(first).near(fingerprint(second), MAX_BITS) is near


@pytest.mark.parametrize("shape", [(48, 64, 3), (1080, 1920, 3), (7, 5, 3), (48, 64)])
def test_any_frame_size_and_grey(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    mark = fingerprint(image)
    assert 0 <= mark.bits < 2**64
    assert mark.near(fingerprint(image.copy()), 0)


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [(0, 0, 0), (0, 1, 1), (0, 2**64 - 1, 64), (0b1010, 0b0101, 4)],
)
def test_distance(a: int, b: int, distance: int) -> None:
    colour = (0.0, 0.0, 0.0)
    assert Fingerprint(a, colour).distance(Fingerprint(b, colour)) == distance


def test_recent_remembers_only_the_last_ones() -> None:
    recent = RecentFingerprints(size=2, max_bits=MAX_BITS)
    marks = [fingerprint(scene(seed)) for seed in (1, 2, 3)]
    for mark in marks:
        recent.add(mark)
    assert not recent.has_near(marks[0])  # pushed out by the third
    assert recent.has_near(marks[1]) and recent.has_near(marks[2])


def test_no_history_means_no_duplicates() -> None:
    recent = RecentFingerprints(size=0, max_bits=MAX_BITS)
    recent.add(fingerprint(scene(1)))
    assert not recent.has_near(fingerprint(scene(1)))
