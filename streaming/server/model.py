"""Model runtime: the small ``Classifier`` protocol the batcher uses, and its TensorFlow implementation.

TensorFlow is imported lazily so that clients and tools importing ``streaming`` stay light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streaming.server.labels import load_labels, match_labels
from streaming.server.serve_config import ModelConfig
from streaming.server.server_errors import ConfigError, InferenceError, ModelLoadError
from streaming.server.server_values import ModelDescription
from streaming.server.tensorflow_runtime import import_tensorflow

logger = logging.getLogger(__name__)


class Classifier(Protocol):
    """What the batcher needs from a model. Called from one thread at a time."""

    @property
    def description(self) -> ModelDescription: ...

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        """Classify images given as uint8 ``(n, h, w, c)`` groups (each group one size).

        Returns:
            float32 ``(sum of n, num_labels)`` probabilities, rows in group order.
        """
        ...

    def warm_up(self, max_batch: int) -> None: ...


class NullClassifier:
    """Returns fixed probabilities without touching TensorFlow: measures the server's own cost."""

    def __init__(
        self, num_classes: int, input_size: tuple[int, int] = (224, 224), channels: int = 3
    ) -> None:
        logits = np.linspace(1.0, 0.0, num_classes, dtype=np.float32)
        self._probs = (np.exp(logits) / np.exp(logits).sum()).astype(np.float32)
        self._description = ModelDescription(
            labels=tuple(f"class_{i}" for i in range(num_classes)),
            input_width=input_size[0],
            input_height=input_size[1],
            input_channels=channels,
            model_name="null",
            device="none",
        )

    @property
    def description(self) -> ModelDescription:
        return self._description

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(self._probs, (sum(len(g) for g in groups), 1))

    def warm_up(self, max_batch: int) -> None:
        return None


def _import_tensorflow() -> Any:
    try:
        tf = import_tensorflow()
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError(
            "the server needs TensorFlow: pip install 'stream-classification[server]'"
        ) from exc
    return tf


def configure_runtime(tf: Any, config: ModelConfig) -> None:
    """Threads per model call and each GPU's memory, set before TensorFlow's runtime starts.

    Several server processes on one GPU (``serve --processes N``) must not each take the whole
    device's memory, as TensorFlow does by default: each GPU gets memory growth, or with
    ``gpu_memory_mb`` one logical device with that memory limit (the two exclude each other).
    Once the runtime has started (another model in this process) both are fixed: logged.
    """
    if config.intra_op_threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
        except RuntimeError:
            logger.debug("intra-op threads already fixed for this process")
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            if config.gpu_memory_mb is None:
                tf.config.experimental.set_memory_growth(gpu, True)
            else:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=config.gpu_memory_mb)]
                )
        except RuntimeError:
            # The runtime is already initialised (another model in this process): it is fixed.
            logger.debug("memory growth or limit already fixed for %s", gpu.name)


def select_device(tf: Any, preference: str) -> str:
    """Pick the TensorFlow device (``configure_runtime`` has set the GPUs' memory first)."""
    gpus = tf.config.list_physical_devices("GPU")
    if preference == "auto":
        return "/GPU:0" if gpus else "/CPU:0"
    if preference == "cpu":
        return "/CPU:0"
    if preference == "gpu":
        if not gpus:
            raise ConfigError("--device gpu was asked for but TensorFlow sees no GPU")
        return "/GPU:0"
    return preference


