"""The collect rules: why a frame is kept (each reason, good and bad cases) and the rate cap."""

from __future__ import annotations

import random

import pytest

from camera_tools.collect import AnsweredFrame, RateCap, Reason, SourceSelector, own_reasons

LC, CHANGE, DIS, SAMPLE = (
    Reason.LOW_CONFIDENCE,
    Reason.LABEL_CHANGE,
    Reason.DISAGREEMENT,
    Reason.SAMPLE,
)


def answered(
    i: int,
    window_label: str = "a",
    *,
    label: str | None = None,
    score: float = 0.9,
    source: str = "cam",
) -> AnsweredFrame:
    return AnsweredFrame(
        source=source,
        frame=i,
        time_s=i / 10,
        wall_time=1_700_000_000.0 + i / 10,
        label=window_label if label is None else label,
        score=score,
        top=((window_label, 0.9),),
        window_label=window_label,
        window_score=0.9,
    )


@pytest.mark.parametrize(
    ("label", "score", "window_label", "below", "expected"),
    [
        ("a", 0.59, "a", 0.6, [LC]),  # just below the threshold
        ("a", 0.6, "a", 0.6, []),  # at the threshold: not low
        ("a", 0.99, "a", 0.6, []),  # confident, agreeing
        ("b", 0.9, "a", 0.6, [DIS]),  # confident, but not the window's label
        ("b", 0.3, "a", 0.6, [LC, DIS]),  # both
        ("a", 0.3, "a", 0.0, []),  # threshold 0: nothing is low
        ("", 0.9, "a", 0.6, []),  # an old server without a frame label: no disagreement
    ],
)
def test_own_reasons(
    label: str, score: float, window_label: str, below: float, expected: list[Reason]
) -> None:
    frame = answered(0, window_label, label=label, score=score)
    assert own_reasons(frame, below) == expected


def run_selector(
    window_labels: list[str],
    *,
    scores: list[float] | None = None,
    sample: float = 0.0,
    seed: int = 0,
) -> dict[int, tuple[Reason, ...]]:
    """Push one frame per window label, finish; kept frame index -> reasons."""
    selector = SourceSelector(below=0.5, sample=sample, rng=random.Random(seed))
    kept: dict[int, tuple[Reason, ...]] = {}
    for i, window_label in enumerate(window_labels):
        score = 0.9 if scores is None else scores[i]
        candidate = selector.push(answered(i, window_label, score=score))
        if candidate is not None:
            kept[candidate.frame.frame] = candidate.reasons
    candidate = selector.finish()
    if candidate is not None:
        kept[candidate.frame.frame] = candidate.reasons
    return kept


@pytest.mark.parametrize(
    ("window_labels", "expected"),
    [
        # one boundary: the last frame before it and the first after it
        ("aaabbb", {2: (CHANGE,), 3: (CHANGE,)}),
        # no boundary at all: nothing (the first and the last frame are no boundary)
        ("aaaaaa", {}),
        # a one-frame stretch is both the first after and the last before a change
        ("aabaa", {1: (CHANGE,), 2: (CHANGE,), 3: (CHANGE,)}),
        # every frame different: every frame is on a boundary
        ("abc", {0: (CHANGE,), 1: (CHANGE,), 2: (CHANGE,)}),
        # a boundary at the very end: the held frame is decided when the change arrives
        ("aaab", {2: (CHANGE,), 3: (CHANGE,)}),
        ("a", {}),
        ("", {}),
    ],
)
def test_label_change_keeps_both_sides(
    window_labels: str, expected: dict[int, tuple[Reason, ...]]
) -> None:
    assert run_selector(list(window_labels)) == expected


def test_reasons_combine_in_a_fixed_order() -> None:
    # given: a low-confidence frame that is also the last before a change, with frame label b
    selector = SourceSelector(below=0.5, sample=1.0, rng=random.Random(0))
    assert selector.push(answered(0, "a", label="b", score=0.2)) is None

    # when: the change arrives
    candidate = selector.push(answered(1, "b"))

    # then: every reason, in Reason order
    assert candidate is not None
    assert candidate.frame.frame == 0
    assert candidate.reasons == (LC, CHANGE, DIS, SAMPLE)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sample_is_seeded_and_about_its_rate(seed: int) -> None:
    labels = ["a"] * 2000
    first = run_selector(labels, sample=0.1, seed=seed)
    again = run_selector(labels, sample=0.1, seed=seed)
    assert first == again  # the same seed keeps the same frames
    assert all(reasons == (SAMPLE,) for reasons in first.values())
    assert 120 <= len(first) <= 280  # 200 expected; far outside only with a broken draw


@pytest.mark.parametrize(
    ("sample", "kept"),
    [(0.0, 0), (1.0, 50)],  # none, every frame
)
def test_sample_extremes(sample: float, kept: int) -> None:
    assert len(run_selector(["a"] * 50, sample=sample)) == kept


def test_low_confidence_frames_are_decided_one_answer_late() -> None:
    selector = SourceSelector(below=0.5, sample=0.0, rng=random.Random(0))
    assert selector.push(answered(0, score=0.1)) is None  # held until the next answer
    candidate = selector.push(answered(1, score=0.9))
    assert candidate is not None and candidate.frame.frame == 0 and candidate.reasons == (LC,)
    assert selector.finish() is None  # frame 1 is confident
    assert selector.finish() is None  # nothing held any more


@pytest.mark.parametrize(
    ("per_minute", "times", "allowed"),
    [
        # two a minute: the third within 60 s is refused, one after the first left the window
        (2, [0.0, 1.0, 2.0, 59.9, 60.0, 61.0], [True, True, False, False, True, True]),
        # one a minute over a long file
        (1, [0.0, 30.0, 60.0, 90.0, 120.0], [True, False, True, False, True]),
        # plenty of room
        (10, [0.0, 0.1, 0.2], [True, True, True]),
    ],
)
def test_rate_cap(per_minute: int, times: list[float], allowed: list[bool]) -> None:
    cap = RateCap(per_minute)
    got = []
    for t in times:
        ok = cap.allows(t)
        got.append(ok)
        if ok:
            cap.record(t)
    assert got == allowed


def test_rate_cap_counts_only_recorded_frames() -> None:
    cap = RateCap(1)
    assert cap.allows(0.0) and cap.allows(1.0)  # asking records nothing
    cap.record(1.0)
    assert not cap.allows(2.0)
