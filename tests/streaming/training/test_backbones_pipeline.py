"""Backbones (head replacement, the float32 serving copy) and the seeded ``tf.data`` pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.training.backbones import Backbone, serving_copy, small_network
from streaming.training.input_pipeline import Augmentation, training_dataset

# Real networks in TensorFlow: the end-to-end tier. TensorFlow is imported inside the tests, so
# collecting the unit tier (-m "not slow") never loads it.
pytestmark = pytest.mark.slow


def test_serving_copy_of_a_mixed_precision_model_is_float32() -> None:
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = small_network(3, 32, 32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[2].compute_dtype == "float16"

    copy = serving_copy(model)

    assert {layer.compute_dtype for layer in copy.layers if layer.weights} == {"float32"}
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(copy(x), model(x), atol=2e-2)


def test_broadcast_backbone_keeps_the_embedded_trunk() -> None:
    import keras

    backbone = Backbone("broadcast")
    assert backbone.input_size(None) == (96, 96) and backbone.pretrained
    model = backbone.build(5, (96, 96))
    assert model.outputs[0].shape[-1] == 5
    embedded = keras.models.load_model(
        __import__("streaming.default_model", fromlist=["MODEL_PATH"]).MODEL_PATH, compile=False
    )
    trunk_layer = next(layer for layer in embedded.layers if layer.name.startswith("conv2d"))
    np.testing.assert_array_equal(
        model.get_layer(trunk_layer.name).get_weights()[0], trunk_layer.get_weights()[0]
    )


@pytest.mark.parametrize(
    "labels, keeps",
    [
        (4, True),  # the embedded model's own four labels: its last layer goes on training
        (5, False),  # another label count: refused, it would need a new head
    ],
)
def test_keep_head_goes_on_from_the_models_own_last_layer(labels: int, keeps: bool) -> None:
    from streaming.training.training_errors import TrainingError

    backbone = Backbone("broadcast", keep_head=True)
    assert "head kept" in backbone.describe()
    if not keeps:
        with pytest.raises(TrainingError, match="one probability per label"):
            backbone.build(labels, (96, 96))
        return
    model = backbone.build(labels, (96, 96))
    embedded = Backbone("broadcast").build(labels, (96, 96))  # head replaced
    x = np.random.default_rng(0).integers(0, 255, (2, 96, 96, 3)).astype(np.float32)
    reference = __import__("keras").models.load_model(
        __import__("streaming.default_model", fromlist=["MODEL_PATH"]).MODEL_PATH, compile=False
    )
    np.testing.assert_allclose(model(x), reference(x), atol=1e-5)  # the same answers
    assert not np.allclose(embedded(x), reference(x), atol=1e-3)


def test_keep_head_needs_a_pretrained_model() -> None:
    from streaming.training.training_errors import TrainingError

    with pytest.raises(TrainingError, match="--keep-head goes with"):
        Backbone("small", keep_head=True)


def first_batch(seed: int) -> np.ndarray:
    import tensorflow as tf

    images = np.random.default_rng(1).integers(0, 255, (12, 24, 24, 3), dtype=np.uint8)
    data = training_dataset(
        tf, images, np.arange(12) % 3, batch_size=4, seed=seed, augmentation=Augmentation()
    )
    return next(iter(data))[0].numpy()


def test_augmented_batches_repeat_for_a_seed_and_change_with_it() -> None:
    a, b, c = first_batch(5), first_batch(5), first_batch(6)
    assert a.shape == (4, 24, 24, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 255.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
