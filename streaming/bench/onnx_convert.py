"""Row 12's model: the Keras model under test converted to ONNX, offline, and checked.

Run as its own process (``python -m streaming.bench.onnx_convert``) so TensorFlow's memory and
threads are gone before the servers of the row start. Converts with Keras 3's own exporter
(``model.export(path, format="onnx")``, which drives tf2onnx), then runs the ONNX model in ONNX
Runtime on random images and checks it against Keras. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TOLERANCE = 1e-3  # largest difference of an output (probabilities or logits) from Keras


class ConversionError(RuntimeError):
    """The model could not be converted, or the ONNX model answers differently from Keras."""


@contextlib.contextmanager
def _transpose_optimizer_fix() -> Iterator[None]:
    """tf2onnx 1.17's transpose optimizer raises on a Conv followed by the Add of a scalar
    constant (MobileNetV3's hard-swish adds 3) and then drops the whole pass, leaving about a
    hundred Transpose nodes that make ONNX Runtime slower. Treat that Add as one it cannot fold
    into the Conv, as it already does for other shapes it cannot fold."""
    from tf2onnx.optimizer.transpose_optimizer import TransposeOptimizer

    original = TransposeOptimizer._add_handler

    def add_handler(self: Any, trans: Any, node: Any) -> Any:
        try:
            return original(self, trans, node)
        except ValueError:  # max() of the empty shape of a scalar bias
            return self._handle_node_having_branches(trans, node)

    TransposeOptimizer._add_handler = add_handler
    try:
        yield
    finally:
        TransposeOptimizer._add_handler = original


def convert(keras_path: Path, onnx_path: Path) -> dict[str, Any]:
    """Convert ``keras_path`` to ``onnx_path`` and check ONNX Runtime's answers against Keras.

    Raises:
        ConversionError: tf2onnx or ONNX Runtime is missing, or the outputs differ.
    """
    try:
        import onnxruntime
        import tf2onnx  # noqa: F401 - Keras's exporter imports it lazily; fail here, clearly
    except ImportError as exc:
        raise ConversionError(
            f"row 12 needs ONNX Runtime and tf2onnx: pip install 'stream-classification[onnx]' "
            f"tf2onnx ({exc})"
        ) from None
    import keras

    model = keras.models.load_model(keras_path, compile=False)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    images = np.random.default_rng(0).uniform(0, 255, (4, *shape)).astype(np.float32)
    expected = np.asarray(model(images, training=False))  # Keras exports only called models
    start = time.perf_counter()
    with _transpose_optimizer_fix():
        model.export(str(onnx_path), format="onnx", verbose=False)
    seconds = time.perf_counter() - start
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: images})[0]
    difference = float(np.abs(got - expected).max())
    if got.shape != expected.shape or difference > TOLERANCE:
        raise ConversionError(
            f"the ONNX model answers {got.shape} differing by {difference:.2g} from Keras's "
            f"{expected.shape}"
        )
    return {
        "onnx_path": str(onnx_path),
        "convert_s": seconds,
        "max_abs_difference": difference,
        "onnxruntime": onnxruntime.__version__,
        "providers_available": onnxruntime.get_available_providers(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.bench.onnx_convert")
    parser.add_argument("--keras", type=Path, required=True, help="the model to convert")
    parser.add_argument("--onnx", type=Path, required=True, help="where to write the ONNX model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="onnx-convert: %(message)s")
    try:
        result = convert(args.keras, args.onnx)
    except ConversionError as exc:
        logger.error("%s", exc)
        return 1
    logger.info(
        "converted in %.1f s, outputs within %.2g of Keras",
        result["convert_s"],
        result["max_abs_difference"],
    )
    print(json.dumps(result), flush=True)  # noqa: T201 - the process's output is this JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
