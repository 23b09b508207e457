"""Run a served-style classifier over labelled frames and write the evaluation pictures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streaming.server.model import Classifier
from streaming.training.evaluation import Evaluation, label_ids, score
from streaming.training.plots import save_confusion_png, save_contact_sheet
from streaming.training.training_values import FrameSet

logger = logging.getLogger(__name__)

CONFUSION_PNG = "confusion.png"
MISTAKES_PNG = "mistakes.png"


@dataclass(frozen=True)
class Assessment:
    """An evaluation and where its pictures are; ``unknown`` counts frames of labels the model lacks."""

    evaluation: Evaluation
    confusion_png: Path
    mistakes_png: Path
    unknown: dict[str, int]


def predict(classifier: Classifier, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Probabilities for uint8 frames, through the same code path the server uses."""
    parts = [classifier.predict([images[i : i + batch]]) for i in range(0, len(images), batch)]
    labels = len(classifier.description.labels)
    return np.concatenate(parts) if parts else np.zeros((0, labels), np.float32)


def assess(classifier: Classifier, frames: FrameSet, out_dir: Path) -> Assessment:
    """Score ``classifier`` on ``frames`` and save the confusion matrix and the mistakes sheet."""
    labels = classifier.description.labels
    known = set(labels)
    unknown: dict[str, int] = {}
    for label in frames.labels:
        if label not in known:
            unknown[label] = unknown.get(label, 0) + 1
    if unknown:
        logger.warning(
            "skipping frames of labels the model does not know: %s",
            ", ".join(f"{label} ({count})" for label, count in sorted(unknown.items())),
        )
        frames = frames.subset([i for i, label in enumerate(frames.labels) if label in known])
    evaluation = score(
        labels, label_ids(frames, labels), predict(classifier, frames.images), frames.origins
    )
    return Assessment(
        evaluation,
        save_confusion_png(evaluation, out_dir / CONFUSION_PNG),
        save_contact_sheet(evaluation, frames.images, out_dir / MISTAKES_PNG),
        unknown,
    )