class TensorFlowClassifier:
    """A Keras (``.keras``/``.h5``) or SavedModel classifier with preprocessing compiled beside it.

    Preprocessing (resize, dtype, scaling) and the model share one device and run as one
    ``tf.function`` with a fixed input signature, so batches of any size never retrace and
    frames are uploaded as uint8 (a quarter of the float bytes) when the device is a GPU.
    """

    def __init__(self, config: ModelConfig, labels: tuple[str, ...] | None = None) -> None:
        if config.model_path is None:
            raise ConfigError("TensorFlowClassifier needs a model path")
        tf = _import_tensorflow()
        self._tf = tf
        configure_runtime(tf, config)
        self._device = select_device(tf, config.device)
        path = Path(config.model_path)
        with tf.device(self._device):
            forward, input_shape = _load_model(tf, path)
            height, width, channels = _input_size(input_shape, config.input_size, path)
            self._size = (height, width)
            self._preprocess = make_preprocess(tf, config, height, width, channels)
            num_outputs, is_probability = _probe_outputs(
                tf, forward, self._preprocess, height, width, channels
            )
            apply_softmax = config.softmax == "always" or (
                config.softmax == "auto" and not is_probability
            )
            logger.info(
                "model outputs %s: %s softmax (--softmax %s)",
                "probabilities" if is_probability else "logits",
                "applying" if apply_softmax else "no",
                config.softmax,
            )
            self._forward = _make_forward(tf, forward, height, width, channels, apply_softmax)
            self._classify = _make_classify(tf, self._preprocess, self._forward, channels)
        self._description = ModelDescription(
            labels=match_labels(labels, num_outputs, str(config.labels_path or "the labels")),
            input_width=width,
            input_height=height,
            input_channels=channels,
            model_name=path.stem if path.is_file() else path.name,
            device=self._device,
        )

    @property
    def description(self) -> ModelDescription:
        return self._description

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        tf = self._tf
        try:
            with tf.device(self._device):
                if len(groups) == 1:  # the usual case: one graph from uint8 pixels to probabilities
                    out = self._classify(tf.convert_to_tensor(groups[0]))
                else:
                    parts = [self._preprocess(tf.convert_to_tensor(group)) for group in groups]
                    out = self._forward(tf.concat(parts, axis=0))
                return np.asarray(out.numpy(), dtype=np.float32)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise InferenceError(f"model call failed: {exc}") from exc

    def warm_up(self, max_batch: int) -> None:
        """Run both signatures once (and a resize) so the first real batch pays no tracing."""
        height, width = self._size
        channels = self._description.input_channels
        blank = np.zeros((1, height, width, channels), np.uint8)
        for size in sorted({1, max_batch}):
            self.predict([np.zeros((size, height, width, channels), np.uint8)])
        odd = np.zeros((1, height + 7, width + 5, channels), np.uint8)
        self.predict([odd])
        self.predict([blank, odd])  # frames of two sizes in one batch take the two-step path


def _load_model(tf: Any, path: Path) -> tuple[Callable[[Any], Any], tuple[Any, ...]]:
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir():
        return _load_saved_model(tf, path)
    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(
            f"unsupported model file {path}: expected .keras, .h5 or a SavedModel directory"
        )
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for bad files
        raise ModelLoadError(f"cannot load Keras model {path}: {exc}") from exc
    if len(model.inputs) != 1:
        raise ModelLoadError(
            f"model {path} has {len(model.inputs)} inputs; an image classifier needs one"
        )
    return (lambda x: model(x, training=False)), tuple(model.inputs[0].shape)


def _load_saved_model(tf: Any, path: Path) -> tuple[Callable[[Any], Any], tuple[Any, ...]]:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"cannot load SavedModel {path}: {exc}") from exc
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ModelLoadError(
            f"SavedModel {path} has no serving_default signature (has {list(loaded.signatures)})"
        )
    _, inputs = signature.structured_input_signature
    if len(inputs) != 1:
        raise ModelLoadError(
            f"SavedModel {path} takes {len(inputs)} inputs; an image classifier needs one"
        )
    input_name, spec = next(iter(inputs.items()))
    outputs = sorted(signature.structured_outputs)
    if len(outputs) > 1:
        logger.warning("SavedModel %s has outputs %s: using %s", path, outputs, outputs[0])
    output_name = outputs[0]

    def forward(x: Any) -> Any:
        return signature(**{input_name: tf.cast(x, spec.dtype)})[output_name]

    # Keep the loaded object alive: the signature refers to its variables.
    forward.loaded = loaded  # type: ignore[attr-defined]
    return forward, tuple(spec.shape)


def _input_size(
    shape: tuple[Any, ...], override: tuple[int, int] | None, path: Path
) -> tuple[int, int, int]:
    if len(shape) != 4:
        raise ModelLoadError(
            f"model {path} takes input of shape {shape}; expected (batch, height, width, channels)"
        )
    height, width, channels = shape[1], shape[2], shape[3]
    if channels not in (1, 3):
        raise ModelLoadError(
            f"model {path} takes {channels} channels; only 1 (grey) or 3 (RGB) are supported"
        )
    if override is not None:
        width_o, height_o = override
        if (height not in (None, height_o)) or (width not in (None, width_o)):
            raise ModelLoadError(
                f"--input-size {width_o}x{height_o} contradicts the model's {width}x{height}"
            )
        height, width = height_o, width_o
    if height is None or width is None:
        raise ModelLoadError(f"model {path} accepts any image size: pass --input-size WIDTHxHEIGHT")
    return int(height), int(width), int(channels)


