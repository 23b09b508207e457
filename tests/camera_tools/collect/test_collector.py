"""The collector as a whole, without a server: rules, bounds, the writer thread and labels.txt."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camera_tools.collect import AnsweredFrame, CollectOptions, Collector
from camera_tools.collect import collector as collector_module
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A textured BGR frame, different per seed (so never a near-duplicate of another seed's)."""
    width, height = size
    small = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def answered(
    i: int,
    *,
    score: float = 0.9,
    window_label: str = "a",
    image: np.ndarray | None = None,
    source: str = "clip.mp4",
    version: str = "1",
    fps: float = 10.0,
) -> AnsweredFrame:
    return AnsweredFrame(
        source=source,
        frame=i,
        time_s=i / fps,
        wall_time=1_764_806_400.0 + i / fps,
        label=window_label,
        score=score,
        top=((window_label, score),),
        window_label=window_label,
        window_score=score,
        model_version=version,
        image=scene(i) if image is None else image,
    )


def lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / "collected.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def options(tmp_path: Path, **overrides: Any) -> CollectOptions:
    values: dict[str, Any] = {"directory": tmp_path / "collect", "sample": 0.0, "seed": 1}
    values.update(overrides)
    return CollectOptions(**values)


@pytest.fixture
def closing() -> Iterator[list[Collector]]:
    """Collectors to close after the test even when it fails (their writer threads end)."""
    made: list[Collector] = []
    yield made
    for collector in made:
        collector.close(timeout_s=5)


def test_each_reason_ends_up_in_the_folder(tmp_path: Path, closing: list[Collector]) -> None:
    # given: a collector and a source whose window label goes a -> b, with one unsure frame
    collector = Collector(options(tmp_path, below=0.5))
    closing.append(collector)
    frames = [
        answered(0),
        answered(1, score=0.3),  # low confidence
        answered(2),
        answered(3),  # the last "a"
        answered(4, window_label="b"),  # the first "b"
        answered(5, window_label="b"),
    ]

    # when: they are offered and the collector is closed
    for frame in frames:
        collector.offer(frame)
    counts = collector.close()

    # then: the three frames are in the jsonl with their reasons, each with its image
    found = lines(tmp_path / "collect")
    assert [(line["frame"], line["reasons"]) for line in found] == [
        (1, ["low_confidence"]),
        (3, ["label_change"]),
        (4, ["label_change"]),
    ]
    for line in found:
        image = cv2.imread(str(tmp_path / "collect" / line["image"]))
        assert image is not None and image.shape == (240, 320, 3)
    assert counts.kept == 3
    assert dict(counts.reasons) == {"low_confidence": 1, "label_change": 2}


@pytest.mark.parametrize(
    ("size", "stored"),
    [((1280, 720), (640, 360)), ((720, 1280), (360, 640)), ((320, 240), (320, 240))],
)
def test_images_are_the_captured_frame_scaled_to_the_long_side(
    tmp_path: Path, closing: list[Collector], size: tuple[int, int], stored: tuple[int, int]
) -> None:
    collector = Collector(options(tmp_path, max_side=640))
    closing.append(collector)
    collector.offer(answered(0, score=0.1, image=scene(0, size)))
    collector.close()
    (line,) = lines(tmp_path / "collect")
    image = cv2.imread(str(tmp_path / "collect" / line["image"]))
    assert image is not None and (image.shape[1], image.shape[0]) == stored


@pytest.mark.parametrize(
    ("per_minute", "fps", "frames", "kept"),
    [
        (5, 10.0, 100, 5),  # 10 s of unsure frames: the cap
        (5, 1.0, 130, 15),  # 130 s at 1 fps: at 0-4 s, 60-64 s, 120-124 s (a sliding minute)
        (50, 10.0, 20, 20),  # under the cap: every one
    ],
)
def test_rate_cap_per_source(
    tmp_path: Path,
    closing: list[Collector],
    per_minute: int,
    fps: float,
    frames: int,
    kept: int,
) -> None:
    # given: two sources, every frame of both unsure and different
    collector = Collector(options(tmp_path, max_per_min=per_minute, queue_size=200))
    closing.append(collector)

    # when
    for i in range(frames):
        for source in ("one.mp4", "two.mp4"):
            collector.offer(answered(i, score=0.1, source=source, fps=fps))
    counts = collector.close()

    # then: each source has its own cap
    found = lines(tmp_path / "collect")
    assert {s: sum(line["source"] == s for line in found) for s in ("one.mp4", "two.mp4")} == {
        "one.mp4": kept,
        "two.mp4": kept,
    }
    assert counts.skipped_rate == 2 * (frames - kept)


