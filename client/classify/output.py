"""Where ``classify`` results go: a readable table, CSV or JSON lines, one row per image."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

from client._types import Prediction

OUTPUT_FORMATS = ("table", "csv", "jsonl")
_MAX_PATH_COLUMN = 80


class ResultWriter(Protocol):
    """Writes one classified image; a header, if any, is written when the writer is made."""

    def write(self, path: Path, prediction: Prediction) -> None: ...


def make_writer(
    kind: str, out: TextIO, paths: Sequence[Path], *, show_frame: bool = False
) -> ResultWriter:
    """The writer for ``kind`` (one of :data:`OUTPUT_FORMATS`).

    Args:
        paths: every path that may be written, so the table can size its path column.
        show_frame: add the frame's own label and score to the table (useful with a window > 1;
            CSV and JSON always carry them).
    """
    if kind == "csv":
        return CsvWriter(out)
    if kind == "jsonl":
        return JsonLinesWriter(out)
    if kind == "table":
        width = max((len(str(p)) for p in paths), default=4)
        return TableWriter(out, width, show_frame=show_frame)
    raise ValueError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {kind!r}")


def _top_k_text(prediction: Prediction, separator: str, pair: str) -> str:
    return separator.join(f"{item.label}{pair}{item.score:.4f}" for item in prediction.top_k)


class TableWriter:
    def __init__(self, out: TextIO, path_width: int, *, show_frame: bool) -> None:
        self._out = out
        self._path_width = min(max(path_width, 4), _MAX_PATH_COLUMN)
        self._show_frame = show_frame
        header = f"{'PATH':<{self._path_width}}  {'LABEL':<16} {'SCORE':>6}"
        if show_frame:
            header += f"  {'FRAME LABEL':<16} {'SCORE':>6}"
        out.write(header + "  TOP-K\n")

    def write(self, path: Path, prediction: Prediction) -> None:
        row = f"{str(path):<{self._path_width}}  {prediction.label:<16} {prediction.score:>6.4f}"
        if self._show_frame:
            row += f"  {prediction.frame_label:<16} {prediction.frame_score:>6.4f}"
        self._out.write(row + "  " + _top_k_text(prediction, ", ", " ") + "\n")


class CsvWriter:
    def __init__(self, out: TextIO) -> None:
        self._csv = csv.writer(out, lineterminator="\n")
        self._csv.writerow(["path", "label", "score", "top_k", "frame_label", "frame_score"])

    def write(self, path: Path, prediction: Prediction) -> None:
        self._csv.writerow(
            [
                str(path),
                prediction.label,
                f"{prediction.score:.6f}",
                _top_k_text(prediction, ";", ":"),
                prediction.frame_label,
                f"{prediction.frame_score:.6f}",
            ]
        )


class JsonLinesWriter:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, path: Path, prediction: Prediction) -> None:
        record = {
            "path": str(path),
            "label": prediction.label,
            "score": round(prediction.score, 6),
            "top_k": [
                {"label": item.label, "score": round(item.score, 6)} for item in prediction.top_k
            ],
            "frame_label": prediction.frame_label,
            "frame_score": round(prediction.frame_score, 6),
            "model_version": prediction.model_version,
        }
        self._out.write(json.dumps(record) + "\n")
