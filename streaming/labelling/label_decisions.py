"""The label page's state, pure: decisions and their replay, undo, leases, which frame comes next.

No files and no clocks here (the dataset and the session own those), so every rule is tested
as a table: the state is what replaying ``decisions.jsonl`` gives, one line at a time.

* ``assign`` gives a frame a label, ``skip`` sets it aside; either *decides* it, once: a second
  decision on a decided frame is a :class:`DecisionConflict` (two pages never assign one frame
  twice).
* ``undo`` takes back a standing decision; the frame is undecided again.
* A frame handed to a page is *leased* to it for a while (one lease per page), so another page
  is handed a different frame.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from streaming.labelling.collected_frames import valid_frame_id
from streaming.labelling.labelling_errors import DecisionConflict

Action = Literal["assign", "skip", "undo"]
ACTIONS: tuple[Action, ...] = ("assign", "skip", "undo")
Direction = Literal["current", "next", "prev"]
DIRECTIONS: tuple[Direction, ...] = ("current", "next", "prev")


def check_label_name(label: str) -> str:
    """``label`` if it can name a folder of the dataset (``OUT/<label>/``).

    Raises:
        ValueError: Empty, hidden (``.x``), or with a path separator or a control character.

    >>> check_label_name("color_bars")
    'color_bars'
    """
    if (
        not label
        or label != label.strip()
        or label.startswith(".")
        or any(c in label for c in "/\\")
        or any(ord(c) < 32 for c in label)
        or len(label) > 100
    ):
        raise ValueError(f"{label!r} cannot be a label: it names a folder of the dataset")
    return label


@dataclass(frozen=True)
class Decision:
    """One line of ``decisions.jsonl``.

    Attributes:
        id: The frame.
        action: ``assign``, ``skip`` or ``undo``.
        label: The label assigned; for an undo, the label of the assignment taken back
            (``None`` for a skip and for undoing one).
        time: When it was decided (seconds since the epoch).
        page: Which page decided it (``u`` on a page undoes that page's last decision).
    """

    id: str
    action: Action
    label: str | None
    time: float
    page: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if not valid_frame_id(self.id):
            raise ValueError(f"bad frame id {self.id!r}")
        if self.action == "assign":
            if self.label is None:
                raise ValueError("an assignment needs a label")
            check_label_name(self.label)
        elif self.action == "skip" and self.label is not None:
            raise ValueError("a skip has no label")
        if not math.isfinite(self.time):
            raise ValueError(f"time {self.time} is not a number")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "label": self.label,
            "time": self.time,
            "page": self.page,
        }

    @classmethod
    def from_json(cls, data: Any) -> Decision:
        """A decoded line.

        Raises:
            ValueError: Not a decision.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            label = data.get("label")
            return cls(
                id=str(data["id"]),
                action=data["action"],
                label=None if label is None else str(label),
                time=float(data["time"]),
                page=str(data.get("page", "")),
            )
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]!r} field") from exc
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


@dataclass
class DecisionBook:
    """The standing decision of every decided frame, in the order they were made.

    ``replay`` applies lines as they are in the file (a line the state does not allow, which
    only a hand edit can produce, is ignored and reported); ``check`` is the rule a new
    decision must pass before it is written.
    """

    _standing: dict[str, Decision] = field(default_factory=dict)  # insertion order = made order
    ever: set[str] = field(default_factory=set)  # every frame any line named

    def check(self, decision: Decision) -> None:
        """Raise unless ``decision`` may be written now.

        Raises:
            DecisionConflict: assign/skip of a decided frame, undo of an undecided one.
        """
        standing = self._standing.get(decision.id)
        if decision.action == "undo":
            if standing is None:
                raise DecisionConflict(f"frame {decision.id} has no decision to undo")
        elif standing is not None:
            what = f"labelled {standing.label}" if standing.action == "assign" else "skipped"
            raise DecisionConflict(f"frame {decision.id} was already {what}")

    def replay(self, decision: Decision) -> bool:
        """Apply one line; whether the state allowed it (ignored otherwise)."""
        self.ever.add(decision.id)
        try:
            self.check(decision)
        except DecisionConflict:
            return False
        if decision.action == "undo":
            del self._standing[decision.id]
        else:
            self._standing[decision.id] = decision
        return True

    def undo_of(self, frame_id: str, time: float, page: str = "") -> Decision:
        """The undo line that takes back ``frame_id``'s standing decision.

        Raises:
            DecisionConflict: It has none.
        """
        standing = self._standing.get(frame_id)
        if standing is None:
            raise DecisionConflict(f"frame {frame_id} has no decision to undo")
        return Decision(frame_id, "undo", standing.label, time, page)

    def standing(self, frame_id: str) -> Decision | None:
        return self._standing.get(frame_id)

    def is_decided(self, frame_id: str) -> bool:
        return frame_id in self._standing

    def last(self, page: str | None = None) -> Decision | None:
        """The most recent standing decision (of ``page`` when given)."""
        for decision in reversed(self._standing.values()):
            if page is None or decision.page == page:
                return decision
        return None

    def assigned(self) -> dict[str, str]:
        """Frame id to label, for every standing assignment."""
        return {
            d.id: d.label
            for d in self._standing.values()
            if d.action == "assign" and d.label is not None
        }

    def counts(self) -> Counter[str]:
        """Standing assignments per label."""
        return Counter(self.assigned().values())

    @property
    def skipped(self) -> int:
        return sum(1 for d in self._standing.values() if d.action == "skip")

    def __len__(self) -> int:
        return len(self._standing)


