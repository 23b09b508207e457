"""``watch --collect``: keep the frames worth a person's look, off the path that sends frames.

:meth:`Collector.offer` is called with every answered frame, on the thread that delivers them to
every output, so it only does cheap work: the rules (:mod:`~.frame_selection`), the rate cap,
and, for a frame the rules and the cap want, its fingerprint (about 0.05 ms whatever the frame
size) to skip near-duplicates of the source's recent kept frames. A frame that passes goes into
a small bounded queue; one writer thread scales it down, encodes it as JPEG and writes it into
the :class:`~.collect_folder.CollectFolder`. When the writer falls behind and the queue is
full, the frame is dropped and counted rather than slow down watching.

The writer also keeps ``labels.txt`` up to date: it asks the server for the model's labels
(through ``fetch_labels``) when asked to (at each connection) and when a frame comes from a
model version not seen before.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from camera_tools.collect.collect_folder import CollectFolder, record
from camera_tools.collect.collect_options import CollectOptions
from camera_tools.collect.frame_selection import (
    AnsweredFrame,
    Candidate,
    RateCap,
    SourceSelector,
)
from camera_tools.collect.image_hash import RecentFingerprints, fingerprint

logger = logging.getLogger(__name__)

_POLL_S = 0.5  # how often an idle writer looks for label requests
_LABELS_RETRY_S = 5.0  # after a failed label request
_STOP = None  # the queue's end marker

FetchLabels = Callable[[], tuple[str, Sequence[str]]]
"""Asks the server for its model: ``(model version, labels in model order)``."""


@dataclass
class CollectCounts:
    """What the collector did in a run.

    Attributes:
        kept: Frames written (image and line).
        reasons: Frames written per reason (a frame may count under several).
        skipped_rate: Frames the rules wanted, over the per-minute cap.
        skipped_duplicate: Frames the rules wanted, near-duplicates of a recent kept frame.
        dropped: Frames dropped because the writer was behind (queue full).
        failed: Frames that could not be encoded or written.
        deleted: Older images deleted by the size cap.
    """

    kept: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped_rate: int = 0
    skipped_duplicate: int = 0
    dropped: int = 0
    failed: int = 0
    deleted: int = 0

    def describe(self) -> str:
        """One line for the console."""
        why = ", ".join(f"{reason} {n}" for reason, n in sorted(self.reasons.items())) or "-"
        return (
            f"{self.kept} frames kept ({why}); skipped {self.skipped_rate} over the rate cap, "
            f"{self.skipped_duplicate} near-duplicates; {self.dropped} dropped, "
            f"{self.failed} failed, {self.deleted} old images deleted for space"
        )


class _SourceRules:
    """One source's selector, rate cap and recent fingerprints."""

    def __init__(self, options: CollectOptions, rng: random.Random) -> None:
        self.selector = SourceSelector(below=options.below, sample=options.sample, rng=rng)
        self.rate = RateCap(options.max_per_min)
        self.recent = RecentFingerprints(options.duplicate_history, options.duplicate_bits)


