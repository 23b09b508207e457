from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camera_tools.camera_errors import DisplayUnavailableError, SinkError
from camera_tools.sinks import (
    CSV_COLUMNS,
    Classification,
    CsvFrameLog,
    DisplaySink,
    Segment,
    SegmentLog,
    SegmentTracker,
    Sink,
    VideoRecorder,
    check_display,
    derive_output_path,
    slugify,
)


def result(
    index: int, label: str, score: float = 0.8, source: str = "cam", **kwargs: Any
) -> Classification:
    kwargs.setdefault("position_s", index / 10)
    return Classification(source, index, 1_700_000_000.0 + index, label, score, **kwargs)


def test_every_sink_follows_the_protocol(tmp_path: Path) -> None:
    sinks = [
        CsvFrameLog(tmp_path / "f.csv"),
        SegmentLog(tmp_path / "s.jsonl"),
        VideoRecorder(tmp_path / "v.mp4", fps=5),
    ]
    for sink in sinks:
        assert isinstance(sink, Sink)
        sink.close()


def test_csv_frame_log_rows(tmp_path: Path) -> None:
    # given
    path = tmp_path / "logs" / "frames.csv"
    # when
    with CsvFrameLog(path) as log:
        log.write(result(0, "cat", 0.91234, frame_label="dog"))
        log.write(result(1, "cat", 0.5, source="rtsp://***@cam/x"))
    # then
    rows = list(csv.reader(path.read_text().splitlines()))
    when = dt.datetime.fromtimestamp(1_700_000_000.0)
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1] == [
        when.date().isoformat(),
        when.time().isoformat("milliseconds"),
        "cam",
        "0",
        "cat",
        "0.9123",
        "dog",
    ]
    assert rows[2][2:] == ["rtsp://***@cam/x", "1", "cat", "0.5000", ""]


def test_csv_frame_log_append_keeps_one_header(tmp_path: Path) -> None:
    path = tmp_path / "frames.csv"
    for i in range(2):
        with CsvFrameLog(path, append=True) as log:
            log.write(result(i, "cat"))
    rows = list(csv.reader(path.read_text().splitlines()))
    assert [row[0] for row in rows].count("date") == 1
    assert len(rows) == 3


def test_writing_to_closed_csv_log_raises(tmp_path: Path) -> None:
    log = CsvFrameLog(tmp_path / "f.csv")
    log.close()
    with pytest.raises(SinkError):
        log.write(result(0, "a"))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("", []),
        ("a", [("a", 0, 0, 1)]),
        ("aaabba", [("a", 0, 2, 3), ("b", 3, 4, 2), ("a", 5, 5, 1)]),
        ("abab", [("a", 0, 0, 1), ("b", 1, 1, 1), ("a", 2, 2, 1), ("b", 3, 3, 1)]),
    ],
)
def test_segment_tracker(labels: str, expected: list[tuple[str, int, int, int]]) -> None:
    done: list[Segment] = []
    tracker = SegmentTracker(done.append)
    for i, label in enumerate(labels):
        tracker.update(result(i, label))
    tracker.close()
    assert [(s.label, s.first_frame, s.last_frame, s.frames) for s in done] == expected
    for segment in done:
        assert segment.start_s == pytest.approx(segment.first_frame / 10)
        assert segment.end_s == pytest.approx(segment.last_frame / 10)


def test_segment_tracker_keeps_sources_apart_and_averages_scores() -> None:
    tracker = SegmentTracker()
    closed = [
        tracker.update(result(0, "a", 0.2, source="cam1")),
        tracker.update(result(0, "b", 0.9, source="cam2")),
        tracker.update(result(1, "a", 0.4, source="cam1")),
        tracker.update(result(1, "b", 0.7, source="cam2")),
        tracker.update(result(2, "c", 0.1, source="cam1")),
    ]
    assert closed[:4] == [None] * 4
    assert closed[4] == Segment("cam1", "a", 0.0, 0.1, 0, 1, pytest.approx(0.3), 2)
    rest = tracker.close()
    assert {(s.source, s.label, s.frames) for s in rest} == {("cam1", "c", 1), ("cam2", "b", 2)}


def test_segment_uses_wall_time_without_position() -> None:
    tracker = SegmentTracker()
    tracker.update(result(0, "a", position_s=None))
    tracker.update(result(5, "a", position_s=None))
    (segment,) = tracker.close()
    assert (segment.start_s, segment.end_s) == (1_700_000_000.0, 1_700_000_005.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_s": 2.0, "end_s": 1.0},
        {"first_frame": 5, "last_frame": 4},
        {"frames": 0},
    ],
)
def test_invalid_segment(kwargs: dict[str, Any]) -> None:
    values: dict[str, Any] = dict(
        source="s",
        label="a",
        start_s=0.0,
        end_s=1.0,
        first_frame=0,
        last_frame=1,
        mean_score=0.5,
        frames=2,
    )
    values.update(kwargs)
    with pytest.raises(ValueError):
        Segment(**values)


