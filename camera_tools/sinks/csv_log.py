"""Per-frame CSV log."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
from pathlib import Path
from typing import TextIO

import numpy as np

from camera_tools.camera_errors import SinkError
from camera_tools.sinks.base import Classification

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("date", "time", "source", "frame", "label", "score", "frame_label")


class CsvFrameLog:
    """Writes one CSV row per classified frame.

    Columns: ``date`` (local, ISO), ``time`` (local, millisecond precision),
    ``source``, ``frame``, ``label``, ``score`` (4 decimals), ``frame_label``
    (empty when unknown).

    Args:
        path: Output file; parent folders are created.
        append: Add to an existing file instead of replacing it (the header is
            written only when the file is new or empty).
        flush_every: Flush after this many rows, so a crash loses little.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, append: bool = False, flush_every: int = 1
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.path = Path(path)
        self._flush_every = flush_every
        self._pending = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not (append and self.path.exists() and self.path.stat().st_size > 0)
            self._file: TextIO | None = self.path.open(
                "a" if append else "w", newline="", encoding="utf-8"
            )
        except OSError as exc:
            raise SinkError(f"cannot open CSV log {self.path}: {exc}") from exc
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(CSV_COLUMNS)

    def write(self, result: Classification, image: np.ndarray | None = None) -> None:
        if self._file is None:
            raise SinkError(f"CSV log {self.path} is closed")
        when = dt.datetime.fromtimestamp(result.captured_at)
        self._writer.writerow(
            (
                when.date().isoformat(),
                when.time().isoformat(timespec="milliseconds"),
                result.source_id,
                result.frame_index,
                result.label,
                f"{result.score:.4f}",
                result.frame_label or "",
            )
        )
        self._pending += 1
        if self._pending >= self._flush_every:
            self._file.flush()
            self._pending = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CsvFrameLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
