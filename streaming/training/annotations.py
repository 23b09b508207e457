"""Segment files: ``source,label,start,end`` rows (seconds) naming videos, in CSV or JSON Lines.

The columns are those ``stream-classify watch --segments`` writes (``start_s``/``end_s``; plain
``start``/``end`` are accepted too), so a watched recording's log, corrected in a spreadsheet,
is training data.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

from streaming.training.training_values import Annotation, Problem

logger = logging.getLogger(__name__)

ANNOTATION_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson"})


def is_annotation_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in ANNOTATION_SUFFIXES


def read_annotations(
    path: Path, videos_dir: Path | None = None
) -> tuple[list[Annotation], list[Problem]]:
    """Parse and check one segments file.

    Rows that cannot be used (bad numbers, a video that is not found, an overlap with an
    earlier row of another label) are returned as problems with their line number; the
    other rows are kept.
    """
    problems: list[Problem] = []
    rows: list[Annotation] = []
    try:
        raw_rows = list(_raw_rows(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [], [Problem(str(path), f"cannot read segments file: {exc}")]
    for line, raw in raw_rows:
        where = f"{path}:{line}"
        if isinstance(raw, str):
            problems.append(Problem(where, f"{raw}: row skipped"))
            continue
        try:
            row = _parse_row(path, line, raw, videos_dir)
        except ValueError as exc:
            problems.append(Problem(where, f"{exc}: row skipped"))
            continue
        rows.append(row)
    kept, overlaps = drop_overlaps(rows)
    return kept, problems + overlaps


def _raw_rows(path: Path) -> Iterator[tuple[int, Mapping[str, object] | str]]:
    """``(line number, row)`` pairs; a row that is not a mapping comes as an error string."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            for record in reader:
                yield reader.line_num, record
        return
    with path.open(encoding="utf-8") as file:
        for line, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, f"not JSON ({exc.msg})"
                continue
            yield line, value if isinstance(value, dict) else "not a JSON object"


def _field(raw: Mapping[str, object], *names: str) -> tuple[str, object]:
    """The first of ``names`` that has a value, and that value."""
    for name in names:
        value = raw.get(name)
        if value is not None and value != "":
            return name, value
    raise ValueError(f"no {' or '.join(names)} column")


def _seconds(raw: Mapping[str, object], *names: str) -> float:
    name, value = _field(raw, *names)
    try:
        seconds = float(str(value))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} {value!r} must be a finite number >= 0")
    return seconds


def _parse_row(
    path: Path, line: int, raw: Mapping[str, object], videos_dir: Path | None
) -> Annotation:
    source = str(_field(raw, "source")[1])
    label = str(_field(raw, "label")[1]).strip()
    if not label:
        raise ValueError("empty label")
    start, end = _seconds(raw, "start_s", "start"), _seconds(raw, "end_s", "end")
    if end <= start:
        raise ValueError(f"end {end} is not after start {start}")
    return Annotation(path, line, resolve_video(source, path.parent, videos_dir), label, start, end)


def resolve_video(source: str, annotation_dir: Path, videos_dir: Path | None) -> Path:
    """Find the video a row names: as given, under ``--videos``, or beside the segments file."""
    given = Path(source)
    candidates = [given] if given.is_absolute() else []
    for folder in (videos_dir, annotation_dir):
        if folder is not None:
            candidates += [folder / given, folder / given.name]
    if not given.is_absolute():
        candidates.append(given)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise ValueError(f"video {source!r} not found (looked for {looked})")


def drop_overlaps(rows: list[Annotation]) -> tuple[list[Annotation], list[Problem]]:
    """Keep the earlier of two rows that give one moment of a video two labels.

    Rows may come from several files (the same video annotated twice).
    """
    kept: list[Annotation] = []
    problems: list[Problem] = []
    by_video: dict[Path, list[Annotation]] = defaultdict(list)
    for row in rows:
        clash = next(
            (
                other
                for other in by_video[row.video.resolve()]
                if other.label != row.label
                and row.start_s < other.end_s
                and other.start_s < row.end_s
            ),
            None,
        )
        if clash is not None:
            problems.append(
                Problem(
                    row.where,
                    f"{row.label} {row.start_s:g}-{row.end_s:g} s overlaps "
                    f"{f'line {clash.line}' if clash.file == row.file else clash.where} "
                    f"({clash.label} {clash.start_s:g}-{clash.end_s:g} s) of {row.video.name}: "
                    "row skipped",
                )
            )
            continue
        by_video[row.video.resolve()].append(row)
        kept.append(row)
    return kept, problems
