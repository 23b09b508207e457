"""Turn per-frame labels into stretches of the same label, per source."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from camera_tools.camera_errors import SinkError
from camera_tools.sinks.base import Classification

logger = logging.getLogger(__name__)

SEGMENT_FIELDS = (
    "source",
    "label",
    "start_s",
    "end_s",
    "first_frame",
    "last_frame",
    "mean_score",
    "frames",
)


@dataclass(frozen=True)
class Segment:
    """A stretch of consecutive results of one source with the same label.

    Times are file positions in seconds when the source has them, else
    wall-clock times (``time.time()``).

    Attributes:
        source: Source identifier.
        label: The label shared by the stretch.
        start_s: Time of the first frame.
        end_s: Time of the last frame.
        first_frame: Index of the first frame.
        last_frame: Index of the last frame.
        mean_score: Mean score over the stretch.
        frames: Results in the stretch.
    """

    source: str
    label: str
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    mean_score: float
    frames: int

    def __post_init__(self) -> None:
        if self.end_s < self.start_s:
            raise ValueError(f"end_s ({self.end_s}) is before start_s ({self.start_s})")
        if self.last_frame < self.first_frame:
            raise ValueError(
                f"last_frame ({self.last_frame}) is before first_frame ({self.first_frame})"
            )
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")


class _OpenSegment:
    def __init__(self, result: Classification) -> None:
        self.label = result.label
        self.start = self.end = result.time_s
        self.first = self.last = result.frame_index
        self.score_sum = result.score
        self.frames = 1

    def add(self, result: Classification) -> None:
        self.end = result.time_s
        self.last = result.frame_index
        self.score_sum += result.score
        self.frames += 1

    def close(self, source: str) -> Segment:
        return Segment(
            source,
            self.label,
            self.start,
            self.end,
            self.first,
            self.last,
            self.score_sum / self.frames,
            self.frames,
        )


class SegmentTracker:
    """Groups each source's results into :class:`Segment` objects as they arrive.

    Args:
        on_segment: Called with every closed segment (also those flushed by :meth:`close`).

    Example:
        >>> done = []
        >>> tracker = SegmentTracker(done.append)
        >>> for i, label in enumerate("aab"):
        ...     tracker.update(Classification("cam", i, float(i), label, 0.9))
        >>> tracker.close()
        >>> [(s.label, s.frames) for s in done]
        [('a', 2), ('b', 1)]
    """

    def __init__(self, on_segment: Callable[[Segment], None] | None = None) -> None:
        self._on_segment = on_segment
        self._open: dict[str, _OpenSegment] = {}

    def update(self, result: Classification) -> Segment | None:
        """Add one result; return the segment it closed, if the label changed."""
        current = self._open.get(result.source_id)
        if current is not None and current.label == result.label:
            current.add(result)
            return None
        self._open[result.source_id] = _OpenSegment(result)
        if current is None:
            return None
        return self._emit(current.close(result.source_id))

    def flush(self, source_id: str) -> Segment | None:
        """Close the open segment of one source (e.g. when that source ends)."""
        current = self._open.pop(source_id, None)
        return None if current is None else self._emit(current.close(source_id))

    def close(self) -> list[Segment]:
        """Close every open segment and return them."""
        return [
            seg for seg in (self.flush(source) for source in list(self._open)) if seg is not None
        ]

    def _emit(self, segment: Segment) -> Segment:
        if self._on_segment is not None:
            self._on_segment(segment)
        return segment


class SegmentWriter:
    """Writes segments as CSV (``.csv``) or JSON Lines (``.jsonl``/``.ndjson``), chosen by extension."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".jsonl", ".ndjson"):
            raise ValueError(
                f"segment file must end in .csv, .jsonl or .ndjson, got {self.path.name!r}"
            )
        self._jsonl = suffix != ".csv"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = self.path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot open segment file {self.path}: {exc}") from exc
        self._csv = None if self._jsonl else csv.writer(self._file)
        if self._csv is not None:
            self._csv.writerow(SEGMENT_FIELDS)

    def write_segment(self, segment: Segment) -> None:
        if self._file is None:
            raise SinkError(f"segment file {self.path} is closed")
        if self._csv is not None:
            self._csv.writerow(
                (
                    segment.source,
                    segment.label,
                    f"{segment.start_s:.3f}",
                    f"{segment.end_s:.3f}",
                    segment.first_frame,
                    segment.last_frame,
                    f"{segment.mean_score:.4f}",
                    segment.frames,
                )
            )
        else:
            self._file.write(json.dumps(asdict(segment)) + "\n")
        self._file.flush()  # segments are rare: keep the file current for readers

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SegmentLog:
    """A sink that tracks segments and writes each one when it closes.

    Args:
        path: ``.csv`` or ``.jsonl`` file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._writer = SegmentWriter(path)
        self._tracker = SegmentTracker(self._writer.write_segment)
        self.path = self._writer.path

    def write(self, result: Classification, image: np.ndarray | None = None) -> None:
        self._tracker.update(result)

    def flush_source(self, source_id: str) -> None:
        """Write the open segment of a source that ended."""
        self._tracker.flush(source_id)

    def close(self) -> None:
        self._tracker.close()
        self._writer.close()

    def __enter__(self) -> SegmentLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_segments(path: str | os.PathLike[str]) -> list[Segment]:
    """Read back a file written by :class:`SegmentWriter` (``.csv`` or ``.jsonl``).

    Raises:
        SinkError: The file cannot be read, or a row is not a segment (with its line number).
    """
    path = Path(path)
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    segments: list[Segment] = []
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows: Iterable[tuple[int, dict[str, Any]]]
            if jsonl:
                rows = ((n, json.loads(line)) for n, line in enumerate(file, 1) if line.strip())
            else:
                reader = csv.DictReader(file)
                if reader.fieldnames is None or set(SEGMENT_FIELDS) - set(reader.fieldnames):
                    raise SinkError(
                        f"{path} is not a segment file: expected columns {', '.join(SEGMENT_FIELDS)}"
                    )
                rows = enumerate(reader, 2)
            for line, row in rows:
                try:
                    segments.append(_segment_from_row(row))
                except (KeyError, TypeError, ValueError) as exc:
                    raise SinkError(f"{path}:{line}: not a segment: {exc}") from None
    except OSError as exc:
        raise SinkError(f"cannot read segment file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SinkError(f"{path}: not JSON Lines: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SinkError(f"{path}: not a text file: {exc}") from None
    return segments


def _segment_from_row(row: dict[str, Any]) -> Segment:
    return Segment(
        source=str(row["source"]),
        label=str(row["label"]),
        start_s=float(row["start_s"]),
        end_s=float(row["end_s"]),
        first_frame=int(row["first_frame"]),
        last_frame=int(row["last_frame"]),
        mean_score=float(row["mean_score"]),
        frames=int(row["frames"]),
    )
