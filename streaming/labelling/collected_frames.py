"""The folder ``watch --collect DIR`` writes, as the label page reads it.

``DIR/collected.jsonl`` is append-only, one JSON object per kept frame (``id``, ``image``
relative to ``DIR``, ``source``, ``frame``, ``time``, ``wall_time``, ``label``, ``score``,
``top``, ``window_label``, ``window_score``, ``model_version``, ``reasons``);
``DIR/frames/<id>.jpg`` are the images (a disk cap deletes the oldest, so an entry may outlive
its image: it is then left out); ``DIR/labels.txt`` the model's labels in model order.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

COLLECTED_FILE = "collected.jsonl"
MODEL_LABELS_FILE = "labels.txt"
Order = Literal["confidence", "time", "source"]
ORDERS: tuple[Order, ...] = ("confidence", "time", "source")
# An id becomes a file name in the dataset: no separators, no hidden files.
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def valid_frame_id(text: str) -> bool:
    """Whether ``text`` may name a frame (it becomes ``OUT/<label>/<id>.jpg``).

    >>> valid_frame_id("cam1-000042"), valid_frame_id("../x"), valid_frame_id(".hidden")
    (True, False, False)
    """
    return bool(_ID.fullmatch(text))


@dataclass(frozen=True)
class CollectedFrame:
    """One frame ``watch --collect`` kept, with what the model said about it.

    Attributes:
        id: Unique name of the frame; its copy in the dataset is ``<id>.jpg``.
        image: The JPEG (absolute; inside the collected folder).
        source: The watched source (redacted as ``watch`` logs it).
        frame: Frame index in the source.
        time: Seconds into the source.
        wall_time: When it was classified (ISO 8601, UTC).
        label: The frame's own predicted label.
        score: Its score.
        top: The best labels with their scores, best first.
        window_label: The label averaged over the window.
        window_score: Its score.
        model_version: The version that answered.
        reasons: Why it was kept (``low_confidence``, ``label_change``...).
    """

    id: str
    image: Path
    source: str
    frame: int
    time: float
    wall_time: str
    label: str
    score: float
    top: tuple[tuple[str, float], ...] = ()
    window_label: str = ""
    window_score: float = 0.0
    model_version: str = ""
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, folder: Path) -> CollectedFrame:
        """One line of ``collected.jsonl``.

        Raises:
            ValueError: Not an object, a required field missing or of the wrong type, an id
                that cannot name a file, or an image path leaving ``folder``.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            frame_id, image = str(data["id"]), str(data["image"])
            score = float(data["score"])
            entry = cls(
                id=frame_id,
                image=(folder / image).resolve(),
                source=str(data["source"]),
                frame=int(data.get("frame", 0)),
                time=float(data.get("time", 0.0)),
                wall_time=str(data.get("wall_time", "")),
                label=str(data["label"]),
                score=score,
                top=tuple((str(name), float(value)) for name, value in data.get("top") or ()),
                window_label=str(data.get("window_label", "")),
                window_score=float(data.get("window_score", 0.0)),
                model_version=str(data.get("model_version", "")),
                reasons=tuple(str(reason) for reason in data.get("reasons") or ()),
            )
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]!r} field") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a field of the wrong type: {exc}") from exc
        if not valid_frame_id(frame_id):
            raise ValueError(f"id {frame_id!r} cannot name a file")
        if not math.isfinite(score):
            raise ValueError(f"score {score} is not a number")
        if not entry.image.is_relative_to(folder.resolve()):
            raise ValueError(f"image {image!r} is outside the collected folder")
        return entry

    def to_json(self) -> dict[str, Any]:
        """What the page shows (no file paths)."""
        return {
            "id": self.id,
            "source": self.source,
            "frame": self.frame,
            "time": self.time,
            "wall_time": self.wall_time,
            "label": self.label,
            "score": self.score,
            "top": [list(pair) for pair in self.top],
            "window_label": self.window_label,
            "window_score": self.window_score,
            "model_version": self.model_version,
            "reasons": list(self.reasons),
        }


def order_key(order: Order) -> Callable[[CollectedFrame], tuple[Any, ...]]:
    """The sort key of ``--order``: lowest score first, collection time, or source then time.

    Every key ends with the id, so the order is total and the same in every process.
    """
    if order == "confidence":
        return lambda f: (f.score, f.wall_time, f.id)
    if order == "time":
        return lambda f: (f.wall_time, f.source, f.frame, f.id)
    if order == "source":
        return lambda f: (f.source, f.time, f.frame, f.id)
    raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")


@dataclass
class CollectedLog:
    """``collected.jsonl`` read incrementally: each :meth:`refresh` reads only what was appended.

    A last line without its newline is being written: it is read at a later refresh. Bad lines
    are logged once and skipped; an id seen before keeps its first entry.
    """

    folder: Path
    order: Order = "confidence"
    _offset: int = 0
    _frames: dict[str, CollectedFrame] = field(default_factory=dict)
    _sorted: list[str] = field(default_factory=list)
    _line: int = 0

    @property
    def path(self) -> Path:
        return self.folder / COLLECTED_FILE

    def refresh(self) -> bool:
        """Read what was appended since the last call; whether any frame was added."""
        try:
            with self.path.open("rb") as file:
                if file.seek(0, 2) < self._offset:  # rewritten from the start: read it again
                    logger.warning("%s shrank: reading it again", self.path)
                    self._offset, self._line = 0, 0
                    self._frames.clear()
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return False
        end = data.rfind(b"\n") + 1
        self._offset += end
        added = self._add_lines(data[:end].splitlines())
        if added:
            key = order_key(self.order)
            self._sorted = [f.id for f in sorted(self._frames.values(), key=key)]
        return added

    def _add_lines(self, lines: Iterable[bytes]) -> bool:
        added = False
        for raw in lines:
            self._line += 1
            if not raw.strip():
                continue
            try:
                entry = CollectedFrame.from_json(json.loads(raw), self.folder)
            except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
                logger.warning("%s:%d: skipped: %s", self.path, self._line, exc)
                continue
            if entry.id in self._frames:
                logger.warning("%s:%d: id %s seen before: skipped", self.path, self._line, entry.id)
                continue
            self._frames[entry.id] = entry
            added = True
        return added

    def ordered(self) -> list[str]:
        """Every frame id, in ``order``."""
        return list(self._sorted)

    def get(self, frame_id: str) -> CollectedFrame | None:
        return self._frames.get(frame_id)

    def __len__(self) -> int:
        return len(self._frames)


def read_model_labels(folder: Path) -> tuple[str, ...]:
    """``DIR/labels.txt``: the model's labels in model order (none when the file is missing)."""
    path = folder / MODEL_LABELS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        logger.warning("%s not found: the page offers only the --new-labels given", path)
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())
