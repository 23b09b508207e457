"""What a label page asks for: the frame to show, a decision, an undo, the counts.

One :class:`LabelSession` serves every page of one ``label`` process; other processes may
label the same output folder at the same time (see :mod:`streaming.labelling.label_dataset`).
Every answer is a :class:`View`: the frame the page should show now and the counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming.labelling.collected_frames import (
    COLLECTED_FILE,
    CollectedFrame,
    CollectedLog,
    Order,
    order_key,
    read_model_labels,
)
from streaming.labelling.label_dataset import LabelDataset
from streaming.labelling.label_decisions import (
    Decision,
    DecisionBook,
    Direction,
    Leases,
    check_label_name,
    pick,
)
from streaming.labelling.labelling_errors import (
    DecisionConflict,
    SetupError,
    UnknownFrame,
    UnknownLabel,
)

logger = logging.getLogger(__name__)

KEYED_LABELS = 9  # keys 1-9
_MISSING_CHECK_S = 2.0  # how often every undecided frame's image is looked for (disk cap)


@dataclass(frozen=True)
class LabelSettings:
    """What ``stream-classify label`` was asked to do.

    Attributes:
        collected: The folder ``watch --collect`` writes.
        dataset: The output folder (``<label>/<id>.jpg`` and ``decisions.jsonl``).
        extra_labels: Labels besides the model's (new classes), after them on the page.
        order: ``confidence`` (lowest score first), ``time`` or ``source``.
        lease_s: How long a frame shown on one page is kept from the others.
    """

    collected: Path
    dataset: Path
    extra_labels: tuple[str, ...] = ()
    order: Order = "confidence"
    lease_s: float = 120.0

    def __post_init__(self) -> None:
        order_key(self.order)  # raises ValueError for an unknown order
        if not self.lease_s > 0:
            raise ValueError("the lease must be > 0 seconds")
        for label in self.extra_labels:
            check_label_name(label)


@dataclass(frozen=True)
class View:
    """An answer to a page: the frame to show (``None``: nothing left), the counts, a message."""

    frame: CollectedFrame | None
    state: dict[str, Any]
    message: str = ""
    decision: Decision | None = None

    def to_json(self) -> dict[str, Any]:
        frame = None
        if self.frame is not None:
            frame = {**self.frame.to_json(), "image_url": f"api/image/{self.frame.id}.jpg"}
        return {
            "frame": frame,
            "state": self.state,
            "message": self.message,
            "decision": None if self.decision is None else self.decision.to_json(),
        }


@dataclass
class _Missing:
    """Frames whose collected image is gone (the collector's disk cap); never back."""

    ids: set[str] = field(default_factory=set)
    checked_at: float = float("-inf")


class LabelSession:
    """The label pages' shared state over the collected folder and the output folder.

    Raises:
        SetupError: No ``collected.jsonl`` in the folder, or no label to offer.
    """

    def __init__(self, settings: LabelSettings, clock: Callable[[], float] = time.time) -> None:
        if not (settings.collected / COLLECTED_FILE).is_file():
            raise SetupError(
                f"{settings.collected} has no {COLLECTED_FILE}: is it a `watch --collect` folder?"
            )
        self.settings = settings
        self._clock = clock
        model_labels = read_model_labels(settings.collected)
        for label in model_labels:
            try:
                check_label_name(label)
            except ValueError as exc:
                raise SetupError(f"model label {label!r} in labels.txt: {exc}") from exc
        self.labels = tuple(dict.fromkeys((*model_labels, *settings.extra_labels)))
        self.new_labels = tuple(label for label in self.labels if label not in model_labels)
        if not self.labels:
            raise SetupError("no labels: the folder has no labels.txt; give --new-labels a,b")
        self._log = CollectedLog(settings.collected, settings.order)
        self._log.refresh()
        self._missing = _Missing()
        self.dataset = LabelDataset(settings.dataset)
        with self.dataset.locked():
            changed = self.dataset.reconcile(self._images())
        if changed:
            logger.warning(
                "%d file(s) of %s put back in line with its decisions", changed, settings.dataset
            )
        logger.info(
            "%d collected frames in %s; %d decided in %s",
            len(self._log),
            settings.collected,
            len(self.dataset.book),
            settings.dataset,
        )

    def close(self) -> None:
        self.dataset.close()

    # -- what the pages call ----------------------------------------------------------------

    def show(self, page: str, direction: Direction = "current", after: str | None = None) -> View:
        """The frame to show ``page`` (leased to it): its current one, or the next/previous."""
        with self.dataset.locked() as book:
            now = self._refresh()
            return self._hand_out(book, page, now, direction, after)

    def decide(self, page: str, frame_id: str, label: str | None) -> View:
        """Assign ``label`` to the frame (``None``: skip it), then hand out the next one.

        Raises:
            UnknownFrame, UnknownLabel: Bad request.
            DecisionConflict: The frame was decided meanwhile (nothing written).
        """
        if label is not None and label not in self.labels:
            raise UnknownLabel(f"{label!r} is not a label of this page: {', '.join(self.labels)}")
        with self.dataset.locked() as book:
            now = self._refresh()
            frame = self._frame(frame_id)
            decision = Decision(frame_id, "skip" if label is None else "assign", label, now, page)
            try:
                self.dataset.record(decision, frame.image)
            except DecisionConflict as exc:
                view = self._hand_out(book, page, now, "next", frame_id)
                raise PageConflict(str(exc), view) from exc
            except FileNotFoundError as exc:
                self._missing.ids.add(frame_id)
                view = self._hand_out(book, page, now, "next", frame_id)
                raise PageConflict(f"frame {frame_id}'s image is gone: {exc}", view) from exc
            logger.info("frame %s: %s", frame_id, label if label is not None else "skipped")
            view = self._hand_out(book, page, now, "next", frame_id)
            return View(view.frame, view.state, view.message, decision)

    def undo(self, page: str, frame_id: str | None = None) -> View:
        """Take back ``frame_id``'s decision, or this page's last one (else the last of all);
        the frame is shown again, leased to ``page``.

        Raises:
            DecisionConflict: Nothing to undo, or that frame's decision is gone already.
        """
        with self.dataset.locked() as book:
            now = self._refresh()
            if frame_id is None:
                last = book.last(page) or book.last()
                if last is None:
                    raise PageConflict("nothing to undo", self._hand_out(book, page, now))
                frame_id = last.id
            try:
                decision = book.undo_of(frame_id, now, page)
                frame = self._log.get(frame_id)
                self.dataset.record(decision, None if frame is None else frame.image)
            except DecisionConflict as exc:
                raise PageConflict(str(exc), self._hand_out(book, page, now)) from exc
            logger.info("frame %s: undone (%s)", frame_id, decision.label or "skip")
            self._missing.ids.discard(frame_id)  # an undo may have moved its image back
            if frame is None or not frame.image.exists():
                view = self._hand_out(book, page, now)
                return View(view.frame, view.state, "undone; its image is gone", decision)
            self.dataset.update_leases(
                lambda leases: leases.grant(page, frame_id, now, self._lease)
            )
            return View(frame, self._state(book), "", decision)

    def state(self) -> dict[str, Any]:
        """The counts every page shows."""
        with self.dataset.locked() as book:
            self._refresh()
            return self._state(book)

    def image(self, frame_id: str) -> Path:
        """The JPEG to show for a frame: the collected one, else its copy in the dataset.

        Raises:
            UnknownFrame: No such frame, or no image of it is left.
        """
        with self.dataset.locked() as book:
            self._log.refresh()
            frame = self._frame(frame_id)
            if frame.image.exists():
                return frame.image
            standing = book.standing(frame_id)
            if standing is not None and standing.action == "assign":
                copy = self.dataset.copy_path(standing)
                if copy.exists():
                    return copy
        raise UnknownFrame(f"the image of frame {frame_id} is gone")

    # -- internals --------------------------------------------------------------------------

    @property
    def _lease(self) -> float:
        return self.settings.lease_s

    def _frame(self, frame_id: str) -> CollectedFrame:
        frame = self._log.get(frame_id)
        if frame is None:
            raise UnknownFrame(f"no collected frame {frame_id!r}")
        return frame

    def _images(self) -> dict[str, Path]:
        return {frame_id: self._frame(frame_id).image for frame_id in self._log.ordered()}

    def _refresh(self) -> float:
        """Read new collected frames; now and then look for images the disk cap deleted."""
        now = self._clock()
        self._log.refresh()
        if now - self._missing.checked_at >= _MISSING_CHECK_S:
            self._missing.checked_at = now
            book = self.dataset.book
            for frame_id in self._log.ordered():
                if frame_id in self._missing.ids or book.is_decided(frame_id):
                    continue
                if not self._frame(frame_id).image.exists():
                    self._missing.ids.add(frame_id)
        return now

    def _order(self) -> list[str]:
        return [f for f in self._log.ordered() if f not in self._missing.ids]

    def _hand_out(
        self,
        book: DecisionBook,
        page: str,
        now: float,
        direction: Direction = "current",
        after: str | None = None,
    ) -> View:
        order = self._order()
        leases = self.dataset.leases()
        while True:
            chosen = pick(order, book, leases, page, now, direction=direction, after=after)
            if chosen is None or self._frame(chosen).image.exists():
                break
            self._missing.ids.add(chosen)  # deleted since the last look: pass it over
            order.remove(chosen)
        self.dataset.save_leases(leases.grant(page, chosen, now, self._lease))
        frame = None if chosen is None else self._frame(chosen)
        message = "" if frame is not None else self._nothing_left(book, leases, page, now)
        return View(frame, self._state(book), message)

    def _nothing_left(self, book: DecisionBook, leases: Leases, page: str, now: float) -> str:
        away = sum(
            1
            for f in self._order()
            if not book.is_decided(f) and leases.holder(f, now) not in (None, page)
        )
        if away:
            return f"nothing left here: {away} frame(s) are on other pages"
        return "nothing left to label: new frames appear here as watch --collect keeps them"

    def _state(self, book: DecisionBook) -> dict[str, Any]:
        order = self._order()
        counts = book.counts()
        left = sum(1 for f in order if not book.is_decided(f))
        return {
            "labels": list(self.labels),
            "new_labels": list(self.new_labels),
            "keyed": KEYED_LABELS,
            "counts": {label: counts.get(label, 0) for label in self.labels},
            "other_counts": {
                label: n for label, n in sorted(counts.items()) if label not in self.labels
            },
            "skipped": book.skipped,
            "left": left,
            "collected": len(order),
            "order": self.settings.order,
            "dataset": str(self.settings.dataset),
        }


class PageConflict(DecisionConflict):
    """A :class:`DecisionConflict` with the view the page goes on with (answered with 409)."""

    def __init__(self, message: str, view: View) -> None:
        super().__init__(message)
        self.view = view


def parse_labels(text: str) -> tuple[str, ...]:
    """``--new-labels a,b``: names separated by commas (blanks dropped).

    >>> parse_labels("ident, snow,")
    ('ident', 'snow')
    """
    return tuple(part.strip() for part in text.split(",") if part.strip())
