"""Scores of a classifier on labelled frames: accuracy, per-class P/R/F1, confusion, worst mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streaming.training.training_values import FrameSet


@dataclass(frozen=True)
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Mistake:
    """A wrong answer; ``index`` points into the evaluated frames."""

    index: int
    origin: str
    true_label: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class Evaluation:
    """Results over ``frames`` frames; ``confusion[i, j]`` counts truth ``i`` predicted as ``j``."""

    labels: tuple[str, ...]
    confusion: np.ndarray
    per_class: tuple[ClassScore, ...]
    mistakes: tuple[Mistake, ...]

    @property
    def frames(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.frames))

    @property
    def macro_f1(self) -> float:
        scored = [c.f1 for c in self.per_class if c.support]
        return float(np.mean(scored)) if scored else 0.0


def score(
    labels: Sequence[str], true_ids: np.ndarray, probabilities: np.ndarray, origins: Sequence[str]
) -> Evaluation:
    """Compare predictions with the truth; mistakes are sorted most confident first."""
    n = len(labels)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (true_ids, predicted), 1)
    per_class = []
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            ClassScore(label, float(precision), float(recall), float(f1), int(confusion[i].sum()))
        )
    wrong = np.flatnonzero(predicted != true_ids)
    confidence = probabilities[wrong, predicted[wrong]] if len(wrong) else np.zeros(0)
    mistakes = tuple(
        Mistake(
            int(i),
            origins[i],
            labels[true_ids[i]],
            labels[predicted[i]],
            float(probabilities[i, predicted[i]]),
        )
        for i in wrong[np.argsort(-confidence, kind="stable")]
    )
    return Evaluation(tuple(labels), confusion, tuple(per_class), mistakes)


def label_ids(frames: FrameSet, labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[label] for label in frames.labels], np.int64)


def format_report(evaluation: Evaluation) -> str:
    """The text ``evaluate`` prints: totals, per-class table, confusion matrix."""
    width = max(9, *(len(label) for label in evaluation.labels))
    lines = [
        f"frames {evaluation.frames}   accuracy {evaluation.accuracy:.2%}   "
        f"macro F1 {evaluation.macro_f1:.3f}",
        "",
        f"{'label':<{width}}  precision  recall     F1  frames",
    ]
    for c in evaluation.per_class:
        lines.append(
            f"{c.label:<{width}}  {c.precision:9.3f}  {c.recall:6.3f}  {c.f1:5.3f}  {c.support:6d}"
        )
    lines += ["", "confusion (rows = truth, columns = predicted)"]
    cell = max(6, *(len(label) for label in evaluation.labels))
    lines.append(" " * width + "  " + " ".join(f"{label:>{cell}}" for label in evaluation.labels))
    for label, row in zip(evaluation.labels, evaluation.confusion, strict=True):
        lines.append(f"{label:<{width}}  " + " ".join(f"{int(v):>{cell}d}" for v in row))
    return "\n".join(lines)
