"""Two or more models scored on the same frames, side by side, and the rule ``promote`` applies.

Every model is scored on every frame whose true label any of the models knows: a frame of a
label a model does not have counts as a miss for it (it cannot answer it), so accuracies are
over the same frames and a class only the new model has is a class it does better on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TOLERANCE = 0.02  # see docs/training.md "Promote": one frame in 50 of any class


@dataclass(frozen=True)
class ClassResult:
    """Precision and recall of one label; precision is ``None`` for a label the model lacks."""

    precision: float | None
    recall: float
    support: int


@dataclass(frozen=True)
class ModelScores:
    """One model's results on shared frames.

    Attributes:
        name: How the table calls it.
        labels: The model's own labels.
        frames: Frames scored.
        accuracy: Share right.
        per_class: Every label of the frames and of the model, in table order.
    """

    name: str
    labels: tuple[str, ...]
    frames: int
    accuracy: float
    per_class: dict[str, ClassResult]


def score_predictions(
    name: str, model_labels: Sequence[str], truth: Sequence[str], predicted: Sequence[str]
) -> ModelScores:
    """Scores from true and predicted label names (same length, same frames for every model).

    >>> s = score_predictions("m", ["a", "b"], ["a", "a", "c"], ["a", "b", "a"])
    >>> round(s.accuracy, 3), s.per_class["a"], s.per_class["c"].precision
    (0.333, ClassResult(precision=0.5, recall=0.5, support=2), None)
    """
    if len(truth) != len(predicted):
        raise ValueError("truth and predictions must be as long")
    labels = sorted(set(truth) | set(model_labels))
    per_class = {}
    for label in labels:
        support = sum(1 for t in truth if t == label)
        hits = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p == label)
        said = sum(1 for p in predicted if p == label)
        precision = (hits / said if said else 0.0) if label in model_labels else None
        per_class[label] = ClassResult(precision, hits / support if support else 0.0, support)
    right = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p)
    return ModelScores(
        name, tuple(model_labels), len(truth), right / len(truth) if truth else 0.0, per_class
    )


@dataclass(frozen=True)
class Verdict:
    """Whether a candidate is not worse than the model it would replace, and why."""

    not_worse: bool
    reasons: tuple[str, ...]


def judge(old: ModelScores, new: ModelScores, tolerance: float = DEFAULT_TOLERANCE) -> Verdict:
    """``new`` is not worse when its accuracy and the recall of every label with frames are no
    more than ``tolerance`` below ``old``'s (a label ``old`` lacks: ``old``'s recall is 0).

    >>> a = score_predictions("old", ["x", "y"], ["x", "y", "y"], ["x", "y", "y"])
    >>> b = score_predictions("new", ["x", "y"], ["x", "y", "y"], ["x", "x", "y"])
    >>> judge(a, b).not_worse, judge(a, b).reasons[0]
    (False, 'accuracy 66.7% < 100.0% (old)')
    """
    if not 0 <= tolerance < 1:
        raise ValueError("tolerance must be in [0, 1)")
    reasons = []
    if new.accuracy < old.accuracy - tolerance:
        reasons.append(f"accuracy {new.accuracy:.1%} < {old.accuracy:.1%} (old)")
    for label, result in new.per_class.items():
        before = old.per_class.get(label)
        if result.support == 0 or before is None:
            continue
        if result.recall < before.recall - tolerance:
            reasons.append(f"recall of {label} {result.recall:.1%} < {before.recall:.1%} (old)")
    if reasons:
        return Verdict(False, tuple(reasons))
    better = [
        label
        for label, result in new.per_class.items()
        if result.support and result.recall > old.per_class[label].recall + tolerance
    ]
    detail = f"better on {', '.join(better)}" if better else "no label worse"
    return Verdict(
        True,
        (
            f"accuracy {new.accuracy:.1%} vs {old.accuracy:.1%} (old); {detail} "
            f"(tolerance {tolerance:.1%})",
        ),
    )


def format_side_by_side(scores: Sequence[ModelScores], paths: Sequence[str] = ()) -> str:
    """One table: per label the frames, then precision and recall of each model; accuracy last."""
    if not scores:
        return ""
    labels = list(dict.fromkeys(label for s in scores for label in s.per_class))
    names = [chr(ord("A") + i) if len(scores) <= 26 else str(i) for i in range(len(scores))]
    lines = []
    for name, s, path in zip(names, scores, [*paths, *([""] * len(scores))], strict=False):
        lines.append(f"{name}: {s.name}{f' ({path})' if path else ''}")
    width = max(9, *(len(label) for label in labels))
    column = "precision  recall"
    lines += [
        "",
        f"{'':<{width}}  {'':>6}  " + "  ".join(f"{name:<{len(column)}}" for name in names),
        f"{'label':<{width}}  {'frames':>6}  " + "  ".join(column for _ in names),
    ]
    for label in labels:
        support = max(s.per_class[label].support if label in s.per_class else 0 for s in scores)
        cells = []
        for s in scores:
            c = s.per_class.get(label)
            precision = "-" if c is None or c.precision is None else f"{c.precision:.3f}"
            recall = "-" if c is None else f"{c.recall:.3f}"
            cells.append(f"{precision:>9}  {recall:>6}")
        lacks = [n for n, s in zip(names, scores, strict=True) if label not in s.labels]
        note = f"  (not a label of {', '.join(lacks)})" if lacks else ""
        lines.append(f"{label:<{width}}  {support:>6d}  " + "  ".join(cells) + note)
    lines.append(
        f"{'accuracy':<{width}}  {scores[0].frames:>6d}  "
        + "  ".join(f"{'':>9}  {s.accuracy:>6.3f}" for s in scores)
    )
    return "\n".join(lines)
