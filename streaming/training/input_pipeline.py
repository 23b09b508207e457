"""``tf.data`` pipelines: frames stay uint8 in memory, are augmented in parallel, and prefetched.

Augmentations imitate what happens to video frames on the way to the server: reframing
(crop), exposure (brightness/contrast), compression (JPEG) and low-resolution sources
(downscale then upscale). Every random choice comes from a stateless op seeded from
``tf.data.Dataset.random(seed)``, so a run is repeatable for a given ``--seed`` even with
parallel calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Strength of each augmentation; ``Augmentation.none()`` turns them all off.

    Attributes:
        min_crop: smallest crop side as a fraction of the frame (1 = no crop).
        flip: mirror left-right at random (off when text or layout carries the label).
        brightness: largest brightness shift, in 0-255 levels.
        contrast: contrast factor range ``(1 - contrast, 1 + contrast)``.
        jpeg_probability: share of frames re-encoded as JPEG at quality 25-90.
        downscale_probability: share of frames shrunk to 35-100 % and scaled back.
    """

    min_crop: float = 0.8
    flip: bool = True
    brightness: float = 25.0
    contrast: float = 0.25
    jpeg_probability: float = 0.5
    downscale_probability: float = 0.3

    def __post_init__(self) -> None:
        if not 0.1 <= self.min_crop <= 1.0:
            raise ValueError("min_crop must be in [0.1, 1]")
        if not (0 <= self.jpeg_probability <= 1 and 0 <= self.downscale_probability <= 1):
            raise ValueError("probabilities must be in [0, 1]")
        if self.brightness < 0 or not 0 <= self.contrast < 1:
            raise ValueError("brightness must be >= 0 and contrast in [0, 1)")

    @staticmethod
    def none() -> Augmentation:
        return Augmentation(1.0, False, 0.0, 0.0, 0.0, 0.0)


def make_augment(tf: Any, augmentation: Augmentation, height: int, width: int) -> Any:
    """A function ``(uint8 image, int64[2] seed) -> float32 image in 0-255``."""
    a = augmentation

    def coin(seed: Any, probability: float) -> Any:
        return tf.random.stateless_uniform([], seed) < probability

    def augment(image: Any, seed: Any) -> Any:
        seeds = tf.random.experimental.stateless_split(seed, num=9)
        x = tf.cast(image, tf.float32)
        if a.min_crop < 1.0:
            scale = tf.random.stateless_uniform([], seeds[0], a.min_crop, 1.0)
            crop_h = tf.cast(tf.round(scale * height), tf.int32)
            crop_w = tf.cast(tf.round(scale * width), tf.int32)
            x = tf.image.stateless_random_crop(x, tf.stack([crop_h, crop_w, 3]), seeds[1])
            x = tf.image.resize(x, (height, width), antialias=True)
        if a.flip:
            x = tf.image.stateless_random_flip_left_right(x, seeds[2])
        if a.brightness > 0:
            x = x + tf.random.stateless_uniform([], seeds[3], -a.brightness, a.brightness)
        if a.contrast > 0:
            x = tf.image.stateless_random_contrast(x, 1 - a.contrast, 1 + a.contrast, seeds[4])
        x = tf.clip_by_value(x, 0.0, 255.0)
        if a.downscale_probability > 0:
            factor = tf.random.stateless_uniform([], seeds[5], 0.35, 1.0)
            small = tf.maximum(
                tf.cast(tf.round(factor * tf.constant([height, width], tf.float32)), tf.int32), 4
            )
            x = tf.cond(
                coin(seeds[6], a.downscale_probability),
                lambda: tf.image.resize(tf.image.resize(x, small, antialias=True), (height, width)),
                lambda: x,
            )
        if a.jpeg_probability > 0:
            as_uint8 = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)
            x = tf.cond(
                coin(seeds[7], a.jpeg_probability),
                lambda: tf.cast(
                    tf.image.stateless_random_jpeg_quality(as_uint8, 25, 90, seeds[8]), tf.float32
                ),
                lambda: x,
            )
        return tf.ensure_shape(tf.clip_by_value(x, 0.0, 255.0), [height, width, 3])

    return augment


def training_dataset(
    tf: Any,
    images: np.ndarray,
    label_ids: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    augmentation: Augmentation,
) -> Any:
    """Shuffled (anew each epoch), augmented in parallel, batched and prefetched."""
    height, width = images.shape[1:3]
    augment = make_augment(tf, augmentation, height, width)
    data = tf.data.Dataset.from_tensor_slices((images, label_ids.astype(np.int32))).shuffle(
        len(images), seed=seed, reshuffle_each_iteration=True
    )
    # One seed pair per element: the same element gets other draws in other epochs because
    # the shuffle moves it to another position.
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    data = tf.data.Dataset.zip((data, seeds)).map(
        lambda item, s: (augment(item[0], s), item[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    tf: Any, images: np.ndarray, label_ids: np.ndarray | None = None, *, batch_size: int
) -> Any:
    """Frames as they are (cast in the pipeline, so memory holds uint8 only)."""
    parts: Any = images if label_ids is None else (images, label_ids.astype(np.int32))
    data = tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)
    cast = (
        (lambda x: tf.cast(x, tf.float32))
        if label_ids is None
        else (lambda x, y: (tf.cast(x, tf.float32), y))
    )
    return data.map(cast, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
