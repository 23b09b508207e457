"""The TensorFlow runtime: model formats, input size, softmax detection, no retracing, labels."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streaming.server.labels import load_labels
from streaming.server.model import NullClassifier, TensorFlowClassifier, load_classifier
from streaming.server.serve_config import ModelConfig
from streaming.server.server_errors import LabelsError, ModelLoadError

pytestmark = pytest.mark.timeout(120)


def reference_probabilities(model_path: Path, images: np.ndarray) -> np.ndarray:
    import keras

    model = keras.models.load_model(model_path, compile=False)
    return np.asarray(model(images.astype(np.float32), training=False))


def images(count: int, height: int = 24, width: int = 32, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(count).integers(
        0, 256, size=(count, height, width, channels), dtype=np.uint8
    )


def test_keras_model_matches_keras_itself(tiny_model: Any, tiny_classifier: Any) -> None:
    batch = images(5)
    np.testing.assert_allclose(
        tiny_classifier.predict([batch]),
        reference_probabilities(tiny_model.model_path, batch),
        atol=1e-5,
    )


def test_groups_of_different_sizes_are_resized_and_kept_in_order(tiny_classifier: Any) -> None:
    small, large = images(2), images(3, 96, 128)
    out = tiny_classifier.predict([small, large])
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out[:2], tiny_classifier.predict([small]), atol=1e-6)


def test_batches_of_any_size_never_retrace(tiny_classifier: Any) -> None:
    for count in (1, 3, 7, 32, 5):
        tiny_classifier.predict([images(count)])
    tiny_classifier.predict([images(2, 50, 60)])
    tiny_classifier.predict([images(2), images(1, 50, 60)])
    tiny_classifier.predict([images(4, 30, 20), images(3)])
    assert tiny_classifier._classify.experimental_get_tracing_count() == 1
    assert tiny_classifier._preprocess.experimental_get_tracing_count() == 1
    assert tiny_classifier._forward.experimental_get_tracing_count() == 1


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same kind of tiny model in each supported format and flavour."""
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("variants")
    keras.utils.set_random_seed(3)

    def model(
        channels: int = 3, activation: str | None = "softmax", size: tuple[int, int] = (24, 32)
    ) -> Any:
        inputs = keras.Input((*size, channels))
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(x))
        return keras.Model(inputs, keras.layers.Dense(3, activation=activation)(x))

    paths = {
        "keras": folder / "m.keras",
        "h5": folder / "m.h5",
        "logits": folder / "logits.keras",
        "grey": folder / "grey.keras",
    }
    model().save(paths["keras"])
    model().save(paths["h5"])
    model(activation=None).save(paths["logits"])
    model(channels=1).save(paths["grey"])
    saved = model()
    paths["savedmodel"] = folder / "savedmodel"
    tf.saved_model.save(
        saved,
        str(paths["savedmodel"]),
        signatures=tf.function(
            lambda x: {"probs": saved(x)},
            input_signature=[tf.TensorSpec([None, 24, 32, 3], tf.float32)],
        ),
    )
    any_size = model(size=(None, None))  # type: ignore[arg-type]
    paths["any-size"] = folder / "any.keras"
    any_size.save(paths["any-size"])
    return paths


@pytest.mark.slow  # real models of each format, in TensorFlow
@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel", "logits", "grey"])
def test_every_model_format_loads_and_returns_probabilities(
    variants: dict[str, Path], fmt: str
) -> None:
    classifier = TensorFlowClassifier(ModelConfig(model_path=variants[fmt]))
    d = classifier.description
    channels = 1 if fmt == "grey" else 3
    assert (d.input_width, d.input_height, d.input_channels) == (32, 24, channels)
    assert d.labels == ("class_0", "class_1", "class_2")
    out = classifier.predict([images(4, channels=channels)])
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)  # logits got a softmax


@pytest.mark.slow  # real models of each format, in TensorFlow
def test_logits_are_left_alone_when_asked(variants: dict[str, Path]) -> None:
    out = TensorFlowClassifier(ModelConfig(model_path=variants["logits"], softmax="never")).predict(
        [images(4)]
    )
    assert not np.allclose(out.sum(axis=1), 1.0, atol=1e-3)


SCALINGS = [
    pytest.param("raw", lambda x: x, id="raw"),
    pytest.param("unit", lambda x: x / 255.0, id="unit"),
    pytest.param("meanstd", lambda x: (x / 255.0 - 0.5) / 0.25, id="meanstd"),
]


@pytest.mark.slow  # real models of each format, in TensorFlow
@pytest.mark.parametrize(("scaling", "transform"), SCALINGS)
def test_scaling_modes_feed_the_model_what_they_say(
    variants: dict[str, Path], scaling: str, transform: Any
) -> None:
    import keras

    config = ModelConfig(
        model_path=variants["logits"],
        scaling=scaling,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        softmax="never",
    )  # type: ignore[arg-type]
    batch = images(3)
    expected = np.asarray(
        keras.models.load_model(variants["logits"], compile=False)(
            transform(batch.astype(np.float32))
        )
    )
    np.testing.assert_allclose(TensorFlowClassifier(config).predict([batch]), expected, atol=1e-4)


MODEL_ERRORS = [
    pytest.param(
        lambda v, t: ModelConfig(model_path=t / "missing.keras"), "model not found", id="missing"
    ),
    pytest.param(
        lambda v, t: ModelConfig(model_path=t / "model.onnx"),
        "unsupported model file",
        id="wrong-suffix",
    ),
    pytest.param(
        lambda v, t: ModelConfig(model_path=t / "broken.keras"),
        "cannot load Keras model",
        id="corrupt",
    ),
    pytest.param(
        lambda v, t: ModelConfig(model_path=v["any-size"]), "pass --input-size", id="any-size"
    ),
    pytest.param(
        lambda v, t: ModelConfig(model_path=v["keras"], input_size=(64, 64)),
        "contradicts",
        id="size-conflict",
    ),
]


