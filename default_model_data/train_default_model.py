"""Train the embedded "broadcast signal monitor" model from scratch on generated frames.

The generator (``default_model_data/synth.py``) makes the frames; fitting is ``streaming.training``'s, the
same trainer as ``stream-classify train`` (small network, best epoch by validation loss). The
generator already applies broadcast-chain degradations, so the trainer's own augmentation is off.

Usage::

    python -m default_model_data.train_default_model            # writes streaming/default_model/
    python -m default_model_data.train_default_model --per-class 200 --epochs 1 --out /tmp/m  # quick try

Needs the ``train`` extra (scikit-image, scikit-learn, matplotlib) for the bundled photos.
Deterministic for a given ``--seed`` up to TensorFlow's CPU kernel non-determinism.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from default_model_data.synth import CLASSES, sample

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "streaming" / "default_model"
MODEL_NAME = "broadcast_monitor.keras"
INPUT_SIZE = 96


def _generate_chunk(args: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, label_index, count, size = args
    rng = np.random.default_rng(seed)
    frames = np.stack([sample(CLASSES[label_index], rng, size) for _ in range(count)])
    return frames, np.full(count, label_index, np.int32)


def generate(
    per_class: int, size: int, seed: int, workers: int, chunk: int = 250
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` frames of every class; each chunk has its own seed so workers don't matter."""
    jobs = []
    for label_index in range(len(CLASSES)):
        for start in range(0, per_class, chunk):
            chunk_seed = seed * 1_000_003 + label_index * 10_007 + start
            jobs.append((chunk_seed, label_index, min(chunk, per_class - start), size))
    with get_context("fork").Pool(workers) as pool:
        parts = pool.map(_generate_chunk, jobs)
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return x, y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=8000)
    parser.add_argument("--val-per-class", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t0 = time.monotonic()
    # Generate before importing TensorFlow so the forked workers don't inherit its thread pools.
    x, y = generate(args.per_class, INPUT_SIZE, args.seed, args.workers)
    x_val, y_val = generate(args.val_per_class, INPUT_SIZE, args.seed + 1, args.workers)
    t_data = time.monotonic() - t0
    logger.info(
        "generated %d training + %d validation frames in %.0f s", len(x), len(x_val), t_data
    )

    from streaming.training.backbones import Backbone
    from streaming.training.input_pipeline import Augmentation
    from streaming.training.trainer import FitSettings, fit
    from streaming.training.training_values import FrameSet

    def frame_set(images: np.ndarray, ids: np.ndarray, name: str) -> FrameSet:
        # Every generated frame is independent: one group each.
        names = tuple(f"{name}/{i}" for i in range(len(ids)))
        return FrameSet(images, tuple(CLASSES[i] for i in ids), names, names)

    settings = FitSettings(
        backbone=Backbone("small"),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=2e-3,
        patience=args.epochs,  # the schedule runs to the end; the best epoch is kept
        seed=args.seed,
        augmentation=Augmentation.none(),
        verbose=2,
    )
    with tempfile.TemporaryDirectory() as work:
        result = fit(
            frame_set(x, y, "train"),
            frame_set(x_val, y_val, "val"),
            Path(work),
            settings,
            labels=CLASSES,
        )
        t_total = time.monotonic() - t0
        args.out.mkdir(parents=True, exist_ok=True)
        model_path = args.out / MODEL_NAME
        shutil.copyfile(result.model_path, model_path)
        shutil.copyfile(result.labels_path, args.out / "labels.txt")
        history = json.loads((Path(work) / "checkpoint" / "state.json").read_text())["history"]
    report = {
        "seed": args.seed,
        "per_class": args.per_class,
        "epochs": args.epochs,
        "best_epoch": result.best_epoch,
        "input_size": INPUT_SIZE,
        "data_seconds": round(t_data),
        "total_seconds": round(t_total),
        "val_accuracy": [round(float(epoch["val_accuracy"]), 4) for epoch in history],
        "size_bytes": model_path.stat().st_size,
    }
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2))
    logger.info(
        "saved %s (%d bytes) after %.0f s: %s", model_path, report["size_bytes"], t_total, report
    )


if __name__ == "__main__":
    main()
