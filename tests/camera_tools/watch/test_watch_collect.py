"""``watch --collect`` end to end: a real server with the tiny model, a real encoded video."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camera_tools.collect import CollectOptions
from camera_tools.watch import watch_cli
from streaming.server.grpc_server import BackgroundServer
from streaming.server.serve_config import ModelConfig, ServerConfig
from tests.camera_tools.collected_format import FIELDS
from tests.camera_tools.videos import BGR, for_seconds, write_video
from tests.camera_tools.watch.test_watch import read_csv, run_watch
from tests.conftest import TINY_LABELS, TinyModel
from tests.support import publish_version

FPS = 10
WINDOW = 3
# red, then grey (the tiny model cannot tell: low confidence), then blue
STRETCHES = (("red", 2.0), ("grey", 1.0), ("blue", 2.0))
COLOURS = {**BGR, "grey": (128, 128, 128)}


def textured(name: str, seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A frame of the named colour under coarse random blocks: every frame looks different."""
    width, height = size
    blocks = np.random.default_rng(seed).integers(-50, 51, (6, 8, 1))
    shade = cv2.resize(blocks.astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST)
    base = np.full((height, width, 3), COLOURS[name], np.float32)
    return np.clip(base + shade[:, :, None], 0, 255).astype(np.uint8)


def frames() -> Iterator[np.ndarray]:
    for i, name in enumerate(for_seconds(STRETCHES, FPS)):
        yield textured(name, i)


@pytest.fixture(scope="module")
def collect_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("collect") / "clip.mp4", frames(), FPS)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(120)
def test_watch_collect_fills_the_folder(
    server_factory: Callable[..., Any],
    collect_video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a running server and a 5 s clip: red, grey (unsure), blue; every frame different
    server = server_factory()
    folder, frames_csv = tmp_path / "collect", tmp_path / "frames.csv"

    # when: it is watched with --collect (no random sample), and a per-frame CSV to check against
    code = run_watch(
        collect_video, "--server", server.address, "--window", WINDOW, "--csv", frames_csv,
        "--collect", folder, "--collect-sample", "0", "--collect-max-per-min", "1000",
    )  # fmt: skip

    # then: the folder has the model's labels, one line per kept frame and its image
    assert code == 0
    assert (folder / "labels.txt").read_text() == "".join(f"{label}\n" for label in TINY_LABELS)
    lines = read_jsonl(folder / "collected.jsonl")
    assert lines, "nothing was collected"
    for line in lines:
        assert {key: type(value) for key, value in line.items()} == FIELDS
        assert line["image"] == f"frames/{line['id']}.jpg"
        image = cv2.imread(str(folder / line["image"]))
        assert image is not None and image.shape == (48, 64, 3)
        assert line["source"] == str(collect_video)
        assert line["time"] == pytest.approx(line["frame"] / FPS)
        assert [label for label, _ in line["top"]] == sorted(
            TINY_LABELS, key=lambda label: -dict(line["top"])[label]
        )
    assert len({line["id"] for line in lines}) == len(lines)
    assert sorted(p.name for p in (folder / "frames").iterdir()) == sorted(
        Path(line["image"]).name for line in lines
    )

    # and: each line agrees with the CSV row of its frame
    rows = {int(row["frame"]): row for row in read_csv(frames_csv)}
    assert sorted(rows) == list(range(50))
    for line in lines:
        row = rows[line["frame"]]
        assert (line["label"], line["window_label"]) == (row["frame_label"], row["label"])
        assert line["window_score"] == pytest.approx(float(row["score"]), abs=1e-3)
        assert line["model_version"] == row["model_version"]

    # and: exactly the frames the rules name were kept, each for exactly its reasons
    def window_label(i: int) -> str | None:
        return rows[i]["label"] if i in rows else None

    kept = {line["frame"]: line for line in lines}
    unsure = {i for i, line in kept.items() if line["score"] < 0.6}
    boundaries = {
        i
        for i in rows
        if window_label(i - 1) not in (None, rows[i]["label"])
        or window_label(i + 1) not in (None, rows[i]["label"])
    }
    disagreeing = {i for i, row in rows.items() if row["frame_label"] != row["label"]}
    assert boundaries and disagreeing  # the clip has label changes, and the window lags
    grey = set(range(20, 30))
    assert grey <= unsure  # the tiny model cannot tell grey
    assert set(kept) == boundaries | disagreeing | unsure
    for i, line in kept.items():
        expected = [
            reason
            for reason, applies in (
                ("low_confidence", i in unsure),
                ("label_change", i in boundaries),
                ("disagreement", i in disagreeing),
            )
            if applies
        ]
        assert line["reasons"] == expected, (i, line)
    # and the console says what was kept
    assert f"collected into {folder}: {len(lines)} frames kept" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_watch_collect_continues_a_folder_under_its_bounds(
    server_factory: Callable[..., Any], collect_video: Path, tmp_path: Path
) -> None:
    # given: a folder collected by a first run
    server = server_factory()
    folder = tmp_path / "collect"
    assert run_watch(collect_video, "--server", server.address, "--collect", folder) == 0
    first = read_jsonl(folder / "collected.jsonl")
    assert len(first) > 3
    cap = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    # when: the same clip is watched again into it, at most 3 frames a minute, capped at the
    # size the folder has now
    code = run_watch(
        collect_video, "--server", server.address, "--collect", folder,
        "--collect-max-per-min", "3", "--collect-max-mb", cap / 1e6,
    )  # fmt: skip

    # then: 3 more lines (the clip is 5 s long), appended, with new ids
    assert code == 0
    lines = read_jsonl(folder / "collected.jsonl")
    assert lines[: len(first)] == first
    assert len(lines) == len(first) + 3
    assert len({line["id"] for line in lines}) == len(lines)
    # and: the folder is under its cap, the oldest images gone first, the newest kept
    used = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert used <= cap
    present = [(folder / line["image"]).exists() for line in lines]
    assert present[-1] and not present[0]
    assert present == sorted(present)  # never an older image kept while a newer one went


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], None),
        (["--collect", "out"], CollectOptions(Path("out"))),
        (
            [
                "--collect",
                "out",
                "--collect-below",
                "0.4",
                "--collect-max-per-min",
                "5",
                "--collect-max-mb",
                "20",
                "--collect-sample",
                "0.1",
                "--collect-seed",
                "7",
            ],  # fmt: skip
            CollectOptions(Path("out"), below=0.4, max_per_min=5, max_mb=20, sample=0.1, seed=7),
        ),
    ],
)
def test_collect_flags(argv: list[str], expected: CollectOptions | None) -> None:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    assert watch_cli.build_config(parser.parse_args(["clip.mp4", *argv])).collect == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--collect-below", "1.5"],
        ["--collect-sample", "-0.1"],
        ["--collect-max-per-min", "0"],
        ["--collect-max-mb", "0"],
    ],
)
def test_bad_collect_flags_are_usage_errors(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["clip.mp4", "--collect", "out", *argv])


