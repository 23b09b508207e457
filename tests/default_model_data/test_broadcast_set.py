"""The broadcast-like evaluation set: labelled by the card's rules, seeded, and made by code that
shares nothing with the training generator."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from default_model_data import broadcast_set
from default_model_data.broadcast_set import _osd, clear_case, degrade

pytestmark = pytest.mark.timeout(60)

H, W = 72, 128


def _flat(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.full((H, W, 3), rgb, np.uint8)


def _with_box(base: np.ndarray, share: float) -> np.ndarray:
    frame = base.copy()
    frame[: int(H * share)] = 255  # a bright band covering `share` of the picture
    return frame


def _snow(mean: int, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(mean, sigma, (H, W, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)


@pytest.mark.parametrize(
    ("label", "frame", "clear"),
    [
        ("black", _flat((0, 0, 0)), True),
        ("black", _flat((24, 16, 6)), True),  # warm black
        ("black", _with_box(_flat((5, 5, 5)), 0.03), True),  # a small logo or caption
        ("black", _with_box(_flat((5, 5, 5)), 0.2), False),  # more than a logo: hesitate
        ("black", _flat((40, 30, 10)), False),  # the band between black and program
        ("program", _flat((40, 30, 10)), False),
        ("program", _flat((90, 55, 20)), True),  # a warm field, clearly program
        ("program", _flat((10, 10, 70)), True),  # a dark blue slate
        ("static", _snow(128, 60), True),
        ("static", _flat((128, 128, 128)), False),
        ("static", _snow(128, 3), False),  # faint grain is not snow
        ("color_bars", _flat((0, 0, 0)), True),  # bars are drawn, never judged by level
    ],
    ids=lambda v: v if isinstance(v, str | bool) else "",
)
def test_clear_case_applies_the_cards_rules(label: str, frame: np.ndarray, clear: bool) -> None:
    assert clear_case(label, frame) is clear


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_degrade_keeps_the_frame_size_and_is_seeded(seed: int) -> None:
    frame = _snow(100, 40)

    variant, out = degrade(np.random.Generator(np.random.PCG64DXSM(seed)), frame)
    again = degrade(np.random.Generator(np.random.PCG64DXSM(seed)), frame)

    assert out.shape == frame.shape and out.dtype == np.uint8
    assert again[0] == variant and np.array_equal(again[1], out)


@pytest.mark.parametrize("small", [False, True])
def test_osd_draws_crisp_graphics_over_the_frame(small: bool) -> None:
    frame = _snow(128, 60)

    out = _osd(np.random.Generator(np.random.PCG64DXSM(3)), frame, small=small)

    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frame)
    assert np.array_equal(frame, _snow(128, 60))  # the input is left alone


@pytest.mark.parametrize(
    "maker",
    ["_wood", "_turf", "_gravel", "_fbm", "_render", "_illustration", "_warm_field"],
)
def test_program_makers_are_seeded_rgb_frames(maker: str) -> None:
    make = getattr(broadcast_set, maker)

    first = make(np.random.Generator(np.random.PCG64DXSM(9)), W, H)
    again = make(np.random.Generator(np.random.PCG64DXSM(9)), W, H)

    assert first.shape == (H, W, 3)
    assert np.array_equal(first, again)


def test_the_set_shares_no_code_with_the_training_generator() -> None:
    # given the evaluation set's module
    tree = ast.parse(Path(broadcast_set.__file__).read_text())

    # then it imports neither the generator nor OpenCV (whose drawing and JPEG the generator uses)
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if "synth" in name or name.startswith("cv2")}
    # and its only photographs are the held-out ones
    assert "load_photos(holdout=True)" in Path(broadcast_set.__file__).read_text()


def test_snow_pairs_redraw_the_noise_and_keep_the_graphics() -> None:
    # given the static frames and the frames before them in their streams
    frames = broadcast_set._static(
        np.random.Generator(np.random.PCG64DXSM(5)), np.random.Generator(np.random.PCG64DXSM(6))
    )
    for frame in frames[:10]:
        assert frame.previous is not None and frame.previous.shape == frame.image.shape
        # then the noise is drawn again (most pixels differ) ...
        assert (frame.image != frame.previous).mean() > 0.5, frame.kind
    # ... while the receiver's graphics are the same on both (its pure-colour pixels repeat)
    # (_osd's colours but white, which clipped snow has too)
    colours = ((0, 255, 0), (255, 255, 0), (0, 255, 255))
    masks = [np.any([(f.image == c).all(axis=2) for c in colours], axis=0) for f in frames[:10]]
    drawn = [(f, m) for f, m in zip(frames[:10], masks, strict=True) if "osd" in f.kind and m.any()]
    assert drawn
    for frame, pure in drawn:
        assert (frame.previous[pure] == frame.image[pure]).mean() > 0.9, frame.kind


def test_still_camera_is_the_same_picture_with_other_noise() -> None:
    picture = broadcast_set._to_uint8(
        broadcast_set._wood(np.random.Generator(np.random.PCG64DXSM(1)), W, H)
    )
    before = broadcast_set._still_camera(np.random.Generator(np.random.PCG64DXSM(2)), picture)
    assert before.shape == picture.shape and before.dtype == np.uint8
    assert not np.array_equal(before, picture)
    assert np.abs(before.astype(int) - picture.astype(int)).mean() < 25
