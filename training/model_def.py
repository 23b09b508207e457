"""The broadcast monitor network: a small all-convolutional CNN built from stock Keras layers."""

from __future__ import annotations

import keras
from keras import layers

INPUT_SIZE = 96


def build_model(num_classes: int, size: int = INPUT_SIZE) -> keras.Model:
    """A ~100k-parameter CNN that takes raw 0-255 RGB and returns softmax probabilities.

    Stride-2 convolutions keep the cost at ~20 MMAC per frame; global average *and* max
    pooling let it see both "how much of the frame is X" (noise, black) and "is there any X"
    (a logo on black, a bar edge).
    """
    inputs = keras.Input((size, size, 3), name="frame")
    x = layers.Rescaling(1.0 / 255.0)(inputs)  # the server feeds raw 0-255 floats

    def conv(x: keras.KerasTensor, filters: int, stride: int = 1) -> keras.KerasTensor:
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    x = conv(x, 24, 2)  # 48
    x = conv(x, 32, 2)  # 24
    x = conv(x, 32)
    x = conv(x, 64, 2)  # 12
    x = conv(x, 64)
    x = conv(x, 128, 2)  # 6
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="broadcast_monitor")
