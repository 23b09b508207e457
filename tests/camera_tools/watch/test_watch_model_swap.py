"""``watch`` through a model swap: the stream goes on and the CSV names the version per frame."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.server.grpc_server import BackgroundServer
from streaming.server.serve_config import ModelConfig, ServerConfig
from tests.camera_tools.videos import colour_frames, for_seconds, write_video
from tests.camera_tools.watch.test_watch import read_csv, run_watch
from tests.conftest import TinyModel
from tests.support import publish_version

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FPS = 10


def publish(root: Path, number: int, model: TinyModel) -> None:
    publish_version(root, number, model.model_path, model.labels)


@pytest.fixture
def versioned_server(
    tmp_path: Path, tiny_model: TinyModel
) -> Iterator[tuple[BackgroundServer, Path]]:
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, tiny_model)
    config = ServerConfig(
        address="127.0.0.1:0", model=ModelConfig(model_dir=root, model_poll_s=0.2), grace_s=2.0
    )
    running = BackgroundServer(config).start()
    try:
        yield running, root
    finally:
        running.stop(grace=1.0)


def test_watch_runs_through_a_swap(
    versioned_server: tuple[BackgroundServer, Path], tiny_model: TinyModel, tmp_path: Path
) -> None:
    # given: a video played in real time (6 s) watched with a per-frame CSV
    running, root = versioned_server
    video = write_video(
        tmp_path / "clip.mp4", colour_frames(for_seconds([("red", 3.0), ("blue", 3.0)], FPS)), FPS
    )
    frames_csv = tmp_path / "frames.csv"
    codes: list[int] = []
    watcher = threading.Thread(
        target=lambda: codes.append(
            run_watch(video, "--server", running.address, "--realtime", "--csv", frames_csv)
        )
    )
    watcher.start()

    # when: version 2 appears while the video plays
    deadline = time.monotonic() + 60
    while not (frames_csv.exists() and len(read_csv(frames_csv)) >= 10):
        assert time.monotonic() < deadline and watcher.is_alive(), "watch never got going"
        time.sleep(0.05)
    publish(root, 2, tiny_model)
    watcher.join(timeout=90)

    # then: every frame was answered on the one stream, which never reconnected
    assert not watcher.is_alive() and codes == [0]
    rows = read_csv(frames_csv)
    assert [int(row["frame"]) for row in rows] == list(range(60))
    assert running.server.metrics.value("stream_classify_streams_opened_total") == 1
    # and the version changes once, at one frame, from 1 to 2
    versions = [row["model_version"] for row in rows]
    change = versions.index("2")
    assert versions == ["1"] * change + ["2"] * (len(rows) - change)
    assert 10 <= change < len(rows)
    assert [row["frame_label"] for row in rows] == ["red"] * 30 + ["blue"] * 30