def scale_down(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` with its long side at most ``max_side`` (the same array when it already is)."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image
    size = (max(1, round(width * max_side / longest)), max(1, round(height * max_side / longest)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Collector:
    """Keeps the frames worth a person's look in a collect folder; see the module docstring.

    Args:
        options: The folder, rules and bounds.
        fetch_labels: Asks the server for its model's version and labels; ``None`` leaves
            ``labels.txt`` alone.

    Raises:
        SinkError: The folder cannot be created or written.
    """

    def __init__(self, options: CollectOptions, *, fetch_labels: FetchLabels | None = None) -> None:
        self.options = options
        self.counts = CollectCounts()
        self._folder = CollectFolder(options.directory, options.max_bytes)
        self._fetch_labels = fetch_labels
        self._sources: dict[str, _SourceRules] = {}
        self._versions: set[str] = set()
        self._jobs: queue.Queue[Candidate | None] = queue.Queue(maxsize=options.queue_size)
        # Unbounded but tiny: one request per connection or new model version.
        self._label_requests: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="collect-writer", daemon=True)
        self._writer.start()

    @property
    def folder(self) -> CollectFolder:
        return self._folder

    # -- the delivering thread ----------------------------------------------------------------

    def offer(self, frame: AnsweredFrame) -> None:
        """The next answered frame of its source (in order per source). Returns at once."""
        if frame.model_version not in self._versions:
            self._versions.add(frame.model_version)
            self._label_requests.put(frame.model_version)
        rules = self._sources.get(frame.source)
        if rules is None:
            rules = self._sources[frame.source] = _SourceRules(
                self.options, self._rng(frame.source)
            )
        candidate = rules.selector.push(frame)
        if candidate is not None:
            self._consider(rules, candidate)

    def finish_source(self, source: str) -> None:
        """The source ended: decide its last frame."""
        rules = self._sources.pop(source, None)
        if rules is None:
            return
        candidate = rules.selector.finish()
        if candidate is not None:
            self._consider(rules, candidate)

    def refresh_labels(self) -> None:
        """Ask the server for the labels again (e.g. after connecting)."""
        self._label_requests.put(None)

    def close(self, timeout_s: float = 30.0) -> CollectCounts:
        """Decide every source's last frame, write what is queued, close the folder."""
        if self._closed:
            return self.counts
        self._closed = True
        for source in list(self._sources):
            self.finish_source(source)
        try:
            self._jobs.put(_STOP, timeout=timeout_s)
        except queue.Full:
            logger.warning("collect: the writer is stuck; closing without it")
        self._writer.join(timeout=timeout_s)
        if not self._writer.is_alive():
            self._folder.close()
        self.counts.deleted = self._folder.deleted
        return self.counts

    def _rng(self, source: str) -> random.Random:
        # One generator per source, so a seeded run draws the same samples for a source however
        # its answers interleave with other sources'.
        return random.Random(None if self.options.seed is None else f"{self.options.seed}:{source}")

    def _consider(self, rules: _SourceRules, candidate: Candidate) -> None:
        frame = candidate.frame
        if frame.image is None:
            return  # nothing to show a person
        if not rules.rate.allows(frame.time_s):
            self.counts.skipped_rate += 1
            return
        mark = fingerprint(frame.image)
        if rules.recent.has_near(mark):
            self.counts.skipped_duplicate += 1
            return
        rules.rate.record(frame.time_s)
        rules.recent.add(mark)
        try:
            self._jobs.put_nowait(candidate)
        except queue.Full:
            self.counts.dropped += 1

    # -- the writer thread --------------------------------------------------------------------

    def _write_loop(self) -> None:
        labels_due: float | None = None  # when to ask for labels next; None = not wanted
        fetched: set[str] = set()
        while True:
            labels_due = self._take_label_requests(labels_due, fetched)
            if labels_due is not None and time.monotonic() >= labels_due:
                labels_due = self._update_labels(fetched)
            try:
                job = self._jobs.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if job is _STOP:
                # A request not served yet (a short run) is served once now, so a run that
                # connected always leaves labels.txt behind.
                if self._take_label_requests(labels_due, fetched) is not None:
                    self._update_labels(fetched)
                return
            self._write(job)

    def _take_label_requests(self, due: float | None, fetched: set[str]) -> float | None:
        while True:
            try:
                version = self._label_requests.get_nowait()
            except queue.Empty:
                return due
            if version is None or version not in fetched:
                due = time.monotonic() if due is None else min(due, time.monotonic())

    def _update_labels(self, fetched: set[str]) -> float | None:
        """Merge the model's labels into ``labels.txt``; when to try again (``None``: done)."""
        if self._fetch_labels is None:
            return None
        try:
            version, labels = self._fetch_labels()
            added = self._folder.merge_labels(labels)
        except Exception as exc:  # a server away for a moment must not stop collecting
            logger.warning("collect: cannot update %s: %s", self._folder.labels_path, exc)
            return time.monotonic() + _LABELS_RETRY_S
        fetched.add(version)
        if added:
            logger.info("collect: labels of model version %s: added %s", version or "?", added)
        return None

    def _write(self, candidate: Candidate) -> None:
        frame = candidate.frame
        assert frame.image is not None  # checked by _consider
        try:
            image = scale_down(frame.image, self.options.max_side)
            ok, encoded = cv2.imencode(
                ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality]
            )
            if not ok:
                raise ValueError(f"JPEG encoding failed for a {image.shape} frame")
            frame_id = self._folder.new_id(frame.source, frame.frame)
            self._folder.add(
                frame_id, encoded.tobytes(), record(frame, frame_id, candidate.reasons)
            )
        except (OSError, ValueError, cv2.error) as exc:
            self.counts.failed += 1
            log = logger.warning if self.counts.failed == 1 else logger.debug
            log("collect: cannot keep frame %d of %s: %s", frame.frame, frame.source, exc)
            return
        self.counts.kept += 1
        self.counts.reasons.update(reason.value for reason in candidate.reasons)
        self.counts.deleted = self._folder.deleted
