"""Inputs of ``train``/``evaluate``: label folders, segment files, video sampling, the split."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streaming.training.annotations import read_annotations
from streaming.training.folders import scan_folder
from streaming.training.loading import LoadOptions, drop_small_classes, load_inputs
from streaming.training.sampling import RepeatFilter, SamplingPolicy
from streaming.training.split import split_by_group
from streaming.training.training_errors import DataError
from streaming.training.training_values import Annotation, FrameSet


def test_folder_groups_frames_of_a_sub_folder_and_reports_empty_labels(
    tmp_path: Path, colour_folders: Callable[..., Path]
) -> None:
    # given colour folders, an empty label folder and an image outside any label
    root = colour_folders(tmp_path / "data", per_label=6)
    (root / "purple").mkdir()
    cv2.imwrite(str(root / "stray.png"), np.zeros((8, 8, 3), np.uint8))

    items, problems = scan_folder(root)

    assert sorted({item.label for item in items}) == ["blue", "green", "red"]
    red = [item for item in items if item.label == "red"]
    clip_groups = {item.group for item in red if item.path.parent.name == "clip"}
    loose_groups = [item.group for item in red if item.path.parent.name == "red"]
    assert len(clip_groups) == 1  # frames of one clip stay together
    assert len(set(loose_groups)) == len(loose_groups) == 4  # loose images are independent
    assert [str(p) for p in problems] == [
        f"{root / 'purple'}: no images: label 'purple' skipped",
        f"{root / 'stray.png'}: image is not inside a label folder: skipped",
    ]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_segments_csv_as_watch_writes_it(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"")
    csv_file = write(
        tmp_path / "seg.csv",
        "source,label,start_s,end_s,first_frame,last_frame,mean_score,frames\n"
        "/recordings/a.mp4,ad,0.000,9.900,0,99,0.91,100\n"
        "/recordings/a.mp4,news,10.000,19.900,100,199,0.88,100\n",
    )

    rows, problems = read_annotations(csv_file, videos_dir=tmp_path / "videos")

    assert problems == []
    assert [(r.line, r.label, r.start_s, r.end_s) for r in rows] == [
        (2, "ad", 0.0, 9.9),
        (3, "news", 10.0, 19.9),
    ]
    assert rows[0].video == tmp_path / "videos" / "a.mp4"  # found by name under --videos


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"source": "gone.mp4", "label": "x", "start": 0, "end": 5}, "video 'gone.mp4' not found"),
        ({"source": "a.mp4", "label": "x", "start": 5, "end": 2}, "end 2.0 is not after start 5.0"),
        (
            {"source": "a.mp4", "label": "x", "start": "soon", "end": 2},
            "start 'soon' is not a number",
        ),
        ({"source": "a.mp4", "label": "", "start": 0, "end": 2}, "no label column"),
        ({"source": "a.mp4", "label": "x", "end": 2}, "no start_s or start column"),
        ({"source": "a.mp4", "label": "x", "start": -1, "end": 2}, "must be a finite number >= 0"),
    ],
)
def test_bad_jsonl_rows_are_reported_with_their_line(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    good = {"source": "a.mp4", "label": "ok", "start": 10, "end": 20}
    path = write(tmp_path / "seg.jsonl", json.dumps(good) + "\n\n" + json.dumps(row) + "\n")

    rows, problems = read_annotations(path)

    assert [r.label for r in rows] == ["ok"]
    assert len(problems) == 1 and problems[0].where == f"{path}:3", problems
    assert message in problems[0].message and problems[0].message.endswith("row skipped")


def test_overlapping_rows_of_other_labels_skip_the_later_row(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    path = write(
        tmp_path / "seg.csv",
        "source,label,start,end\na.mp4,ad,0,10\na.mp4,ad,8,12\na.mp4,news,11,20\na.mp4,news,20,30\n",
    )

    rows, problems = read_annotations(path)

    assert [(r.line, r.label) for r in rows] == [(2, "ad"), (3, "ad"), (5, "news")]
    assert [str(p) for p in problems] == [
        f"{path}:4: news 11-20 s overlaps line 3 (ad 8-12 s) of a.mp4: row skipped"
    ]


@pytest.mark.slow  # loads the inputs through TensorFlow
def test_overlaps_between_two_segment_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    first = write(tmp_path / "one.csv", "source,label,start,end\na.mp4,ad,0,10\n")
    second = write(tmp_path / "two.csv", "source,label,start,end\na.mp4,news,5,20\n")
    (tmp_path / "data" / "x").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "data" / "x" / "i.png"), np.zeros((8, 8, 3), np.uint8))

    loaded = load_inputs([tmp_path / "data", first, second], LoadOptions(16, 16))

    assert [str(p) for p in loaded.problems] == [
        f"{second}:2: news 5-20 s overlaps {first}:2 (ad 0-10 s) of a.mp4: row skipped",
        f"{first}:2: cannot open file source {tmp_path / 'a.mp4'}: row skipped",
    ]


def test_sample_times_skip_the_cut_margin() -> None:
    policy = SamplingPolicy(fps=2.0, cut_margin_s=0.5)
    row = Annotation(Path("s.csv"), 2, Path("v.mp4"), "x", 10.0, 13.0)
    assert policy.times(row) == [10.5, 11.0, 11.5, 12.0, 12.5]
    short = Annotation(Path("s.csv"), 3, Path("v.mp4"), "x", 10.0, 10.8)
    assert policy.times(short) == []
    assert policy.group(Path("v.mp4"), 59.9) != policy.group(Path("v.mp4"), 60.0)


def test_repeat_filter_skips_near_identical_frames() -> None:
    gate = RepeatFilter(min_change=2.0)
    frame = np.full((48, 64, 3), 100, np.uint8)
    assert not gate.is_repeat(frame)
    assert gate.is_repeat(frame + 1)  # one grey level: the same picture
    assert not gate.is_repeat(frame + 30)


def frames_of(groups: dict[str, tuple[str, int]]) -> FrameSet:
    labels, names = [], []
    for group, (label, count) in groups.items():
        labels += [label] * count
        names += [group] * count
    return FrameSet(
        np.zeros((len(labels), 8, 8, 3), np.uint8), tuple(labels), tuple(names), tuple(names)
    )


def test_split_keeps_every_group_on_one_side_and_every_label_on_both() -> None:
    frames = frames_of({f"{label}{i}": (label, 5 + i) for label in "abc" for i in range(5)})

    train, val = split_by_group(frames, 0.2, seed=3)

    assert not set(train.groups) & set(val.groups)
    assert set(train.labels) == set(val.labels) == {"a", "b", "c"}
    assert len(train) + len(val) == len(frames)
    assert split_by_group(frames, 0.2, seed=3)[1].groups == val.groups  # repeatable


def test_split_refuses_to_leak_a_label_that_lives_in_one_video() -> None:
    frames = frames_of({"v1": ("a", 10), "v2": ("a", 10), "v3": ("b", 20)})
    with pytest.raises(DataError, match="'b' without leaking"):
        split_by_group(frames, 0.2, seed=0)


def test_corrupt_image_is_skipped_and_small_labels_dropped(
    tmp_path: Path, colour_folders: Callable[..., Path]
) -> None:
    root = colour_folders(tmp_path / "data", per_label=4)
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "tiny").mkdir()
    cv2.imwrite(str(root / "tiny" / "one.png"), np.zeros((20, 20, 3), np.uint8))

    loaded = load_inputs([root, tmp_path / "missing"], LoadOptions(16, 24, workers=2))
    frames, small = drop_small_classes(loaded.frames, min_frames=2)

    assert loaded.frames.images.shape == (13, 16, 24, 3)
    assert [str(p) for p in loaded.problems] == [
        f"{tmp_path / 'missing'}: input not found: skipped",
        f"{root / 'red' / 'broken.png'}: cannot decode image: skipped",
    ]
    assert [str(p) for p in small] == [
        "label 'tiny': only 1 frame(s), fewer than --min-per-class 2: label skipped"
    ]
    assert sorted(frames.counts().items()) == [("blue", 4), ("green", 4), ("red", 4)]
    # RGB, as the server feeds the model: red frames have a high first channel
    red = frames.images[[i for i, label in enumerate(frames.labels) if label == "red"]]
    assert red[..., 0].mean() > 150 > red[..., 2].mean()


def test_video_frames_are_sampled_at_their_times(video_set: Any, tmp_path: Path) -> None:
    segments = write(
        tmp_path / "seg.csv",
        f"source,label,start,end\n{video_set.folder / 'c1.mp4'},testsrc2,0,3.9\n"
        f"{video_set.folder / 'c1.mp4'},life,8,30\n",
    )
    loaded = load_inputs([segments], LoadOptions(32, 32, SamplingPolicy(fps=2.0, min_change=0)))

    times = [origin.rsplit("@", 1)[1] for origin in loaded.frames.origins]
    assert times[:6] == ["0.50s", "1.00s", "1.50s", "2.00s", "2.50s", "3.00s", "3.50s"][:6]
    assert loaded.frames.counts()["life"] >= 7
    # the clip is 12 s long: the rest of the life row is reported, not silently dropped
    assert any(p.where == f"{segments}:3" and "ends at" in p.message for p in loaded.problems)
