"""The embedded model's frame generator: model-sized RGB frames of every class, reproducible by seed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from default_model_data.synth import (
    CLASSES,
    Image,
    Rng,
    _prog_pale_field,
    _tex_cells,
    _tex_confetti,
    finish,
    plausible,
    sample,
)
from default_model_data.train_default_model import generate

pytestmark = pytest.mark.timeout(60)

SIZE = 96


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("label", CLASSES)
def test_a_sample_is_a_model_sized_rgb_frame_of_its_class(label: str, seed: int) -> None:
    frame = sample(label, np.random.default_rng(seed), SIZE)

    assert frame.shape == (SIZE, SIZE, 3)
    assert frame.dtype == np.uint8
    assert plausible(label, frame)


@pytest.mark.parametrize("label", CLASSES)
def test_the_same_seed_draws_the_same_frame_and_another_seed_another(label: str) -> None:
    first = sample(label, np.random.default_rng(5), SIZE)

    assert np.array_equal(first, sample(label, np.random.default_rng(5), SIZE))
    assert not np.array_equal(first, sample(label, np.random.default_rng(6), SIZE))


def _noise(mean: int, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(mean, sigma, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def _flat(value: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), value, np.uint8)


def _bars() -> np.ndarray:
    colours = [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16), (235, 16, 235)]
    frame = np.empty((SIZE, SIZE, 3), np.uint8)
    for i, colour in enumerate(colours):
        frame[:, i * SIZE // len(colours) :] = colour
    return frame


@pytest.mark.parametrize(
    ("label", "frame", "expected"),
    [
        ("black", _flat(0), True),
        ("black", _flat(12), True),
        ("black", _flat(200), False),
        ("black", _noise(128, 60), False),
        ("static", _noise(128, 60), True),
        ("static", _flat(0), False),
        ("static", _flat(128), False),
        ("program", _bars(), True),
        ("program", _flat(0), False),
        ("program", _noise(128, 20), False),  # fine grain: snow
        ("color_bars", _bars(), True),
        ("color_bars", _flat(5), False),
    ],
    ids=lambda value: value if isinstance(value, str | bool) else "",
)
def test_plausible_rejects_draws_that_read_as_another_class(
    label: str, frame: np.ndarray, expected: bool
) -> None:
    assert plausible(label, frame) is expected


@pytest.mark.parametrize("shape", [(360, 640), (1080, 1920), (240, 240), (50, 300)])
def test_finish_makes_a_square_frame_from_any_source_size(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    source = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)

    out = finish(source, "program", rng, SIZE)

    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8


def test_generate_labels_every_class_equally_whatever_the_number_of_workers() -> None:
    # given a small set drawn in chunks of 2 by one worker and by two
    x, y = generate(per_class=3, size=32, seed=4, workers=1, chunk=2)
    x2, y2 = generate(per_class=3, size=32, seed=4, workers=2, chunk=2)

    # then every class has its 3 frames, in class order, and the draw does not depend on workers
    assert x.shape == (3 * len(CLASSES), 32, 32, 3) and x.dtype == np.uint8
    assert y.tolist() == [i for i in range(len(CLASSES)) for _ in range(3)]
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def _snow(rng: Rng, h: int, w: int) -> Image:
    return rng.uniform(0, 255, (h, w, 3)).astype(np.float32)


def _neighbour_correlation(img: Image) -> float:
    grey = np.asarray(img, np.float32).mean(axis=2)
    return float(np.corrcoef(grey[:, 1:].ravel(), grey[:, :-1].ravel())[0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(
    ("maker", "structured"),
    [(_tex_cells, True), (_tex_confetti, True), (_prog_pale_field, True), (_snow, False)],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_program_textures_of_small_pieces_have_structure_that_snow_has_not(
    maker: object, structured: bool, seed: int
) -> None:
    # given a source-sized drawing (pieces of 2-10 input pixels at 480 px wide are 10-50 px)
    img = maker(np.random.default_rng(seed), 270, 480)  # type: ignore[operator]

    # then neighbouring pixels follow each other in texture (rule 4) and not in snow
    assert (_neighbour_correlation(img) > 0.25) is structured


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_pale_field_is_bright_and_near_flat_above_the_black_band(seed: int) -> None:
    img = np.asarray(_prog_pale_field(np.random.default_rng(seed), 270, 480), np.float32)

    assert float(img.reshape(-1, 3).mean(axis=0).max()) >= 100  # far above rule 2's band
    assert float(cv2.GaussianBlur(img.mean(axis=2), (0, 0), 3).std()) < 60
