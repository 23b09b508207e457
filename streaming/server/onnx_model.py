"""The ONNX Runtime implementation of the ``Classifier`` protocol (``-la model.onnx``).

ONNX Runtime is an optional extra (``pip install 'stream-classification[onnx]'``), imported only
when an ``.onnx`` model is loaded: a server without it starts, and serves TensorFlow models.

What the server needs to feed the model is read from its input where the model says it: the
size from fixed dimensions, the dtype from the input type, and the layout from where the 1 or 3
channels sit (NCHW when dimension 1 is 1 or 3 and the last is not, NHWC the other way round).
What a model cannot say is set by flags: ``--onnx-layout`` when both readings fit (or neither),
``--input-size`` for dynamic sizes, and ``--scaling``/``--mean``/``--std`` for float inputs
(PyTorch models usually want ``--scaling meanstd``; a uint8 input takes the pixels as they are).
Outputs that are not probabilities get a softmax under ``--softmax auto``, as with TensorFlow.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from client.resize import resize_to
from streaming.server.labels import match_labels
from streaming.server.model import rows_are_probabilities
from streaming.server.serve_config import ModelConfig, OnnxLayout, Scaling
from streaming.server.server_errors import ConfigError, InferenceError, ModelLoadError
from streaming.server.server_values import ModelDescription

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'stream-classification[onnx]'"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

Layout = Literal["nhwc", "nchw"]
# What ONNX Runtime reports as an input's type, and the numpy dtype the server feeds it.
INPUT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
}
_CHANNELS = (1, 3)
_GPU_NAME = re.compile(r"^(?:/?gpu:|cuda:)(\d+)$", re.IGNORECASE)

Provider = str | tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class OnnxInput:
    """How frames become the model's input: read from the model, completed by flags.

    Attributes:
        name: the input's name in the graph.
        layout: ``nhwc`` or ``nchw``.
        height, width, channels: the image the model takes (channels 1 or 3).
        dtype: what the input holds: uint8 pixels, or floats scaled by ``--scaling``.
        batch: the fixed batch size of models exported without a dynamic batch, else ``None``.
    """

    name: str
    layout: Layout
    height: int
    width: int
    channels: int
    dtype: np.dtype[Any]
    batch: int | None = None


def _fixed(dim: object) -> int | None:
    """A dimension's size, or ``None`` when it is symbolic (``"batch"``) or unknown."""
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def read_input(
    name: str,
    shape: Sequence[object],
    onnx_type: str,
    *,
    layout: OnnxLayout = "auto",
    input_size: tuple[int, int] | None = None,
    scaling: Scaling = "raw",
    source: str = "the model",
) -> OnnxInput:
    """Complete what an ONNX model's input says about itself with the flags.

    Args:
        name, shape, onnx_type: the input as ONNX Runtime reports it (``shape`` holds ints for
            fixed dimensions, strings or ``None`` for the others; ``onnx_type`` e.g.
            ``"tensor(float)"``).
        layout: ``--onnx-layout``; ``auto`` reads it from where the 1 or 3 channels are.
        input_size: ``--input-size`` (width, height), for dynamic sizes; must agree with fixed ones.
        scaling: ``--scaling``; only ``raw`` is possible for a uint8 input.
        source: how error messages name the model.

    Raises:
        ModelLoadError: the input cannot be fed images, or the flags contradict the model.

    >>> read_input("x", ["batch", 3, 224, 224], "tensor(float)")
    OnnxInput(name='x', layout='nchw', height=224, width=224, channels=3, dtype=dtype('float32'), batch=None)
    """
    if len(shape) != 4:
        raise ModelLoadError(
            f"{source} takes input of shape {list(shape)}; an image classifier takes "
            "(batch, height, width, channels) or (batch, channels, height, width)"
        )
    dims = [_fixed(d) for d in shape]
    chosen = _layout(dims, layout, shape, source)
    channels = dims[1] if chosen == "nchw" else dims[3]
    if channels not in _CHANNELS:
        given = "not fixed" if channels is None else str(channels)
        raise ModelLoadError(
            f"{source} has {given} channels in its {chosen.upper()} input {list(shape)}; "
            "only 1 (grey) or 3 (RGB) are supported"
        )
    height, width = (dims[2], dims[3]) if chosen == "nchw" else (dims[1], dims[2])
    if input_size is not None:
        width_o, height_o = input_size
        if height not in (None, height_o) or width not in (None, width_o):
            raise ModelLoadError(
                f"--input-size {width_o}x{height_o} contradicts {source}'s {width}x{height}"
            )
        height, width = height_o, width_o
    if height is None or width is None:
        raise ModelLoadError(
            f"{source} accepts any image size ({list(shape)}): pass --input-size WIDTHxHEIGHT"
        )
    dtype = INPUT_DTYPES.get(onnx_type)
    if dtype is None:
        raise ModelLoadError(
            f"{source} takes {onnx_type}; the server feeds images as uint8 or float "
            f"({', '.join(sorted(INPUT_DTYPES))})"
        )
    if dtype == np.uint8 and scaling != "raw":
        raise ModelLoadError(
            f"{source} takes uint8 pixels and scales them itself: --scaling {scaling} "
            "cannot apply (leave it at raw)"
        )
    return OnnxInput(name, chosen, height, width, int(channels), dtype, dims[0])


