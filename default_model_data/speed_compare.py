"""Frames per second of two models at batch 32 on the CPU, measured side by side in one process.

Rounds alternate between the models (old, new, old, new, ...) so a busy neighbour slows both
alike; the ratio of the medians is what to compare. A shared machine still makes the absolute
numbers noisy.

Usage::

    git show main:streaming/default_model/broadcast_monitor.keras > /tmp/old.keras
    python -m default_model_data.speed_compare /tmp/old.keras streaming/default_model/broadcast_monitor.keras
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def frames_per_second(model: Any, batch: np.ndarray, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        model.predict_on_batch(batch)
    return calls * len(batch) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=20, help="predict calls per round")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)

    import keras

    models = {name: keras.models.load_model(path, compile=False) for name, path in
              (("old", args.old), ("new", args.new))}  # fmt: skip
    size = models["old"].input_shape[1:]
    batch = np.random.default_rng(0).uniform(0, 255, (args.batch, *size)).astype(np.float32)
    for model in models.values():  # warm up: tracing and thread pools
        frames_per_second(model, batch, 3)
    runs: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        for name, model in models.items():
            runs[name].append(frames_per_second(model, batch, args.calls))
    old, new = statistics.median(runs["old"]), statistics.median(runs["new"])
    for name, values in runs.items():
        print(f"{name}: median {statistics.median(values):.0f} frames/s "
              f"(rounds: {', '.join(f'{v:.0f}' for v in values)})")  # fmt: skip
    print(f"new/old: {new / old:.3f}")


if __name__ == "__main__":
    main()
