"""Real photographs bundled (no download) inside scikit-image, scikit-learn and matplotlib.

The set is split once, by name, into photos used for training and photos held out for the
evaluation, the pytest and the demo clip, so those never see a training photo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Held out: never seen in training; used by evaluate_default_model.py, the test and the demo.
HOLDOUT_NAMES: tuple[str, ...] = (
    "sklearn_china",
    "sklearn_flower",
    "mpl_grace_hopper",
    "sk_rocket",
)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return np.asarray(getattr(skimage.data, name)())

    return load


def _skimage_file(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data
        from PIL import Image

        path = Path(skimage.data.__file__).parent / filename
        return np.asarray(Image.open(path).convert("RGB"))

    return load


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return np.asarray(load_sample_images().images[index])

    return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib
        from PIL import Image

        path = Path(matplotlib.get_data_path()) / "sample_data" / filename
        return np.asarray(Image.open(path).convert("RGB"))

    return load


def _topobathy() -> np.ndarray:
    # A shaded relief map: real terrain data rendered like a weather/news graphic.
    import matplotlib
    from matplotlib import colormaps

    path = Path(matplotlib.get_data_path()) / "sample_data" / "topobathy.npz"
    with np.load(path) as data:
        z = data["topo"].astype(np.float64)
    z = (z - z.min()) / max(z.max() - z.min(), 1e-6)
    return (colormaps["terrain"](z)[..., :3] * 255).astype(np.uint8)


# Hubble deep field is left out on purpose: mostly black sky, it would blur "black" vs "program".
_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "sk_astronaut": _skimage("astronaut"),
    "sk_camera": _skimage("camera"),
    "sk_coffee": _skimage("coffee"),
    "sk_chelsea": _skimage("chelsea"),
    "sk_ihc": _skimage("immunohistochemistry"),
    "sk_retina": _skimage("retina"),
    "sk_coins": _skimage("coins"),
    "sk_moon": _skimage("moon"),
    "sk_page": _skimage("page"),
    "sk_clock": _skimage("clock"),
    "sk_text": _skimage("text"),
    "sk_brick": _skimage("brick"),
    "sk_grass": _skimage("grass"),
    "sk_gravel": _skimage("gravel"),
    "sk_cell": _skimage("cell"),
    "sk_motorcycle": _skimage_file("motorcycle_left.png"),
    "sk_color": _skimage_file("color.png"),
    "mpl_minduka": _matplotlib("Minduka_Present_Blue_Pack.png"),
    "mpl_topobathy": _topobathy,
    "sk_rocket": _skimage("rocket"),
    "sklearn_china": _sklearn(0),
    "sklearn_flower": _sklearn(1),
    "mpl_grace_hopper": _matplotlib("grace_hopper.jpg"),
}


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


@cache
def load_photos(holdout: bool) -> tuple[np.ndarray, ...]:
    """Return the training photos (``holdout=False``) or the held-out ones, as RGB uint8."""
    names = [n for n in _LOADERS if (n in HOLDOUT_NAMES) == holdout]
    photos = []
    for name in names:
        try:
            photos.append(_as_rgb(_LOADERS[name]()))
        except Exception as exc:  # one missing sample must not stop a training run
            logger.warning("skipping photo %s: %s", name, exc)
    if not photos:
        raise RuntimeError("no bundled photos found: install the training extra")
    return tuple(photos)