def _layout(
    dims: list[int | None], flag: OnnxLayout, shape: Sequence[object], source: str
) -> Layout:
    if flag != "auto":
        return flag
    first, last = dims[1] in _CHANNELS, dims[3] in _CHANNELS
    if first and not last:
        return "nchw"
    if last and not first:
        return "nhwc"
    why = "could be either" if first else "has no dimension of 1 or 3 channels where either puts it"
    raise ModelLoadError(
        f"{source}'s input {list(shape)} {why} of NCHW and NHWC: pass --onnx-layout nchw|nhwc"
    )


def execution_providers(preference: str, available: Sequence[str]) -> list[Provider]:
    """The ONNX Runtime providers to ask for, best first, from ``--device``.

    ``auto`` takes CUDA when this ONNX Runtime has it (the ``onnxruntime-gpu`` package); ONNX
    Runtime itself falls back to the CPU when no device answers, and the classifier reports
    the provider it got. ``gpu``, ``cuda:N`` or ``/GPU:N`` insist on CUDA.

    Raises:
        ConfigError: the device asked for is not one ONNX Runtime has here.

    >>> execution_providers("auto", ["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    >>> execution_providers("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    [('CUDAExecutionProvider', {'device_id': 1}), 'CPUExecutionProvider']
    """
    name = preference.strip().lower()
    if name in ("cpu", "/cpu:0", "cpu:0"):
        return [CPU_PROVIDER]
    if name == "auto":
        return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]
    match = _GPU_NAME.match(name)
    if name != "gpu" and match is None:
        raise ConfigError(
            f"--device {preference!r} means nothing to ONNX Runtime: use auto, cpu, gpu or cuda:N"
        )
    if CUDA_PROVIDER not in available:
        raise ConfigError(
            f"--device {preference} was asked for but this ONNX Runtime has no CUDA provider "
            f"(it has {', '.join(available)}): install onnxruntime-gpu instead of onnxruntime"
        )
    device_id = int(match.group(1)) if match else 0
    return [(CUDA_PROVIDER, {"device_id": device_id}), CPU_PROVIDER]


