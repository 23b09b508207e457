"""The learning loop end to end: collect → label (in Chromium) → train → promote → hot swap.

A model trained on two of three ffmpeg sources (``life``, ``mandelbrot``) serves a model
directory; ``watch`` plays a long clip cycling through all three in real time, collecting the
frames worth a look. Chromium labels them on the label page (the never-seen ``testsrc2`` added
with ``--new-labels``), ``train`` fine-tunes version 1 on them plus the original clips, ``promote``
writes version 2, the server swaps, and the same ``watch`` process (never restarted, never
reconnected) labels ``testsrc2`` right from then on.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from streaming.server.grpc_server import BackgroundServer
from streaming.server.serve_config import ModelConfig, ServerConfig
from tests.streaming.labelling.label_process import LabelProcess
from tests.support import publish_version, wait_until

pytestmark = [pytest.mark.slow]

KNOWN = ("life", "mandelbrot")
NEW = "testsrc2"
CYCLE = ("life", "mandelbrot", "testsrc2")
FPS = 10
SEGMENT_S = 4
CYCLES = 25  # 300 s of video: the loop ends long before; watch is stopped then


def truth(frame: int) -> str:
    return CYCLE[(frame // (FPS * SEGMENT_S)) % len(CYCLE)]


def stream_classify(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def two_class_segments(video_set: Any) -> Path:
    """The training clips' segments with the new kind left out (never seen by version 1)."""
    lines = video_set.segments.read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[1] in KNOWN]
    path = video_set.folder / "two-classes.csv"
    path.write_text("\n".join(kept) + "\n")
    return path


def long_clip(folder: Path) -> Path:
    """CYCLES times (life, mandelbrot, testsrc2), SEGMENT_S seconds each."""
    from tests.streaming.training.conftest import make_clip

    cycle = make_clip(folder, "cycle", 20, CYCLE)
    path = folder / "watched.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-stream_loop", str(CYCLES - 1), "-i", str(cycle), "-c", "copy", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture
