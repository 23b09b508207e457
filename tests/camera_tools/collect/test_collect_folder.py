"""The collect folder's format (what ``stream-classify label`` reads) and its size cap."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from camera_tools.camera_errors import SinkError
from camera_tools.collect import AnsweredFrame, CollectFolder, Reason, record
from tests.camera_tools.collected_format import FIELDS


def answered(i: int, source: str = "rtsp://***@cam1/live") -> AnsweredFrame:
    return AnsweredFrame(
        source=source,
        frame=i,
        time_s=i / 25,
        wall_time=1_764_806_400.25 + i,  # 2025-12-04T00:00:00.25Z + i s
        label="black",
        score=0.41,
        top=(("program", 0.7), ("black", 0.3)),
        window_label="program",
        window_score=0.7,
        model_version="3",
    )


def lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "collected.jsonl").read_text().splitlines()]


def test_record_format() -> None:
    line = record(
        answered(12), "rtsp-cam1-live-12-0a1b2c3d", [Reason.LOW_CONFIDENCE, Reason.SAMPLE]
    )
    assert {key: type(value) for key, value in line.items()} == FIELDS
    assert line == {
        "id": "rtsp-cam1-live-12-0a1b2c3d",
        "image": "frames/rtsp-cam1-live-12-0a1b2c3d.jpg",
        "source": "rtsp://***@cam1/live",
        "frame": 12,
        "time": 0.48,
        "wall_time": "2025-12-04T00:00:12.250Z",
        "label": "black",
        "score": 0.41,
        "top": [["program", 0.7], ["black", 0.3]],
        "window_label": "program",
        "window_score": 0.7,
        "model_version": "3",
        "reasons": ["low_confidence", "sample"],
    }
    parsed = dt.datetime.fromisoformat(line["wall_time"])
    assert parsed.utcoffset() == dt.timedelta(0)


def test_add_writes_image_then_line(tmp_path: Path) -> None:
    # given: a new folder
    folder = CollectFolder(tmp_path / "collect", max_bytes=10_000_000)

    # when: two frames are added
    ids = []
    for i in (3, 4):
        frame_id = folder.new_id("rtsp://***@cam1/live", i)
        folder.add(
            frame_id, b"\xff\xd8jpeg" + bytes([i]), record(answered(i), frame_id, [Reason.SAMPLE])
        )
        ids.append(frame_id)
    folder.close()

    # then: one line per frame, in order, each naming its image, which exists; no temporary file
    found = lines(tmp_path / "collect")
    assert [line["id"] for line in found] == ids
    for line in found:
        assert (tmp_path / "collect" / line["image"]).read_bytes().startswith(b"\xff\xd8")
    assert sorted(p.name for p in (tmp_path / "collect" / "frames").iterdir()) == sorted(
        f"{frame_id}.jpg" for frame_id in ids
    )


@pytest.mark.parametrize(
    ("source", "frame", "prefix"),
    [
        ("rtsp://***@cam1/live", 7, "rtsp-cam1-live-7-"),
        ("/videos/Studio A.mp4", 0, "videos-studio-a-mp4-0-"),
        ("0", 12, "0-12-"),
        ("clip.mp4#2", 5, "clip-mp4-2-5-"),
        ("-/-", 1, "source-1-"),  # nothing left of the name
        ("/long/" * 60 + "x.mp4", 2**40, "long-long-"),  # cut to 40 characters with a digest
    ],
)
def test_ids_are_filename_safe(tmp_path: Path, source: str, frame: int, prefix: str) -> None:
    folder = CollectFolder(tmp_path, max_bytes=1_000_000)
    frame_id = folder.new_id(source, frame)
    folder.close()
    assert frame_id.startswith(prefix)
    token = frame_id.rsplit("-", 1)[1]
    assert len(token) == 8 and int(token, 16) >= 0
    # what the label page accepts as a file name: no separators, no hidden files, short
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", frame_id) and len(frame_id) <= 80


def test_continuing_a_folder_appends_and_never_reuses_an_id(tmp_path: Path) -> None:
    # given: a folder written by a first run, one of whose images was deleted since
    first = CollectFolder(tmp_path, max_bytes=10_000_000)
    first_ids = []
    for i in range(3):
        frame_id = first.new_id("cam", i)
        first.add(frame_id, b"x" * 10, record(answered(i, "cam"), frame_id, [Reason.SAMPLE]))
        first_ids.append(frame_id)
    first.close()
    (tmp_path / "frames" / f"{first_ids[0]}.jpg").unlink()

    # when: a second run keeps the same frames of the same source again
    second = CollectFolder(tmp_path, max_bytes=10_000_000)
    second_ids = []
    for i in range(3):
        frame_id = second.new_id("cam", i)
        second.add(frame_id, b"y" * 10, record(answered(i, "cam"), frame_id, [Reason.SAMPLE]))
        second_ids.append(frame_id)
    second.close()

    # then: the lines of both runs are there, the ids all differ, old images are untouched
    assert [line["id"] for line in lines(tmp_path)] == first_ids + second_ids
    assert len(set(first_ids + second_ids)) == 6
    assert (tmp_path / "frames" / f"{first_ids[1]}.jpg").read_bytes() == b"x" * 10


def test_size_cap_deletes_the_oldest_images_and_keeps_their_lines(tmp_path: Path) -> None:
    # given: a cap that holds the lines and about three 1000-byte images
    folder = CollectFolder(tmp_path, max_bytes=5_000)
    ids = []

    # when: eight images are added
    for i in range(8):
        frame_id = folder.new_id("cam", i)
        folder.add(frame_id, bytes(1000), record(answered(i, "cam"), frame_id, [Reason.SAMPLE]))
        ids.append(frame_id)
        assert folder.total_bytes <= 5_000
    folder.close()

    # then: the newest images are left, the oldest went first, every line stays
    left = {p.name.removesuffix(".jpg") for p in (tmp_path / "frames").iterdir()}
    assert left == set(ids[-len(left) :]) and 2 <= len(left) <= 4
    assert folder.deleted == 8 - len(left)
    assert [line["id"] for line in lines(tmp_path)] == ids
    used = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert used <= 5_000


def test_size_cap_applies_to_images_left_by_an_earlier_run_oldest_first(tmp_path: Path) -> None:
    # given: three images of an earlier run, with distinct modification times
    frames = tmp_path / "frames"
    frames.mkdir()
    for n, name in enumerate(["b-old", "a-middle", "c-new"]):
        path = frames / f"{name}.jpg"
        path.write_bytes(bytes(1000))
        os.utime(path, ns=(1_000_000_000 * (n + 1),) * 2)

    # when: the folder is opened with room for two
    folder = CollectFolder(tmp_path, max_bytes=2_500)
    folder.close()

    # then: the oldest by time (not by name) went
    assert sorted(p.name for p in frames.iterdir()) == ["a-middle.jpg", "c-new.jpg"]


def test_leftovers_of_a_crash_are_cleaned(tmp_path: Path) -> None:
    # given: a half-written image and a line cut short
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "cam-1-00000000.jpg.tmp").write_bytes(b"half")
    (tmp_path / "collected.jsonl").write_text('{"id": "cam-0-00000000"}\n{"id": "cam-1-0')

    # when: the folder is continued with one frame
    folder = CollectFolder(tmp_path, max_bytes=1_000_000)
    frame_id = folder.new_id("cam", 2)
    folder.add(frame_id, b"jpeg", record(answered(2, "cam"), frame_id, [Reason.SAMPLE]))
    folder.close()

    # then: no temporary file, and the new line is whole, on its own line
    assert not list((tmp_path / "frames").glob("*.tmp"))
    text = (tmp_path / "collected.jsonl").read_text().splitlines()
    assert text[:2] == ['{"id": "cam-0-00000000"}', '{"id": "cam-1-0']
    assert json.loads(text[2])["id"] == frame_id


@pytest.mark.parametrize(
    ("before", "model", "after", "added"),
    [
        (None, ["program", "black"], ["program", "black"], ["program", "black"]),
        (["program", "black"], ["program", "black"], ["program", "black"], []),
        # a new version with a new label, in another order: appended, old lines kept in place
        (
            ["program", "black"],
            ["black", "static", "program"],
            ["program", "black", "static"],
            ["static"],
        ),
        # a new version without an old label: the old line stays
        (["program", "black"], ["program"], ["program", "black"], []),
    ],
)
def test_labels_merge(
    tmp_path: Path,
    before: list[str] | None,
    model: list[str],
    after: list[str],
    added: list[str],
) -> None:
    if before is not None:
        (tmp_path / "labels.txt").write_text("".join(f"{label}\n" for label in before))
    folder = CollectFolder(tmp_path, max_bytes=1_000_000)
    assert folder.merge_labels(model) == added
    folder.close()
    assert (tmp_path / "labels.txt").read_text() == "".join(f"{label}\n" for label in after)


def test_a_folder_that_cannot_be_made_is_a_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="collect folder"):
        CollectFolder(blocker / "collect", max_bytes=1_000_000)