def import_onnxruntime() -> Any:
    """ONNX Runtime, or a one-line ConfigError naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            f"serving an ONNX model needs ONNX Runtime: {INSTALL_HINT} ({exc})"
        ) from None
    return onnxruntime


def softmax(rows: np.ndarray) -> np.ndarray:
    shifted = rows - rows.max(axis=1, keepdims=True)  # no overflow for large logits
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class OnnxClassifier:
    """An ``.onnx`` classifier run by ONNX Runtime, fed uint8 frames of any size.

    Frames not at the model's size are resized as the server's intake resizes them (area
    averaging down, bilinear up); scaling and the NCHW transpose are done in numpy on the
    model thread, in one float32 copy of the batch.
    """

    def __init__(self, config: ModelConfig, labels: tuple[str, ...] | None = None) -> None:
        if config.model_path is None:
            raise ConfigError("OnnxClassifier needs a model path")
        path = Path(config.model_path)
        if not path.is_file():
            raise ModelLoadError(f"model not found: {path}")
        ort = import_onnxruntime()
        providers = execution_providers(config.device, ort.get_available_providers())
        options = ort.SessionOptions()
        # Errors only: its warnings (e.g. about initialisers also listed as inputs) are noise.
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: between calls the cores belong to the
        # event loop, the decode workers and the answer thread of the same server.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if config.intra_op_threads:
            options.intra_op_num_threads = config.intra_op_threads
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers
            )
        except Exception as exc:  # ONNX Runtime raises its own pybind types for bad files
            raise ModelLoadError(f"cannot load ONNX model {path}: {exc}") from exc
        used = self._session.get_providers()[0]
        # ONNX Runtime falls back to the CPU when CUDA cannot start: right for auto only.
        if used != CUDA_PROVIDER and config.device != "auto" and providers[0] != CPU_PROVIDER:
            raise ConfigError(f"--device {config.device}: ONNX Runtime found no CUDA device")
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(
                f"ONNX model {path} has {len(inputs)} inputs; an image classifier needs one"
            )
        self._input = read_input(
            inputs[0].name,
            inputs[0].shape,
            inputs[0].type,
            layout=config.onnx_layout,
            input_size=config.input_size,
            scaling=config.scaling,
            source=f"ONNX model {path.name}",
        )
        outputs = [o.name for o in self._session.get_outputs()]
        if len(outputs) > 1:
            logger.warning("ONNX model %s has outputs %s: using %s", path, outputs, outputs[0])
        self._output = outputs[0]
        self._scale, self._offset = _scale_offset(config, self._input)
        self._apply_softmax = False
        num_outputs, is_probability = self._probe()
        self._apply_softmax = config.softmax == "always" or (
            config.softmax == "auto" and not is_probability
        )
        device = "CUDA:" + str(_device_id(providers)) if used == CUDA_PROVIDER else "CPU"
        spec = self._input
        logger.info(
            "ONNX Runtime %s on %s (%s; available %s): input %s %s %dx%dx%d, "
            "outputs %s: %s softmax (--softmax %s)",
            ort.__version__,
            used,
            ", ".join(self._session.get_providers()),
            ", ".join(ort.get_available_providers()),
            spec.dtype,
            spec.layout.upper(),
            spec.width,
            spec.height,
            spec.channels,
            "probabilities" if is_probability else "logits",
            "applying" if self._apply_softmax else "no",
            config.softmax,
        )
        self._description = ModelDescription(
            labels=match_labels(labels, num_outputs, str(config.labels_path or "the labels")),
            input_width=spec.width,
            input_height=spec.height,
            input_channels=spec.channels,
            model_name=path.stem,
            device=f"onnxruntime {device}",
        )

    @property
    def description(self) -> ModelDescription:
        return self._description

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        sized = [self._sized(group) for group in groups]
        images = sized[0] if len(sized) == 1 else np.concatenate(sized)
        return self._classify(images)

    def warm_up(self, max_batch: int) -> None:
        """One call at each batch size the server makes first, and one through the resize path."""
        spec = self._input
        for size in sorted({1, max_batch}):
            self.predict([np.zeros((size, spec.height, spec.width, spec.channels), np.uint8)])
        self.predict([np.zeros((1, spec.height + 7, spec.width + 5, spec.channels), np.uint8)])

    def _model_feed(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``(n, h, w, c)`` frames at the model's size as the model's input tensor."""
        spec = self._input
        if spec.dtype == np.uint8 and spec.layout == "nhwc":
            return images
        if spec.dtype == np.uint8:
            return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if spec.layout == "nchw":
            n, h, w, c = images.shape
            x = np.empty((n, c, h, w), np.float32)
            np.copyto(x, images.transpose(0, 3, 1, 2))
        else:
            x = images.astype(np.float32)
        if self._scale is not None and self._offset is not None:
            x *= self._scale
            x -= self._offset
        return x if spec.dtype == np.float32 else x.astype(spec.dtype)

    def _sized(self, group: np.ndarray) -> np.ndarray:
        spec = self._input
        n, height, width, channels = group.shape
        if channels != spec.channels:
            raise InferenceError(
                f"frames have {channels} channels; the model takes {spec.channels}"
            )
        if (height, width) == (spec.height, spec.width):
            return group
        # The intake's own resize, so a frame is scaled the same way for either runtime.
        out = np.empty((n, spec.height, spec.width, channels), np.uint8)
        for i in range(n):
            out[i] = resize_to(group[i], spec.width, spec.height)
        return out

    def _classify(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        try:
            out = self._run(self._model_feed(images))
        except InferenceError:
            raise
        except Exception as exc:  # ONNX Runtime raises its own pybind types
            raise InferenceError(f"model call failed: {exc}") from exc
        if out.ndim < 2 or out.shape[0] != n or any(d != 1 for d in out.shape[2:]):
            raise InferenceError(
                f"model output has shape {out.shape[1:]}; a classifier returns one vector per image"
            )
        rows = out.reshape(n, out.shape[1]).astype(np.float32, copy=False)
        return softmax(rows) if self._apply_softmax else rows

    def _run(self, x: np.ndarray) -> np.ndarray:
        batch = self._input.batch
        if batch is None or len(x) == batch:
            return np.asarray(self._session.run([self._output], {self._input.name: x})[0])
        # A model exported with a fixed batch: run it in slices, padding the last one.
        parts = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            if len(chunk) < batch:
                pad = np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = self._session.run([self._output], {self._input.name: chunk})[0]
            parts.append(np.asarray(out)[: min(batch, len(x) - start)])
        return np.concatenate(parts)

    def _probe(self) -> tuple[int, bool]:
        """Random images once: the output width, and whether rows already are probabilities."""
        spec = self._input
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (4, spec.height, spec.width, spec.channels), np.uint8)
        try:
            out = self._classify(images)
        except InferenceError as exc:
            raise ModelLoadError(
                f"model call on a {spec.height}x{spec.width}x{spec.channels} test batch failed: "
                f"{exc}"
            ) from exc
        return int(out.shape[1]), rows_are_probabilities(out)


def _scale_offset(
    config: ModelConfig, spec: OnnxInput
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``x * scale - offset`` per channel for float inputs (``None``: feed 0-255 as it is)."""
    if spec.dtype == np.uint8 or config.scaling == "raw":
        return None, None
    channels = spec.channels
    if config.scaling == "unit":
        mean, std = np.zeros(1, np.float32), np.ones(1, np.float32)
    else:
        mean = np.asarray(config.mean[:1] if channels == 1 else config.mean, np.float32)
        std = np.asarray(config.std[:1] if channels == 1 else config.std, np.float32)
        if len(mean) not in (1, channels):
            raise ConfigError(f"--mean/--std need 1 or {channels} values")
    # (x/255 - mean)/std as one multiply and one subtract over the batch.
    scale, offset = 1.0 / (255.0 * std), mean / std
    shape = (1, -1, 1, 1) if spec.layout == "nchw" else (1, 1, 1, -1)
    return scale.astype(np.float32).reshape(shape), offset.astype(np.float32).reshape(shape)


def _device_id(providers: Sequence[Provider]) -> int:
    for provider in providers:
        if isinstance(provider, tuple) and provider[0] == CUDA_PROVIDER:
            return int(provider[1].get("device_id", 0))
    return 0
