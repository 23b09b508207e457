"""Models scored on the same frames, the table, and the rule `promote` applies."""

from __future__ import annotations

import pytest

from streaming.training.model_comparison import (
    ClassResult,
    format_side_by_side,
    judge,
    score_predictions,
)

TRUTH = ["a"] * 4 + ["b"] * 4 + ["c"] * 2


@pytest.mark.parametrize(
    ("labels", "predicted", "accuracy", "a", "c"),
    [
        (["a", "b", "c"], TRUTH, 1.0, ClassResult(1.0, 1.0, 4), ClassResult(1.0, 1.0, 2)),
        # a model without c: c's frames count as misses, c has no precision
        (["a", "b"], ["a"] * 4 + ["b"] * 4 + ["a", "b"], 0.8, ClassResult(0.8, 1.0, 4),
         ClassResult(None, 0.0, 2)),
        (["a", "b", "c"], ["b"] * 10, 0.4, ClassResult(0.0, 0.0, 4), ClassResult(0.0, 0.0, 2)),
    ],
)  # fmt: skip
def test_scores(
    labels: list[str], predicted: list[str], accuracy: float, a: ClassResult, c: ClassResult
) -> None:
    scores = score_predictions("m", labels, TRUTH, predicted)
    assert scores.frames == 10 and scores.accuracy == pytest.approx(accuracy)
    assert scores.per_class["a"] == a and scores.per_class["c"] == c


def test_scores_need_as_many_predictions_as_frames() -> None:
    with pytest.raises(ValueError):
        score_predictions("m", ["a"], ["a", "a"], ["a"])


PERFECT_AB = ["a"] * 4 + ["b"] * 4 + ["a", "a"]  # an old model without c


@pytest.mark.parametrize(
    ("old_labels", "old_pred", "new_labels", "new_pred", "tolerance", "not_worse", "reason"),
    [
        # a new class learnt, the others kept: better
        (["a", "b"], PERFECT_AB, ["a", "b", "c"], TRUTH, 0.02, True, "better on c"),
        # the same answers: not worse
        (["a", "b"], PERFECT_AB, ["a", "b"], PERFECT_AB, 0.02, True, "no label worse"),
        # higher accuracy, but one class lost recall: worse (per-class recall, not just accuracy)
        (["a", "b"], PERFECT_AB, ["a", "b", "c"], ["a"] * 3 + ["c"] + ["b"] * 4 + ["c"] * 2,
         0.02, False, "recall of a 75.0% < 100.0% (old)"),
        # ... unless the drop is within the tolerance
        (["a", "b"], PERFECT_AB, ["a", "b", "c"], ["a"] * 3 + ["c"] + ["b"] * 4 + ["c"] * 2,
         0.25, True, "better on c"),
        # a class the new model dropped: its recall falls to 0
        (["a", "b", "c"], TRUTH, ["a", "b"], PERFECT_AB, 0.02, False, "accuracy 80.0% < 100.0%"),
        # worse accuracy
        (["a", "b", "c"], TRUTH, ["a", "b", "c"], ["b"] * 10, 0.02, False, "accuracy 40.0%"),
    ],
)  # fmt: skip
def test_judge(
    old_labels: list[str],
    old_pred: list[str],
    new_labels: list[str],
    new_pred: list[str],
    tolerance: float,
    not_worse: bool,
    reason: str,
) -> None:
    old = score_predictions("old", old_labels, TRUTH, old_pred)
    new = score_predictions("new", new_labels, TRUTH, new_pred)
    verdict = judge(old, new, tolerance)
    assert verdict.not_worse is not_worse
    assert reason in " ".join(verdict.reasons)


def test_judge_refuses_a_silly_tolerance() -> None:
    scores = score_predictions("m", ["a"], ["a"], ["a"])
    with pytest.raises(ValueError):
        judge(scores, scores, 1.5)


def test_side_by_side_table() -> None:
    old = score_predictions("version 1", ["a", "b"], TRUTH, PERFECT_AB)
    new = score_predictions("new", ["a", "b", "c"], TRUTH, TRUTH)
    table = format_side_by_side([old, new], ["models/1/model.keras", "run/model.keras"])
    lines = table.splitlines()
    assert lines[0] == "A: version 1 (models/1/model.keras)"
    assert lines[1] == "B: new (run/model.keras)"
    assert "precision  recall  precision  recall" in lines[4]
    row_c = next(line for line in lines if line.startswith("c "))
    assert row_c.split() == [
        "c",
        "2",
        "-",
        "0.000",
        "1.000",
        "1.000",
        "(not",
        "a",
        "label",
        "of",
        "A)",
    ]
    row_a = next(line for line in lines if line.startswith("a "))
    assert row_a.split() == ["a", "4", "0.667", "1.000", "1.000", "1.000"]
    assert lines[-1].split() == ["accuracy", "10", "0.800", "1.000"]


@pytest.mark.parametrize(
    ("flags", "ok"),
    [
        (["--tolerance", "0.05"], True),
        (["--tolerance", "0"], True),
        (["--tolerance", "1"], False),
        (["--tolerance", "-0.1"], False),
        (["--holdout", "a", "--holdout", "b"], True),
    ],
)
def test_promote_flags(flags: list[str], ok: bool) -> None:
    from streaming.cli import build_parser

    argv = ["promote", "run", "--model-dir", "models", *flags]
    if ok:
        args = build_parser().parse_args(argv)
        assert str(args.run_dir) == "run"
    else:
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
