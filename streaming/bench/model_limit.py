"""Row 1, the model limit: the classifier alone, in-process, no gRPC and no decode.

Run as its own process (``python -m streaming.bench.model_limit``) so TensorFlow's thread pools
exist only while this row runs. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from streaming.bench.results import Latency

logger = logging.getLogger(__name__)

DEFAULT_INPUT = (224, 224)


def build_default_model(path: Path, size: tuple[int, int] = DEFAULT_INPUT) -> Path:
    """MobileNetV3Small without weights: its speed does not depend on the weights' values."""
    import keras

    width, height = size
    model = keras.applications.MobileNetV3Small(
        weights=None, input_shape=(height, width, 3), include_preprocessing=True
    )
    model.save(path)
    return path


def _timed_calls(
    predict: Any, images: np.ndarray, seconds: float
) -> tuple[float, list[int], float]:
    """Frames/s, each call's ns, and the process's CPU in cores over the calls."""
    times: list[int] = []
    start = time.perf_counter_ns()
    cpu_start = time.process_time()
    deadline = start + int(seconds * 1e9)
    while time.perf_counter_ns() < deadline or len(times) < 3:
        t0 = time.perf_counter_ns()
        predict([images])
        times.append(time.perf_counter_ns() - t0)
    elapsed = (time.perf_counter_ns() - start) / 1e9
    cores = (time.process_time() - cpu_start) / elapsed
    return len(images) * len(times) / elapsed, times, cores


def measure(
    model_path: Path,
    batches: list[int],
    seconds: float,
    input_size: tuple[int, int] | None,
) -> dict[str, Any]:
    """Frames/s of ``TensorFlowClassifier.predict`` on uint8 batches, per batch size.

    Uses the server's own classifier (same preprocessing, same ``tf.function``), so the only
    thing missing compared with the server is everything around the model call.
    """
    from streaming.server.model import TensorFlowClassifier
    from streaming.server.serve_config import ModelConfig

    classifier = TensorFlowClassifier(ModelConfig(model_path=model_path, input_size=input_size))
    d = classifier.description
    rng = np.random.default_rng(0)
    per_batch: dict[str, Any] = {}
    for size in batches:
        images = rng.integers(
            0, 256, (size, d.input_height, d.input_width, d.input_channels), np.uint8
        )
        for _ in range(2):  # tracing and allocator warm-up
            classifier.predict([images])
        fps, times, cores = _timed_calls(classifier.predict, images, seconds)
        latency = Latency.from_ns(times)
        assert latency is not None
        per_batch[str(size)] = {
            "fps": fps,
            "batch_ms": latency.p50_ms,
            "cores": cores,
            "latency": latency.__dict__,
        }
        logger.info("model alone, batch %d: %.1f frames/s", size, fps)
    best = max(per_batch, key=lambda k: per_batch[k]["fps"])
    return {
        "model_name": d.model_name,
        "input_size": [d.input_width, d.input_height],
        "num_classes": len(d.labels),
        "device": d.device,
        "best_batch": int(best),
        "per_batch": per_batch,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.bench.model_limit")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument(
        "--build", action="store_true", help="build the default model at --model first"
    )
    parser.add_argument("--batches", default="1,8,16,32,64")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--input-size", default=None, help="WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="model-limit: %(message)s")
    size = tuple(int(v) for v in args.input_size.split("x")) if args.input_size else None
    if args.build:
        build_default_model(args.model, size or DEFAULT_INPUT)  # type: ignore[arg-type]
    batches = [int(b) for b in args.batches.split(",")]
    result = measure(args.model, batches, args.seconds, size)  # type: ignore[arg-type]
    print(json.dumps(result), flush=True)  # noqa: T201 - the process's output is this JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