def version_one(video_set: Any, tmp_path: Path) -> Path:
    """``train`` on the two known sources: the run folder of version 1."""
    run = tmp_path / "run-1"
    done = stream_classify(
        "train", two_class_segments(video_set), "--out", run, "--input-size", "64",
        "--epochs", "8", "--batch-size", "16", "--sample-fps", "4", "--min-per-class", "5",
        "--seed", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (run / "labels.txt").read_text().split() == list(KNOWN)
    return run


@pytest.fixture
def model_server(version_one: Path, tmp_path: Path) -> Iterator[tuple[BackgroundServer, Path]]:
    root = tmp_path / "models"
    root.mkdir()
    publish_version(root, 1, version_one / "model.keras", KNOWN)
    config = ServerConfig(
        address="127.0.0.1:0", model=ModelConfig(model_dir=root, model_poll_s=0.5), grace_s=2.0
    )
    running = BackgroundServer(config).start()
    try:
        yield running, root
    finally:
        running.stop(grace=1.0)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def collected_entries(folder: Path) -> list[dict[str, Any]]:
    path = folder / "collected.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def label_everything_shown(driver: WebDriver, collected: Path, labels: tuple[str, ...]) -> int:
    """Type each shown frame's true label until none is left; returns how many were typed."""
    by_id = {entry["id"]: entry for entry in collected_entries(collected)}
    body = driver.find_element(By.TAG_NAME, "body")
    wait = WebDriverWait(driver, 30, poll_frequency=0.1)
    for typed in range(500):  # bounded: the collector's rate cap keeps the folder far smaller
        wait.until(lambda d: body.get_attribute("data-idle") == "1")
        left = int(driver.find_element(By.ID, "left").get_attribute("data-left") or "0")
        shown = body.get_attribute("data-frame") or ""
        if left == 0 or not shown:
            return typed
        if shown not in by_id:  # collected after the page started: read the file again
            by_id = {entry["id"]: entry for entry in collected_entries(collected)}
        body.send_keys(str(labels.index(truth(by_id[shown]["frame"])) + 1))
        wait.until(lambda d, s=shown: body.get_attribute("data-frame") != s)
    raise AssertionError("the label page never ran out of frames")


@pytest.mark.timeout(900)
def test_the_loop_teaches_the_running_watch_a_new_kind(
    model_server: tuple[BackgroundServer, Path],
    video_set: Any,
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    running, root = model_server
    clip = long_clip(tmp_path)
    collected, dataset, frames_csv = (
        tmp_path / "collected",
        tmp_path / "dataset",
        tmp_path / "f.csv",
    )

    # given: watch on the clip in real time, collecting (generously: the test needs a few
    # frames of the new kind, which version 1 may call one of the others with confidence)
    watch_log = tmp_path / "watch.log"
    with watch_log.open("w") as log:  # the child keeps its own copy of the descriptor
        watch = subprocess.Popen(
            [sys.executable, "-m", "streaming", "watch", str(clip), "--server", running.address,
             "--realtime", "--window", "1", "--csv", str(frames_csv), "--collect", str(collected),
             "--collect-below", "0.9", "--collect-sample", "0.3", "--collect-seed", "1"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    def watching(condition: Any) -> Any:
        def check() -> Any:
            assert watch.poll() is None, f"watch ended: {watch_log.read_text()}"
            return condition()

        return check

    try:
        # when: a cycle has played and frames of the new kind were collected
        wait_until(
            watching(
                lambda: (
                    len(read_rows(frames_csv)) >= len(CYCLE) * SEGMENT_S * FPS
                    and sum(truth(e["frame"]) == NEW for e in collected_entries(collected)) >= 6
                )
            ),
            180,
            message=lambda: (
                f"collected: {[truth(e['frame']) for e in collected_entries(collected)]}"
            ),
        )
        # version 1 never says the new kind: it does not know it
        assert {row["frame_label"] for row in read_rows(frames_csv)} <= set(KNOWN)

        # when: a person labels them in the browser, the new kind added as a class
        page = LabelProcess(collected, dataset, "--new-labels", NEW)
        try:
            browser.get(page.url)
            typed = label_everything_shown(browser, collected, (*KNOWN, NEW))
        finally:
            page.stop()
        assert typed >= 6 and len(list((dataset / NEW).glob("*.jpg"))) >= 6

        # when: version 1 is fine-tuned on them and the original clips, and promoted
        run = tmp_path / "run-2"
        trained = stream_classify(
            "train", dataset, two_class_segments(video_set), "--base", root / "1" / "model.keras",
            "--out", run, "--input-size", "64", "--epochs", "8", "--batch-size", "16",
            "--sample-fps", "4", "--min-per-class", "5", "--seed", "1",
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        promoted = stream_classify("promote", run, "--model-dir", root)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        assert (root / "2" / "labels.txt").read_text().split() == [*KNOWN, NEW]

        # then: the running watch gets version 2's answers, and a whole stretch of the new
        # kind answered by it
        def new_kind_answered_by_version_two() -> list[dict[str, str]]:
            rows = [r for r in read_rows(frames_csv) if r["model_version"] == "2"]
            return [r for r in rows if truth(int(r["frame"])) == NEW]

        answered: list[dict[str, str]] = wait_until(
            watching(
                lambda: (
                    rows
                    if len(rows := new_kind_answered_by_version_two()) >= SEGMENT_S * FPS
                    else None
                )
            ),
            120,
            message="version 2 answered a stretch of the new kind",
        )
    finally:
        if watch.poll() is None:
            watch.send_signal(signal.SIGINT)
        watch.wait(timeout=60)
    assert watch.returncode == 0, watch_log.read_text()

    right = sum(row["label"] == NEW for row in answered)
    print(f"{NEW} after the swap: {right}/{len(answered)} frames right")
    assert right / len(answered) >= 0.9, f"{right}/{len(answered)} frames of {NEW} right"
    # the same stream all along: one stream opened, frames in order, the version changed once
    assert running.server.metrics.value("stream_classify_streams_opened_total") == 1
    rows = read_rows(frames_csv)
    assert [int(row["frame"]) for row in rows] == list(range(len(rows)))
    versions = [row["model_version"] for row in rows]
    change = versions.index("2")
    assert versions == ["1"] * change + ["2"] * (len(rows) - change)
