"""The networks ``train`` can start from; all offline (nothing is downloaded at run time).

* ``small``: a ~160k-parameter CNN trained from scratch (the embedded model's architecture).
* ``broadcast``: the embedded broadcast monitor with its head replaced, fine-tuned.
* ``--base MODEL.keras``: any Keras classifier with its head replaced, fine-tuned; with
  ``--keep-head`` its head is kept (the same labels in the same order): training goes on from
  where the model is instead of relearning the last layer.

Every network takes float RGB in 0-255, which is what ``serve`` feeds by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streaming.training.training_errors import TrainingError

BACKBONES = ("small", "broadcast")
SMALL_DEFAULT_SIZE = 96


@dataclass(frozen=True)
class Backbone:
    """Which network to start from: ``name`` in :data:`BACKBONES`, or a ``base`` model file."""

    name: str = "small"
    base: Path | None = None
    keep_head: bool = False

    def __post_init__(self) -> None:
        if self.keep_head and self.base is None and self.name == "small":
            raise TrainingError("--keep-head goes with --base or --backbone broadcast")
        if self.base is None and self.name not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.name!r}")

    @property
    def pretrained(self) -> bool:
        return self.base is not None or self.name != "small"

    def describe(self) -> str:
        head = "head kept" if self.keep_head else "head replaced"
        if self.base is not None:
            return f"{self.base} ({head}, fine-tuned)"
        if self.name == "broadcast":
            return f"embedded broadcast monitor trunk ({head}, fine-tuned)"
        return "small CNN from scratch"

    def input_size(self, override: tuple[int, int] | None) -> tuple[int, int]:
        """``(height, width)`` frames must have: the backbone's own, else ``override`` or 96x96."""
        if not self.pretrained:
            return override or (SMALL_DEFAULT_SIZE, SMALL_DEFAULT_SIZE)
        model = _load(self._pretrained_path())
        height, width = model.inputs[0].shape[1:3]
        if None in (height, width):
            if override is None:
                raise TrainingError("the base model accepts any image size: pass --input-size WxH")
            return override
        if override is not None and override != (height, width):
            raise TrainingError(
                f"--input-size {override[1]}x{override[0]} contradicts the base model's {width}x{height}"
            )
        return int(height), int(width)

    def _pretrained_path(self) -> Path:
        if self.base is not None:
            return self.base
        from streaming import default_model

        return default_model.MODEL_PATH

    def build(self, num_classes: int, size: tuple[int, int] | None) -> Any:
        """The network for ``num_classes``; ``size`` is ``(height, width)`` or None for the default."""
        if self.pretrained and self.keep_head:
            return kept_head(_load(self._pretrained_path()), num_classes)
        if self.pretrained:
            return replace_head(_load(self._pretrained_path()), num_classes, size)
        height, width = size or (SMALL_DEFAULT_SIZE, SMALL_DEFAULT_SIZE)
        return small_network(num_classes, height, width)


def small_network(num_classes: int, height: int, width: int, name: str = "small_cnn") -> Any:
    """A small all-convolutional CNN from stock Keras layers, raw 0-255 RGB in, softmax out.

    Stride-2 convolutions keep the cost at ~20 MMAC per 96x96 frame; global average *and* max
    pooling let it see both "how much of the frame is X" (noise, black) and "is there any X"
    (a logo on black, a bar edge).
    """
    import keras
    from keras import layers

    inputs = keras.Input((height, width, 3), name="frame")
    x = layers.Rescaling(1.0 / 255.0)(inputs)  # the server feeds raw 0-255 floats

    def conv(x: Any, filters: int, stride: int = 1) -> Any:
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        # Momentum 0.9 (not 0.99): the moving statistics settle within a few dozen steps, which
        # is all a small user data set gives; with 0.99 validation runs on barely updated stats.
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    x = conv(x, 24, 2)
    x = conv(x, 32, 2)
    x = conv(x, 32)
    x = conv(x, 64, 2)
    x = conv(x, 64)
    x = conv(x, 128, 2)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(64, activation="relu")(x)
    # float32 output even under mixed precision: softmax in float16 loses small probabilities.
    outputs = layers.Dense(
        num_classes, activation="softmax", name="probabilities", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def _load(path: Path) -> Any:
    import keras

    if not path.is_file():
        raise TrainingError(f"base model not found: {path}")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for bad files
        raise TrainingError(f"cannot load base model {path}: {exc}") from exc


def kept_head(model: Any, num_classes: int) -> Any:
    """``model`` itself, to train on: its outputs must already be the ``num_classes`` labels."""
    outputs = model.outputs[0].shape
    if len(model.outputs) != 1 or len(outputs) != 2 or outputs[-1] != num_classes:
        raise TrainingError(
            f"--keep-head: base model {model.name} has outputs {tuple(outputs)}, not one "
            f"probability per label ({num_classes}); give the base model's labels in its order"
        )
    return model


def replace_head(model: Any, num_classes: int, size: tuple[int, int] | None) -> Any:
    """Cut ``model`` before its last Dense layer and put a new softmax layer there."""
    import keras

    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise TrainingError(f"base model {model.name} is not a one-input image classifier")
    height, width = model.inputs[0].shape[1:3]
    if size is not None and (height, width) != tuple(size) and None not in (height, width):
        raise TrainingError(
            f"--input-size {size[1]}x{size[0]} contradicts the base model's {width}x{height}"
        )
    if None in (height, width) and size is None:
        raise TrainingError("the base model accepts any image size: pass --input-size WxH")
    head = next(
        (layer for layer in reversed(model.layers) if isinstance(layer, keras.layers.Dense)), None
    )
    if head is None:
        raise TrainingError(f"base model {model.name} has no Dense layer to replace")
    features = head.input
    if len(features.shape) != 2:
        features = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="new_probabilities", dtype="float32"
    )(features)
    rebuilt = keras.Model(model.inputs, outputs, name=f"{model.name}_retrained")
    if None in (height, width):
        assert size is not None  # checked above
        inputs = keras.Input((size[0], size[1], model.inputs[0].shape[3]), name="frame")
        rebuilt = keras.Model(inputs, rebuilt(inputs), name=rebuilt.name)
    return rebuilt


def serving_copy(model: Any) -> Any:
    """The same network and weights in float32 and without optimizer state: the file to serve.

    Under mixed precision the trained layers compute in float16, which CPUs run slowly (or
    not at all); the server should get plain float32.
    """
    import keras

    config = _float32_policies(model.get_config())
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _float32_policies(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("name") in ("mixed_float16", "mixed_bfloat16") and len(value) == 1:
            return {"name": "float32"}
        return {key: _float32_policies(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_policies(item) for item in value]
    if value in ("mixed_float16", "mixed_bfloat16"):
        return "float32"
    return value
