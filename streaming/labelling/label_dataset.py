"""The label page's output folder: ``OUT/<label>/<id>.jpg`` copies and ``OUT/decisions.jsonl``.

``decisions.jsonl`` is the truth; the copies follow from it. Every change happens under an
exclusive lock (``fcntl.flock`` on ``OUT/.decisions.lock``, plus a thread lock for the pages
of one process), after replaying whatever other processes appended, so two pages, in one
process or two, never decide one frame twice. Each decision is one line appended and fsync'd
before the page hears about it; the copy is made before the line (into a ``.part`` file that
``train`` does not read) and moved into place after it. :meth:`LabelDataset.reconcile`, run at
start, makes the tree match the file again whatever step a killed process stopped at.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from streaming.labelling.label_decisions import Decision, DecisionBook, Leases

logger = logging.getLogger(__name__)

DECISIONS_FILE = "decisions.jsonl"
LOCK_FILE = ".decisions.lock"
LEASES_FILE = ".leases.json"
PART_SUFFIX = ".part"  # not an image extension: train never reads a half-made copy


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LabelDataset:
    """The output folder of one or more label pages.

    Args:
        out: The folder (made when missing).

    Use :meth:`locked` around every read-modify-write; inside it :attr:`book` is up to date
    with every line any process wrote.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.decisions_path = out / DECISIONS_FILE
        self._leases_path = out / LEASES_FILE
        self._thread_lock = threading.Lock()
        # Opened once: flock belongs to this open file, so the threads of this process take
        # turns on _thread_lock and the processes on the flock.
        self._lock_fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        self.book = DecisionBook()
        self._offset = 0
        self._line = 0
        self._torn = False  # the file ends in a partial line (a writer died mid-line)

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @contextlib.contextmanager
    def locked(self) -> Iterator[DecisionBook]:
        """Hold the dataset; the book is caught up with the file on entry."""
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._catch_up()
                yield self.book
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        try:
            with self.decisions_path.open("rb") as file:
                size = file.seek(0, 2)
                if size < self._offset:  # replaced or cut by hand: replay it from the start
                    logger.warning("%s shrank: replaying it again", self.decisions_path)
                    self.book, self._offset, self._line = DecisionBook(), 0, 0
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._torn = end < len(data)
        self._offset += end
        for raw in data[:end].splitlines():
            self._line += 1
            if not raw.strip():
                continue
            try:
                decision = Decision.from_json(json.loads(raw))
            except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
                logger.warning("%s:%d: skipped: %s", self.decisions_path, self._line, exc)
                continue
            if not self.book.replay(decision):
                logger.warning(
                    "%s:%d: %s of frame %s ignored: it does not follow from the lines before",
                    self.decisions_path,
                    self._line,
                    decision.action,
                    decision.id,
                )

    # -- writing (inside locked()) ----------------------------------------------------------

    def record(self, decision: Decision, image: Path | None = None) -> None:
        """Check ``decision`` against the replayed state, then write it and its copy.

        ``image`` is the frame's JPEG (needed for an assignment; for the undo of one it is
        where the copy goes back to when the collected image has been deleted since).

        Raises:
            DecisionConflict: The state does not allow it (nothing is written).
            OSError: The image cannot be copied or the line written (nothing is recorded).
        """
        self.book.check(decision)
        part: Path | None = None
        if decision.action == "assign":
            if image is None or decision.label is None:
                raise ValueError("an assignment needs its image")
            part = self._copy_part(image, decision.label, decision.id)
        try:
            self._append(decision)
        except BaseException:
            if part is not None:
                part.unlink(missing_ok=True)
            raise
        before = self.book.standing(decision.id)
        self.book.replay(decision)
        if part is not None:
            part.replace(self.copy_path(decision))
            _fsync_dir(part.parent)
        elif decision.action == "undo" and before is not None and before.action == "assign":
            self._remove_copy(before, image)

    def copy_path(self, decision: Decision) -> Path:
        assert decision.label is not None
        return self.out / decision.label / f"{decision.id}.jpg"

    def _copy_part(self, image: Path, label: str, frame_id: str) -> Path:
        folder = self.out / label
        folder.mkdir(exist_ok=True)
        part = folder / f".{frame_id}.jpg{PART_SUFFIX}"
        try:
            shutil.copyfile(image, part)
            with part.open("rb") as file:
                os.fsync(file.fileno())
        except BaseException:
            part.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # made for this copy: no empty label folder left behind
            raise
        return part

    def _append(self, decision: Decision) -> None:
        line = json.dumps(decision.to_json(), separators=(",", ":")).encode() + b"\n"
        if self._torn:
            # A writer died mid-line: end that line, so this one is read on its own.
            logger.warning("%s ended in a partial line: it is skipped", self.decisions_path)
            line = b"\n" + line
        with self.decisions_path.open("ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        # Ours are the last bytes (we hold the lock): skip them at the next catch-up.
        self._offset = self.decisions_path.stat().st_size
        self._line += line.count(b"\n")
        self._torn = False

    def _remove_copy(self, assigned: Decision, collected_image: Path | None) -> None:
        copy = self.copy_path(assigned)
        if collected_image is not None and not collected_image.exists() and copy.exists():
            # The collector's disk cap took the original meanwhile: the copy goes back.
            collected_image.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(copy, collected_image)
        else:
            copy.unlink(missing_ok=True)
        # An empty label folder would be a label without images to train: leave none behind.
        with contextlib.suppress(OSError):
            copy.parent.rmdir()

    # -- start-up ---------------------------------------------------------------------------

    def reconcile(self, images: Mapping[str, Path]) -> int:
        """Make the tree what the decisions say (inside :meth:`locked`); how many files changed.

        For every frame the file names: a copy under a label other than its standing
        assignment is removed, a missing copy of a standing one is made again from ``images``
        (frame id to collected JPEG), and half-made ``.part`` copies are removed. Files of
        frames the file never named (added by hand) are left alone.
        """
        changed = 0
        assigned = self.book.assigned()
        for folder in sorted(p for p in self.out.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.name.endswith(PART_SUFFIX):
                    path.unlink(missing_ok=True)
                    changed += 1
                    continue
                frame_id = path.stem if path.suffix == ".jpg" else None
                if frame_id in self.book.ever and assigned.get(frame_id) != folder.name:
                    source = images.get(frame_id)
                    if source is not None and not source.exists():
                        logger.warning("moving %s back to %s: it was undone", path, source)
                        source.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(path, source)
                    else:
                        logger.warning("removing %s: no standing decision puts it there", path)
                        path.unlink()
                    changed += 1
        for frame_id, label in assigned.items():
            copy = self.out / label / f"{frame_id}.jpg"
            if copy.exists():
                continue
            source = images.get(frame_id)
            if source is None or not source.exists():
                logger.warning("%s is missing and its collected image is gone", copy)
                continue
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, copy)
            changed += 1
        return changed

    # -- leases -----------------------------------------------------------------------------

    def leases(self) -> Leases:
        """Who is shown what (inside :meth:`locked`; shared by every process on this folder)."""
        try:
            return Leases.from_json(json.loads(self._leases_path.read_text()))
        except (OSError, ValueError):
            return Leases()

    def save_leases(self, leases: Leases) -> None:
        # No fsync: a lease lost in a crash only means another page may be shown that frame.
        tmp = self._leases_path.with_name(self._leases_path.name + ".tmp")
        tmp.write_text(json.dumps(leases.to_json()))
        tmp.replace(self._leases_path)

    def update_leases(self, change: Callable[[Leases], Leases]) -> Leases:
        """Apply ``change`` to the stored leases (inside :meth:`locked`)."""
        leases = change(self.leases())
        self.save_leases(leases)
        return leases