@pytest.mark.timeout(30)
def test_an_unusable_collect_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = run_watch(tmp_path / "clip.mp4", "--collect", blocker / "collect")
    assert code == 2
    assert "collect folder" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_watch_collect_skips_a_still_scene(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given: 3 s of one still grey picture (every frame unsure), then 1 s of another
    still = textured("grey", 1)
    other = textured("grey", 2)
    video = write_video(tmp_path / "still.mp4", [still] * 30 + [other] * 10, FPS)
    server = server_factory()
    folder = tmp_path / "collect"

    # when
    code = run_watch(
        video, "--server", server.address, "--window", "1", "--collect", folder,
        "--collect-sample", "0", "--collect-max-per-min", "1000",
    )  # fmt: skip

    # then: one frame of each picture, each unsure; the rest were near-duplicates
    assert code == 0
    lines = read_jsonl(folder / "collected.jsonl")
    assert [line["frame"] for line in lines] == [0, 30]
    assert all("low_confidence" in line["reasons"] for line in lines)


@pytest.mark.timeout(120)
def test_labels_follow_a_model_swap(tiny_model: TinyModel, tmp_path: Path) -> None:
    # given: a server on a model directory whose version 1 has the tiny model's labels
    root = tmp_path / "models"
    root.mkdir()
    publish_version(root, 1, tiny_model.model_path, tiny_model.labels)
    config = ServerConfig(
        address="127.0.0.1:0", model=ModelConfig(model_dir=root, model_poll_s=0.2), grace_s=2.0
    )
    running = BackgroundServer(config).start()
    folder = tmp_path / "collect"
    # 10 s played in real time: time enough for the swap (as in test_watch_model_swap.py)
    video = write_video(tmp_path / "clip.mp4", [*frames(), *frames()], FPS)
    codes: list[int] = []
    watcher = threading.Thread(
        target=lambda: codes.append(
            run_watch(video, "--server", running.address, "--realtime", "--collect", folder)
        )
    )
    try:
        watcher.start()
        labels = folder / "labels.txt"
        deadline = time.monotonic() + 60
        while not (labels.exists() and labels.read_text()):
            assert time.monotonic() < deadline and watcher.is_alive(), "no labels.txt"
            time.sleep(0.05)

        # when: version 2 renames a label while the clip plays
        publish_version(root, 2, tiny_model.model_path, ("red", "green", "cyan"))
        watcher.join(timeout=90)
    finally:
        running.stop(grace=1.0)

    # then: the new label is appended, the old lines stay
    assert not watcher.is_alive() and codes == [0]
    assert labels.read_text() == "red\ngreen\nblue\ncyan\n"