@pytest.mark.slow  # real models of each format, in TensorFlow
@pytest.mark.parametrize(("make_config", "message"), MODEL_ERRORS)
def test_unusable_models_fail_with_a_clear_message(
    variants: dict[str, Path], tmp_path: Path, make_config: Any, message: str
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "broken.keras").write_bytes(b"PK not really a zip")
    with pytest.raises(ModelLoadError, match=message):
        TensorFlowClassifier(make_config(variants, tmp_path))


@pytest.mark.slow  # real models of each format, in TensorFlow
def test_any_size_model_takes_the_given_input_size(variants: dict[str, Path]) -> None:
    classifier = TensorFlowClassifier(
        ModelConfig(model_path=variants["any-size"], input_size=(40, 30))
    )
    assert (classifier.description.input_width, classifier.description.input_height) == (40, 30)


def test_null_classifier_needs_no_tensorflow() -> None:
    classifier = load_classifier(ModelConfig(null_classes=4))
    assert isinstance(classifier, NullClassifier)
    out = classifier.predict([images(2), images(3, 10, 10)])
    assert out.shape == (5, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)


class Exploit:
    def __reduce__(self) -> Any:
        return (os.system, ("touch /tmp/sc-labels-pwned",))


LABEL_FILES = [
    pytest.param(
        "l.pkl", pickle.dumps({"b": 1, "a": 0, "c": 2}), ("a", "b", "c"), id="old-pickle-dict"
    ),
    pytest.param("l.txt", b"a\nb\n\nc\n", ("a", "b", "c"), id="txt"),
    pytest.param("l.json", json.dumps(["a", "b", "c"]).encode(), ("a", "b", "c"), id="json-list"),
    pytest.param(
        "l.json", json.dumps({"c": 2, "a": 0, "b": 1}).encode(), ("a", "b", "c"), id="json-dict"
    ),
    pytest.param(
        "l.pkl", pickle.dumps(Exploit()), "only dicts of str to int", id="malicious-pickle"
    ),
    pytest.param("l.pkl", pickle.dumps({"a": 0, "b": 2}), "without gaps", id="gap"),
    pytest.param("l.pkl", pickle.dumps({"a": "0"}), "integer indices", id="str-index"),
    pytest.param("l.pkl", b"garbage", "not a pickled label dict", id="garbage"),
    pytest.param("l.json", b"{", "not valid JSON", id="bad-json"),
    pytest.param("l.txt", b"a\na\n", "repeats a label", id="duplicate"),
    pytest.param("l.txt", b"\n", "holds no labels", id="empty"),
]


@pytest.mark.parametrize(("name", "content", "expected"), LABEL_FILES)
def test_label_files(tmp_path: Path, name: str, content: bytes, expected: Any) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    if isinstance(expected, tuple):
        assert load_labels(path) == expected
    else:
        with pytest.raises(LabelsError, match=expected):
            load_labels(path)
    assert not Path("/tmp/sc-labels-pwned").exists()


class FakeTensorFlowConfig:
    """``tf.config`` as far as configure_runtime uses it: records the calls, on two GPUs."""

    def __init__(self, started: bool = False) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.started = started  # TensorFlow refuses every change once its runtime started
        self.threading = self
        self.experimental = self

    def LogicalDeviceConfiguration(self, memory_limit: int) -> tuple[str, int]:  # noqa: N802
        return ("logical", memory_limit)

    def _record(self, name: str, device: Any, value: Any) -> None:
        if self.started:
            raise RuntimeError("runtime already initialised")
        self.calls.append((name, device, value))

    def list_physical_devices(self, kind: str) -> list[Any]:
        return [type("Gpu", (), {"name": f"/GPU:{i}"})() for i in range(2)]

    def set_intra_op_parallelism_threads(self, n: int) -> None:
        self._record("threads", None, n)

    def set_memory_growth(self, gpu: Any, on: bool) -> None:
        self._record("growth", gpu.name, on)

    def set_logical_device_configuration(self, gpu: Any, devices: list[Any]) -> None:
        self._record("limit", gpu.name, devices)


@pytest.mark.parametrize(
    ("config", "started", "expected"),
    [
        pytest.param(
            ModelConfig(),
            False,
            [("growth", "/GPU:0", True), ("growth", "/GPU:1", True)],
            id="default-memory-growth",
        ),
        pytest.param(
            ModelConfig(gpu_memory_mb=2048, intra_op_threads=4),
            False,
            [
                ("threads", None, 4),
                ("limit", "/GPU:0", [("logical", 2048)]),
                ("limit", "/GPU:1", [("logical", 2048)]),
            ],
            id="per-process-limit-and-threads",
        ),
        pytest.param(
            ModelConfig(gpu_memory_mb=2048, intra_op_threads=4),
            True,
            [],
            id="runtime-started-left-as-it-is",
        ),
    ],
)
def test_runtime_gets_its_threads_and_a_share_of_each_gpu(
    config: ModelConfig, started: bool, expected: list[tuple[str, Any, Any]]
) -> None:
    from types import SimpleNamespace

    from streaming.server.model import configure_runtime

    fake = FakeTensorFlowConfig(started)
    configure_runtime(SimpleNamespace(config=fake), config)
    assert fake.calls == expected