@dataclass(frozen=True)
class Lease:
    """``frame`` is shown on ``page`` until ``until`` (seconds since the epoch)."""

    frame: str
    page: str
    until: float


@dataclass(frozen=True)
class Leases:
    """Who is shown what: at most one lease per page. Values: every change returns a new one."""

    by_page: Mapping[str, Lease] = field(default_factory=dict)

    def holder(self, frame_id: str, now: float) -> str | None:
        """The page ``frame_id`` is leased to now, if any."""
        for lease in self.by_page.values():
            if lease.frame == frame_id and lease.until > now:
                return lease.page
        return None

    def of(self, page: str, now: float) -> str | None:
        """The frame leased to ``page`` now, if any."""
        lease = self.by_page.get(page)
        return lease.frame if lease is not None and lease.until > now else None

    def grant(self, page: str, frame_id: str | None, now: float, duration_s: float) -> Leases:
        """``page`` now holds ``frame_id`` (none: it lets its lease go); expired leases drop."""
        kept = {p: lease for p, lease in self.by_page.items() if lease.until > now and p != page}
        if frame_id is not None:
            kept[page] = Lease(frame_id, page, now + duration_s)
        return Leases(kept)

    def to_json(self) -> dict[str, Any]:
        return {
            p: {"frame": lease.frame, "until": lease.until} for p, lease in self.by_page.items()
        }

    @classmethod
    def from_json(cls, data: Any) -> Leases:
        """Leases as :meth:`to_json` wrote them; anything unreadable counts as no lease."""
        if not isinstance(data, dict):
            return cls()
        found = {}
        for page, value in data.items():
            try:
                found[str(page)] = Lease(str(value["frame"]), str(page), float(value["until"]))
            except (KeyError, TypeError, ValueError):
                continue
        return cls(found)


def pick(
    order: Sequence[str],
    book: DecisionBook,
    leases: Leases,
    page: str,
    now: float,
    *,
    direction: Direction = "current",
    after: str | None = None,
) -> str | None:
    """The frame to show ``page`` next, or ``None`` when every frame is decided or leased away.

    Candidates are the undecided frames of ``order`` not leased to another page.

    * ``current``: ``after`` (the frame the page shows) while it is a candidate, else the
      page's own lease if it still holds an undecided frame (a reload shows the same frame),
      else the first candidate.
    * ``next``: the first candidate after ``after`` in ``order``, wrapping around (from the
      start when ``after`` is not in ``order``); ``after`` itself only when it is the last one.
    * ``prev``: the same, backwards.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")

    def free(frame_id: str) -> bool:
        return not book.is_decided(frame_id) and leases.holder(frame_id, now) in (None, page)

    if direction == "current":
        for kept in (after, leases.of(page, now)):
            if kept is not None and kept in order and free(kept):
                return kept
        return next((f for f in order if free(f)), None)
    sequence = list(order) if direction == "next" else list(reversed(order))
    start = sequence.index(after) + 1 if after in sequence else 0
    rotated = sequence[start:] + sequence[:start]
    return next((f for f in rotated if free(f)), None)