@pytest.mark.parametrize("name", ["segments.csv", "segments.jsonl", "segments.ndjson"])
def test_segment_log_file_by_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with SegmentLog(path) as log:
        for i, label in enumerate("aab"):
            log.write(result(i, label, 0.5 + i / 10))
    text = path.read_text()
    if name.endswith(".csv"):
        rows = list(csv.DictReader(text.splitlines()))
        assert [(r["label"], r["first_frame"], r["last_frame"], r["frames"]) for r in rows] == [
            ("a", "0", "1", "2"),
            ("b", "2", "2", "1"),  # the open segment is flushed on close
        ]
        assert rows[0]["mean_score"] == "0.5500"
        assert rows[0]["end_s"] == "0.100"
    else:
        records = [json.loads(line) for line in text.splitlines()]
        assert [(r["label"], r["frames"]) for r in records] == [("a", 2), ("b", 1)]
        assert records[0]["mean_score"] == pytest.approx(0.55)
        assert set(records[0]) == {
            "source", "label", "start_s", "end_s", "first_frame", "last_frame", "mean_score", "frames"
        }  # fmt: skip


@pytest.mark.parametrize("name", ["segments.txt", "segments", "segments.json"])
def test_segment_log_rejects_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="must end in"):
        SegmentLog(tmp_path / name)


@pytest.mark.parametrize(
    ("source_id", "slug"),
    [
        ("rtsp://***@cam.local:554/live/ch1", "rtsp-cam-local-554-live-ch1"),
        ("/videos/My Clip.mp4", "videos-my-clip-mp4"),
        ("0", "0"),
        ("///", "source"),
        ("x" * 100, "x" * 51 + "-" + __import__("hashlib").sha1(b"x" * 100).hexdigest()[:8]),
    ],
)
def test_slugify(source_id: str, slug: str) -> None:
    assert slugify(source_id) == slug
    assert len(slug) <= 60


def test_long_ids_in_one_folder_get_distinct_slugs() -> None:
    folder = "/data/recordings/" + "a-very-long-folder-name/" * 3
    assert slugify(folder + "cam1.mp4") != slugify(folder + "cam2.mp4")


def read_back(path: Path) -> tuple[int, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    count = 0
    size = (0, 0)
    while True:
        ok, image = cap.read()
        if not ok:
            break
        count += 1
        size = (image.shape[1], image.shape[0])
    cap.release()
    return count, size


def test_recorder_output_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoRecorder(path, fps=10) as recorder:
        for i in range(12):
            image = np.full((48, 64, 3), i * 20, np.uint8)
            size_changes = i == 5  # a resized frame is scaled to the first frame's size
            recorder.write(result(i, "a"), cv2.resize(image, (32, 24)) if size_changes else image)
    assert read_back(path) == (12, (64, 48))


def test_recorder_writes_one_file_per_source(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    sources = {"rtsp://***@cam1/live": 7, "/data/clip.mp4": 4}
    with VideoRecorder(path, fps=10, per_source=True) as recorder:
        for source, frames in sources.items():
            for i in range(frames):
                recorder.write(result(i, "a", source=source), np.zeros((48, 64, 3), np.uint8))
    assert read_back(tmp_path / "out-rtsp-cam1-live.mp4")[0] == 7
    assert read_back(tmp_path / "out-data-clip-mp4.mp4")[0] == 4
    assert not path.exists()


def test_single_file_recorder_refuses_a_second_source(tmp_path: Path) -> None:
    with VideoRecorder(tmp_path / "out.mp4", fps=5) as recorder:
        recorder.write(result(0, "a", source="cam1"), np.zeros((48, 64, 3), np.uint8))
        with pytest.raises(SinkError, match="per_source"):
            recorder.write(result(0, "a", source="cam2"), np.zeros((48, 64, 3), np.uint8))


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("runs/out.mp4", "cam 1", "runs/out-cam-1.mp4"),
        ("rec.avi", "rtsp://***@h/x", "rec-rtsp-h-x.avi"),
        ("rec", "a", "rec-a.mp4"),
    ],
)
def test_derive_output_path(path: str, source: str, expected: str) -> None:
    assert derive_output_path(path, source) == Path(expected)


@pytest.mark.parametrize(
    ("environ", "platform", "has_gui", "message"),
    [
        ({"DISPLAY": ":0"}, "linux", False, "no GUI support"),
        ({}, "linux", True, "no screen"),
        ({"DISPLAY": ""}, "linux", True, "DISPLAY"),
        ({}, "linux", False, "no GUI support"),  # the build is the first problem to fix
        ({"DISPLAY": ":0"}, "linux", True, None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True, None),
        ({}, "darwin", True, None),
    ],
)
def test_check_display(
    environ: dict[str, str], platform: str, has_gui: bool, message: str | None
) -> None:
    if message is None:
        check_display(environ=environ, platform=platform, has_gui=lambda: has_gui)
    else:
        with pytest.raises(DisplayUnavailableError, match=message):
            check_display(environ=environ, platform=platform, has_gui=lambda: has_gui)


def test_display_sink_names_the_problem_with_headless_opencv() -> None:
    # opencv-python-headless is what this project installs: it has no GUI backend.
    with pytest.raises(DisplayUnavailableError, match="opencv-python-headless"):
        DisplaySink()


@pytest.mark.parametrize(
    "kwargs",
    [{"frame_index": -1}, {"score": float("nan")}, {"source_id": ""}],
)
def test_invalid_classification(kwargs: dict[str, Any]) -> None:
    values: dict[str, Any] = dict(
        source_id="cam", frame_index=0, captured_at=0.0, label="a", score=0.5
    )
    values.update(kwargs)
    with pytest.raises(ValueError):
        Classification(**values)