def make_preprocess(tf: Any, config: ModelConfig, height: int, width: int, channels: int) -> Any:
    """uint8 ``(n, h, w, c)`` frames of any size to the model's float input (``streaming.training``
    uses it too, so a model is trained on frames resized exactly as the server resizes them)."""
    mean = tf.constant(config.mean[:channels] if channels == 1 else config.mean, tf.float32)
    std = tf.constant(config.std[:channels] if channels == 1 else config.std, tf.float32)
    if config.scaling == "meanstd" and len(config.mean) not in (1, channels):
        raise ConfigError(f"--mean/--std need 1 or {channels} values")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8)])
    def preprocess(images: Any) -> Any:
        x = tf.cast(images, tf.float32)
        shape = tf.shape(x)
        same = tf.logical_and(tf.equal(shape[1], height), tf.equal(shape[2], width))
        # Antialiasing keeps large downscales (1080p to 224) from aliasing; skipped when sizes match.
        x = tf.cond(same, lambda: x, lambda: tf.image.resize(x, (height, width), antialias=True))
        x = tf.ensure_shape(x, [None, height, width, channels])
        if config.scaling == "unit":
            x = x / 255.0
        elif config.scaling == "meanstd":
            x = (x / 255.0 - mean) / std
        return x

    return preprocess


def _make_forward(
    tf: Any,
    forward: Callable[[Any], Any],
    height: int,
    width: int,
    channels: int,
    apply_softmax: bool,
) -> Any:
    @tf.function(input_signature=[tf.TensorSpec([None, height, width, channels], tf.float32)])
    def run(x: Any) -> Any:
        y = tf.cast(forward(x), tf.float32)
        return tf.nn.softmax(y, axis=-1) if apply_softmax else y

    return run


def _make_classify(tf: Any, preprocess: Any, forward: Any, channels: int) -> Any:
    # One graph for preprocessing and model: TensorFlow fuses the cast and scaling into the first
    # layers and keeps no float copy of the batch between two calls (~6% faster on MobileNetV3).
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8)])
    def classify(images: Any) -> Any:
        return forward(preprocess(images))

    return classify


def _probe_outputs(
    tf: Any, forward: Callable[[Any], Any], preprocess: Any, height: int, width: int, channels: int
) -> tuple[int, bool]:
    """Run random images once: the output width, and whether rows already look like probabilities."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, height, width, channels), dtype=np.uint8)
    try:
        out = np.asarray(forward(preprocess(tf.convert_to_tensor(images))))
    except Exception as exc:
        raise ModelLoadError(
            f"model call on a {height}x{width}x{channels} test batch failed: {exc}"
        ) from exc
    if out.ndim != 2 or out.shape[0] != 4:
        raise ModelLoadError(
            f"model output has shape {out.shape[1:]}; a classifier returns one vector per image"
        )
    return int(out.shape[1]), rows_are_probabilities(out)


def rows_are_probabilities(out: np.ndarray) -> bool:
    """Whether every row is already a probability vector (in [0, 1], summing to 1)."""
    return bool(
        np.all(out >= -1e-6)
        and np.all(out <= 1 + 1e-6)
        and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
    )


def load_classifier(config: ModelConfig) -> Classifier:
    """Build the classifier the configuration asks for (the embedded model when no path is given)."""
    if config.null_classes:
        return NullClassifier(config.null_classes, config.input_size or (224, 224))
    labels = load_labels(config.labels_path) if config.labels_path else None
    if config.model_path is None:
        from streaming import default_model

        if not default_model.MODEL_PATH.exists():
            raise ModelLoadError(
                f"the embedded model is missing from the installation ({default_model.MODEL_PATH})"
            )
        if labels is None:
            labels = load_labels(default_model.LABELS_PATH)
        config = replace(config, model_path=default_model.MODEL_PATH)
    if config.model_path is not None and Path(config.model_path).suffix.lower() == ".onnx":
        # Its own module: ONNX Runtime is an optional extra, imported only for .onnx files.
        from streaming.server.onnx_model import OnnxClassifier

        return OnnxClassifier(config, labels)
    return TensorFlowClassifier(config, labels)
