"""The collect folder on disk: images, one JSON line per kept frame, the model's labels.

Layout (read by ``stream-classify label``; keep it stable)::

    DIR/frames/<id>.jpg     one image per kept frame, <id> = <source slug>-<frame index>-<8 hex>
    DIR/collected.jsonl     append-only, one JSON object per kept frame (see :func:`record`)
    DIR/labels.txt          the model's labels, one per line in model order; labels of a later
                            model version are appended, old lines stay

An image is written under a temporary name and renamed, and its line is appended only then, so a
reader never meets a line whose image is half written. The size cap deletes the oldest images
first; their lines stay (a reader skips lines without an image). An existing folder is continued:
lines are appended and ids never collide with earlier ones.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camera_tools.camera_errors import SinkError
from camera_tools.collect.frame_selection import AnsweredFrame, Reason
from camera_tools.sinks import slugify

logger = logging.getLogger(__name__)

FRAMES_DIR = "frames"
JSONL_NAME = "collected.jsonl"
LABELS_NAME = "labels.txt"
_TMP_SUFFIX = ".tmp"
_SLUG_LENGTH = 40


def record(frame: AnsweredFrame, frame_id: str, reasons: Sequence[Reason]) -> dict[str, Any]:
    """The JSON object of one kept frame in ``collected.jsonl``.

    Example:
        >>> f = AnsweredFrame("cam", 7, 0.28, 0.0, "black", 0.41, (("program", 0.7),), "program", 0.7, "2")
        >>> line = record(f, "cam-7-0a1b2c3d", [Reason.LOW_CONFIDENCE])
        >>> line["image"], line["label"], line["top"], line["wall_time"], line["reasons"]
        ('frames/cam-7-0a1b2c3d.jpg', 'black', [['program', 0.7]], '1970-01-01T00:00:00.000Z', ['low_confidence'])
    """
    wall = dt.datetime.fromtimestamp(frame.wall_time, dt.UTC)
    return {
        "id": frame_id,
        "image": f"{FRAMES_DIR}/{frame_id}.jpg",
        "source": frame.source,
        "frame": frame.frame,
        "time": round(frame.time_s, 6),
        # Milliseconds and Z: the form JavaScript's Date.toISOString writes and every parser reads.
        "wall_time": wall.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "label": frame.label,
        "score": frame.score,
        "top": [[label, score] for label, score in frame.top],
        "window_label": frame.window_label,
        "window_score": frame.window_score,
        "model_version": frame.model_version,
        "reasons": [reason.value for reason in reasons],
    }


class CollectFolder:
    """Writes kept frames into a collect folder and keeps it under ``max_bytes``.

    Not thread-safe: one thread (the collector's writer) uses it.

    Args:
        directory: Created if missing; an existing folder is continued.
        max_bytes: Cap on the images, ``collected.jsonl`` and ``labels.txt`` together.

    Raises:
        SinkError: The folder cannot be created or written.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.frames_dir = directory / FRAMES_DIR
        self.jsonl_path = directory / JSONL_NAME
        self.labels_path = directory / LABELS_NAME
        self.deleted = 0  # images deleted by the size cap
        self._nonce = os.urandom(8).hex()
        self._made = 0
        try:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            self._ids = self._known_ids()
            # oldest first: (name, size); names are ids, so a rename never reorders them
            self._images: collections.deque[tuple[str, int]] = collections.deque(self._scan())
            self._end_last_line()
            self._jsonl = self.jsonl_path.open("ab", buffering=0)
        except OSError as exc:
            raise SinkError(f"cannot use the collect folder {directory}: {exc}") from exc
        self._other_bytes = self._size(self.jsonl_path) + self._size(self.labels_path)
        self._image_bytes = sum(size for _, size in self._images)
        self._enforce_cap()

    @property
    def total_bytes(self) -> int:
        """What the folder's files take now (as this writer counts them)."""
        return self._image_bytes + self._other_bytes

    @property
    def images(self) -> int:
        """Images in ``frames/`` now."""
        return len(self._images)

    def new_id(self, source: str, frame: int) -> str:
        """A filename-safe id never used in this folder: ``<slug>-<frame>-<8 hex>``."""
        slug = slugify(source, max_length=_SLUG_LENGTH)
        while True:
            self._made += 1
            seed = f"{self._nonce}:{source}:{frame}:{self._made}".encode()
            frame_id = f"{slug}-{frame}-{hashlib.blake2b(seed, digest_size=4).hexdigest()}"
            if frame_id not in self._ids:
                self._ids.add(frame_id)
                return frame_id

    def add(self, frame_id: str, jpeg: bytes, line: dict[str, Any]) -> None:
        """Write the image, then its line, then delete the oldest images over the cap.

        Raises:
            OSError: The disk refused the image or the line.
        """
        path = self.frames_dir / f"{frame_id}.jpg"
        temporary = path.with_name(path.name + _TMP_SUFFIX)
        temporary.write_bytes(jpeg)
        os.replace(temporary, path)
        self._images.append((path.name, len(jpeg)))
        self._image_bytes += len(jpeg)
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        self._jsonl.write(data)  # unbuffered: one write call per line
        self._other_bytes += len(data)
        self._enforce_cap()

    def merge_labels(self, labels: Sequence[str]) -> list[str]:
        """Add the labels not yet in ``labels.txt`` at its end; return them."""
        old = self.read_labels()
        added = [label for label in dict.fromkeys(labels) if label not in old]
        if not added:
            return []
        before = self._size(self.labels_path)
        temporary = self.labels_path.with_name(LABELS_NAME + _TMP_SUFFIX)
        temporary.write_text("".join(f"{label}\n" for label in [*old, *added]), encoding="utf-8")
        os.replace(temporary, self.labels_path)
        self._other_bytes += self._size(self.labels_path) - before
        return added

    def read_labels(self) -> list[str]:
        """The labels in ``labels.txt`` (none when it does not exist)."""
        try:
            text = self.labels_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line]

    def close(self) -> None:
        self._jsonl.close()

    def _enforce_cap(self) -> None:
        while self.total_bytes > self.max_bytes and self._images:
            name, size = self._images.popleft()
            # Deleted by hand (or moved by the label page): its bytes are gone either way.
            (self.frames_dir / name).unlink(missing_ok=True)
            self._image_bytes -= size
            self.deleted += 1

    def _known_ids(self) -> set[str]:
        ids = {p.name.removesuffix(".jpg") for p in self.frames_dir.glob("*.jpg")}
        if self.jsonl_path.exists():
            with self.jsonl_path.open(encoding="utf-8") as lines:
                for text in lines:
                    try:
                        ids.add(str(json.loads(text)["id"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash
        return ids

    def _scan(self) -> list[tuple[str, int]]:
        """Images already there, oldest first; leftovers of a crash mid-write are removed."""
        found: list[tuple[int, str, int]] = []
        with os.scandir(self.frames_dir) as entries:
            for entry in entries:
                if entry.name.endswith(_TMP_SUFFIX):
                    Path(entry.path).unlink(missing_ok=True)
                elif entry.name.endswith(".jpg") and entry.is_file():
                    info = entry.stat()
                    found.append((info.st_mtime_ns, entry.name, info.st_size))
        return [(name, size) for _, name, size in sorted(found)]

    def _end_last_line(self) -> None:
        """A line cut short by a crash gets its newline, so the next line starts on its own."""
        if self._size(self.jsonl_path) == 0:
            return
        with self.jsonl_path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0
