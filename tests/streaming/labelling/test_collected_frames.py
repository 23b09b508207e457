"""Reading the folder `watch --collect` writes: bad lines, vanished images, a growing file, order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streaming.labelling.collected_frames import CollectedFrame, CollectedLog, read_model_labels

from .collected import entry, write_collected


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({}, None),
        ({"id": "../escape"}, "cannot name a file"),
        ({"id": ".hidden"}, "cannot name a file"),
        ({"image": "../outside.jpg"}, "outside the collected folder"),
        ({"image": "/etc/passwd"}, "outside the collected folder"),
        ({"score": "high"}, "wrong type"),
        ({"score": float("nan")}, "not a number"),
        ({"label": None, "score": 0.5}, None),  # str(None): odd but readable
        ({"top": [["a"]]}, "wrong type"),
    ],
)
def test_entries(tmp_path: Path, change: dict[str, Any], error: str | None) -> None:
    data = {**entry(3), **change}
    if error is None:
        frame = CollectedFrame.from_json(data, tmp_path)
        assert frame.image == (tmp_path / data["image"]).resolve()
        assert frame.to_json()["id"] == data["id"] and "image" not in frame.to_json()
    else:
        with pytest.raises(ValueError, match=error):
            CollectedFrame.from_json(data, tmp_path)


@pytest.mark.parametrize("missing", ["id", "image", "source", "label", "score"])
def test_required_fields(tmp_path: Path, missing: str) -> None:
    data = entry(1)
    del data[missing]
    with pytest.raises(ValueError, match=f"no '{missing}' field"):
        CollectedFrame.from_json(data, tmp_path)


def test_log_reads_what_is_appended_and_skips_bad_lines(tmp_path: Path) -> None:
    # given three good entries, then a bad line, a duplicate and a line still being written
    collected = write_collected(tmp_path, 3)
    with (tmp_path / "collected.jsonl").open("a") as log:
        log.write("not json\n")
        log.write(json.dumps(entry(0)) + "\n")  # the same id again
        log.write(json.dumps(entry(3))[:20])  # no newline yet
    log_reader = CollectedLog(tmp_path, "time")

    # when it is read
    assert log_reader.refresh() is True

    # then the three good ones are there, in collection order
    assert log_reader.ordered() == collected.ids()
    assert log_reader.refresh() is False

    # when the half line is finished and more frames come
    with (tmp_path / "collected.jsonl").open("a") as log:
        log.write(json.dumps(entry(3))[20:] + "\n")
    write_collected(tmp_path, 2, start=4)
    assert log_reader.refresh() is True
    assert log_reader.ordered() == [f"cam1-{i:06d}" for i in range(6)]
    assert len(log_reader) == 6


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        # scores: 0 .31, 1 .68, 2 .45, 3 .82, 4 .59, 5 .36
        ("confidence", [0, 5, 2, 4, 1, 3]),
        ("time", [0, 1, 2, 3, 4, 5]),
        # sources alternate cam1, cam2: by source, then time in it
        ("source", [0, 2, 4, 1, 3, 5]),
    ],
)
def test_orders(tmp_path: Path, order: str, expected: list[int]) -> None:
    write_collected(tmp_path, 6, sources=("cam1", "cam2"))
    log = CollectedLog(tmp_path, order)  # type: ignore[arg-type]
    log.refresh()
    ids = log.ordered()
    assert [int(i.split("-")[1]) for i in ids] == expected


def test_model_labels(tmp_path: Path) -> None:
    assert read_model_labels(tmp_path) == ()
    (tmp_path / "labels.txt").write_text("black\n\n color_bars \n")
    assert read_model_labels(tmp_path) == ("black", "color_bars")
