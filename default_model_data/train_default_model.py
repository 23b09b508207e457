"""Train the embedded "broadcast signal monitor" model: generated frames, then ``stream-classify train``.

The generator (``default_model_data/synth.py``) draws the frames and writes them as label folders
(``DATA/train/<label>/*.png``, ``DATA/val/<label>/*.png``, already at the model's input size);
fitting is ``stream-classify train`` itself, the one trainer (small network from scratch, best
epoch by validation loss kept). The generator already applies broadcast-chain degradations, so
the trainer's own augmentation is off. The model, its labels and ``training_report.json`` are
then copied into ``streaming/default_model/``.

Usage (``make default-model`` runs the first)::

    python -m default_model_data.train_default_model            # writes streaming/default_model/
    python -m default_model_data.train_default_model --per-class 200 --epochs 1 --out /tmp/m  # quick try
    python -m default_model_data.train_default_model --per-class 5000 --epochs 8 --base OLD.keras  # fine-tune
    python -m default_model_data.train_default_model --per-class 3000 --epochs 4 --base OLD.keras --keep-head --learning-rate 2e-4  # go on

Needs the ``train`` extra (scikit-image, scikit-learn, matplotlib) for the bundled photos.
Deterministic for a given ``--seed`` up to TensorFlow's CPU kernel non-determinism.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import cv2
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


def write_label_folders(frames: np.ndarray, label_ids: np.ndarray, root: Path) -> None:
    """``root/<label>/<n>.png``: a label folder ``stream-classify train`` reads (lossless)."""
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
    for n, (frame, label_id) in enumerate(zip(frames, label_ids, strict=True)):
        path = root / CLASSES[int(label_id)] / f"{n:06d}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")


def train_command(data: Path, work: Path, args: argparse.Namespace) -> list[str]:
    """The ``stream-classify train`` arguments that fit the embedded model."""
    return [
        "train", str(data / "train"), "--val", str(data / "val"), "--out", str(work),
        "--label-order", ",".join(CLASSES),  # labels.txt keeps its order
        "--no-augment",  # the generator degrades every frame already
        "--epochs", str(args.epochs),
        "--patience", str(args.epochs),  # the cosine schedule runs to the end; the best epoch is kept
        "--batch-size", str(args.batch_size),
        "--learning-rate", str(args.learning_rate or (5e-4 if args.base else 2e-3)),
        "--seed", str(args.seed),
        "--workers", str(args.workers),
        *(["--base", str(args.base)] if args.base else []),  # fine-tune a previous model
        *(["--keep-head"] if args.keep_head else []),  # ... going on from its own last layer
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=6000)
    parser.add_argument("--val-per-class", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="peak rate (default 2e-3 from scratch, 5e-4 with --base)",
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="fine-tune this model (its last Dense layer replaced) instead of starting from scratch",
    )
    parser.add_argument(
        "--keep-head",
        action="store_true",
        help="with --base: keep its last layer too (go on training the same labels)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--data", type=Path, default=None,
        help="keep the generated label folders here (default: a temporary folder)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        x, y = generate(args.per_class, INPUT_SIZE, args.seed, args.workers)
        write_label_folders(x, y, data / "train")
        x, y = generate(args.val_per_class, INPUT_SIZE, args.seed + 1, args.workers)
        write_label_folders(x, y, data / "val")
        del x, y
        t_data = time.monotonic() - t0
        logger.info("generated the frames into %s in %.0f s", data, t_data)

        work = Path(tmp) / "model"
        command = train_command(data, work, args)
        logger.info("stream-classify %s", " ".join(command))
        # The command itself, in a child process (the generator never imports TensorFlow).
        code = subprocess.run([sys.executable, "-m", "streaming", *command], check=False).returncode
        if code != 0:
            logger.error("stream-classify train failed with exit code %d", code)
            return code
        t_total = time.monotonic() - t0
        args.out.mkdir(parents=True, exist_ok=True)
        model_path = args.out / MODEL_NAME
        shutil.copyfile(work / "model.keras", model_path)
        shutil.copyfile(work / "labels.txt", args.out / "labels.txt")
        state = json.loads((work / "checkpoint" / "state.json").read_text())
    report = {
        "command": "stream-classify " + " ".join(command).replace(str(tmp), "$TMP"),
        "seed": args.seed,
        "per_class": args.per_class,
        "val_per_class": args.val_per_class,
        "epochs": args.epochs,
        "base": str(args.base) if args.base else None,
        "best_epoch": state["best_epoch"],
        "input_size": INPUT_SIZE,
        "data_seconds": round(t_data),
        "total_seconds": round(t_total),
        "val_accuracy": [round(float(epoch["val_accuracy"]), 4) for epoch in state["history"]],
        "size_bytes": model_path.stat().st_size,
    }
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info("saved %s (%d bytes) after %.0f s", model_path, report["size_bytes"], t_total)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
