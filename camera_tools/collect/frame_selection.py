"""Which answered frames are worth a person's look, and how many: pure rules, no pixels, no clock.

* :class:`Reason`: why a frame is kept (a frame may have several).
* :class:`AnsweredFrame`: one classified frame as the rules see it.
* :class:`SourceSelector`: one source's rules. A frame is decided when the *next* answer of its
  source arrives (or the source ends), because ``label_change`` keeps the frames on both sides
  of a boundary of the window label: the last frame before a change is only known to be one
  once the change is seen.
* :class:`RateCap`: at most N kept frames per minute of a source's own time.

Times are the source's (media time for files): a file gives the same frames however fast the
server answers, and the rules are tested without sleeping.
"""

from __future__ import annotations

import collections
import enum
import random
from dataclasses import dataclass, field

import numpy as np


class Reason(enum.StrEnum):
    """Why a frame was kept; the strings are what ``collected.jsonl`` says."""

    LOW_CONFIDENCE = "low_confidence"  # the frame's own score is below the threshold
    LABEL_CHANGE = "label_change"  # the window label changes right after or right before it
    DISAGREEMENT = "disagreement"  # the frame's own label is not the window's label
    SAMPLE = "sample"  # drawn at random, whatever its score


@dataclass(frozen=True, eq=False)
class AnsweredFrame:
    """One classified frame, as the collect rules and the collect folder see it.

    Attributes:
        source: The source's name as ``watch`` shows it (redacted).
        frame: The frame's index in its source.
        time_s: Seconds into the source: media time for files, since the source started for
            live ones.
        wall_time: When it was captured (Unix time).
        label, score: The frame's own label and score.
        top: The window-averaged best labels with their scores, best first.
        window_label, window_score: The window-averaged label and score.
        model_version: The server's model version that answered.
        image: The captured BGR frame (not copied: never drawn on).
    """

    source: str
    frame: int
    time_s: float
    wall_time: float
    label: str
    score: float
    top: tuple[tuple[str, float], ...]
    window_label: str
    window_score: float
    model_version: str = ""
    image: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class Candidate:
    """A frame the rules want kept, and why (in :class:`Reason` order)."""

    frame: AnsweredFrame
    reasons: tuple[Reason, ...]


def own_reasons(frame: AnsweredFrame, below: float) -> list[Reason]:
    """The reasons a frame has by itself: low confidence, disagreement with its window.

    Example:
        >>> f = AnsweredFrame("cam", 0, 0.0, 0.0, "black", 0.4, (), "program", 0.9)
        >>> [r.value for r in own_reasons(f, below=0.6)]
        ['low_confidence', 'disagreement']
    """
    reasons = []
    if frame.score < below:
        reasons.append(Reason.LOW_CONFIDENCE)
    if frame.label and frame.window_label and frame.label != frame.window_label:
        reasons.append(Reason.DISAGREEMENT)
    return reasons


class SourceSelector:
    """One source's rules: push every answered frame in order, get back the frames to keep.

    Args:
        below: Frame scores under this are ``low_confidence``.
        sample: Chance of ``sample`` per frame.
        rng: The random draws of ``sample`` (seeded in tests).

    Example:
        >>> selector = SourceSelector(below=0.5, sample=0.0, rng=random.Random(0))
        >>> def f(i, window_label):
        ...     return AnsweredFrame("cam", i, i / 10, 0.0, window_label, 0.9, (), window_label, 0.9)
        >>> selector.push(f(0, "a")) is None, selector.push(f(1, "a")) is None
        (True, True)
        >>> kept = selector.push(f(2, "b"))  # frame 1 is the last "a" before the change
        >>> kept.frame.frame, [r.value for r in kept.reasons]
        (1, ['label_change'])
        >>> kept = selector.finish()  # frame 2 is the first "b"
        >>> kept.frame.frame, [r.value for r in kept.reasons]
        (2, ['label_change'])
    """

    def __init__(self, *, below: float, sample: float, rng: random.Random) -> None:
        self._below = below
        self._sample = sample
        self._rng = rng
        self._held: AnsweredFrame | None = None
        self._held_starts_segment = False  # its window label differs from the frame before

    def push(self, frame: AnsweredFrame) -> Candidate | None:
        """Take the next answered frame; return the previous one if it is to be kept."""
        held, self._held = self._held, frame
        if held is None:
            self._held_starts_segment = False  # a source's first frame is no boundary
            return None
        ends_segment = frame.window_label != held.window_label
        decided = self._decide(held, starts=self._held_starts_segment, ends=ends_segment)
        self._held_starts_segment = ends_segment
        return decided

    def finish(self) -> Candidate | None:
        """The source ended: decide the frame still held (its end is no boundary)."""
        held, self._held = self._held, None
        if held is None:
            return None
        return self._decide(held, starts=self._held_starts_segment, ends=False)

    def _decide(self, frame: AnsweredFrame, *, starts: bool, ends: bool) -> Candidate | None:
        found = set(own_reasons(frame, self._below))
        if starts or ends:
            found.add(Reason.LABEL_CHANGE)
        # Drawn for every frame, kept or not, so one frame's draw never depends on the others'.
        if self._sample > 0 and self._rng.random() < self._sample:
            found.add(Reason.SAMPLE)
        if not found:
            return None
        return Candidate(frame, tuple(reason for reason in Reason if reason in found))


class RateCap:
    """At most ``per_minute`` kept frames in any 60 s of one source's time.

    Example:
        >>> cap = RateCap(per_minute=2)
        >>> cap.allows(0.0), cap.record(0.0), cap.record(1.0), cap.allows(30.0), cap.allows(60.5)
        (True, None, None, False, True)
    """

    WINDOW_S = 60.0

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._kept: collections.deque[float] = collections.deque()

    def allows(self, time_s: float) -> bool:
        """Whether a frame at ``time_s`` may be kept (nothing is recorded)."""
        while self._kept and self._kept[0] <= time_s - self.WINDOW_S:
            self._kept.popleft()
        return len(self._kept) < self._per_minute

    def record(self, time_s: float) -> None:
        """A frame at ``time_s`` was kept."""
        self._kept.append(time_s)