@pytest.mark.parametrize(
    ("images", "kept_frames"),
    [
        # a still scene: only its first frame
        ([scene(1)] * 10, [0]),
        # a still scene with sensor noise: still one
        ([np.clip(scene(1) + (i % 3), 0, 255).astype(np.uint8) for i in range(10)], [0]),
        # two scenes taking turns: one of each (the history remembers both)
        ([scene(1), scene(2)] * 5, [0, 1]),
        # every frame its own scene: all
        ([scene(i) for i in range(10)], list(range(10))),
        # black, then a blue flat frame: flat frames differ by colour
        (
            [np.zeros((240, 320, 3), np.uint8)] * 3
            + [np.full((240, 320, 3), (255, 0, 0), np.uint8)] * 3,
            [0, 3],
        ),
    ],
)
def test_near_duplicates_are_skipped(
    tmp_path: Path, closing: list[Collector], images: Sequence[np.ndarray], kept_frames: list[int]
) -> None:
    collector = Collector(options(tmp_path, queue_size=100))
    closing.append(collector)
    for i, image in enumerate(images):
        collector.offer(answered(i, score=0.1, image=image))
    counts = collector.close()
    assert [line["frame"] for line in lines(tmp_path / "collect")] == kept_frames
    assert counts.skipped_duplicate == len(images) - len(kept_frames)


def test_a_duplicate_does_not_use_the_rate_cap(tmp_path: Path, closing: list[Collector]) -> None:
    # given: a cap of 2 a minute, a still scene for 10 frames then a new one
    collector = Collector(options(tmp_path, max_per_min=2))
    closing.append(collector)
    for i in range(10):
        collector.offer(answered(i, score=0.1, image=scene(1)))
    collector.offer(answered(10, score=0.1, image=scene(2)))
    collector.close()
    # then: the new scene still fits under the cap
    assert [line["frame"] for line in lines(tmp_path / "collect")] == [0, 10]


def test_a_full_queue_drops_and_counts(tmp_path: Path, closing: list[Collector]) -> None:
    # given: a writer held up (asking for labels) and a queue of one
    entered, release = threading.Event(), threading.Event()

    def slow_labels() -> tuple[str, list[str]]:
        entered.set()
        release.wait(30)
        return "1", ["a", "b"]

    collector = Collector(options(tmp_path, queue_size=1), fetch_labels=slow_labels)
    closing.append(collector)
    collector.refresh_labels()
    assert entered.wait(10)

    # when: four unsure frames are decided while it is held up (the fifth is held back)
    for i in range(5):
        collector.offer(answered(i, score=0.1))

    # then: one waits in the queue, three are dropped at once (offer never waited)
    assert collector.counts.dropped == 3
    release.set()
    wait_until(lambda: collector.counts.kept == 1, 10)
    counts = collector.close()
    assert counts.kept == 2  # and the fifth, decided at close
    assert [line["frame"] for line in lines(tmp_path / "collect")] == [0, 4]


def test_labels_follow_the_model_versions(
    tmp_path: Path, closing: list[Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a server whose model goes from version 1 to 2 (a new label), unreachable once
    monkeypatch.setattr(collector_module, "_LABELS_RETRY_S", 0.05)
    served = {"version": "1", "labels": ["a", "b"], "failures": 1}
    asked: list[str] = []

    def fetch() -> tuple[str, list[str]]:
        if served["failures"]:
            served["failures"] = 0
            raise ConnectionError("server away")
        asked.append(str(served["version"]))
        return str(served["version"]), list(served["labels"])

    collector = Collector(options(tmp_path), fetch_labels=fetch)
    closing.append(collector)
    labels_path = tmp_path / "collect" / "labels.txt"

    # when: connected (the first ask fails and is retried)
    collector.refresh_labels()
    wait_until(lambda: labels_path.exists() and labels_path.read_text() == "a\nb\n", 10)
    collector.offer(answered(0, version="1"))  # known version: not asked again

    # and: frames of version 2 arrive
    served.update(version="2", labels=["c", "a", "b"])
    collector.offer(answered(1, version="2"))

    # then: the new label is appended, the old lines stay
    wait_until(lambda: labels_path.read_text() == "a\nb\nc\n", 10)
    collector.close()
    assert asked == ["1", "2"]


def test_a_failed_write_is_counted_not_raised(tmp_path: Path, closing: list[Collector]) -> None:
    collector = Collector(options(tmp_path))
    closing.append(collector)
    shutil.rmtree(tmp_path / "collect" / "frames")  # the disk refuses from now on
    collector.offer(answered(0, score=0.1))
    counts = collector.close()
    assert counts.failed == 1 and counts.kept == 0
