"""``stream-classify watch`` end to end: real gRPC server, real encoded videos and image folders."""

from __future__ import annotations

import argparse
import csv
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camera_tools.alert_options import AlertOptions
from camera_tools.alerts import AlertRules, DownRule, parse_label_rule
from camera_tools.watch import WatchConfig, record_paths, watch_cli
from camera_tools.watch.watch_config import DEFAULT_RECONNECT
from camera_tools.web import WebOptions
from client import Delivery
from client.host_port import parse_host_port
from tests.camera_tools.videos import colour_frames, for_seconds, solid, write_video
from tests.support import free_port

FPS = 10
# (label, seconds) per stretch of the cut video.
CUTS = (("red", 1.5), ("blue", 2.0), ("green", 1.5))
WINDOW = 3
LAG_S = (WINDOW - 1) / FPS + 1e-6  # a window-averaged label switches at most WINDOW-1 frames late


def write_colour_video(path: Path, stretches: Sequence[tuple[str, float]], fps: float) -> Path:
    return write_video(path, colour_frames(for_seconds(stretches, fps)), fps)


def write_colour_folder(path: Path, labels: Sequence[str]) -> Path:
    path.mkdir()
    for i, label in enumerate(labels):
        cv2.imwrite(str(path / f"img_{i:03d}.png"), solid(label))
    return path


@pytest.fixture(scope="session")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_video(tmp_path_factory.mktemp("watch") / "cuts.mp4", CUTS, FPS)


def run_watch(*argv: str | Path | int) -> int:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    return watch_cli.run(parser.parse_args([str(a) for a in argv]))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def read_segments(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        return [
            {**row, "start_s": float(row["start_s"]), "end_s": float(row["end_s"])}
            for row in read_csv(path)
        ]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("segments_name", ["segments.csv", "segments.jsonl"])
def test_file_with_cuts(
    server_factory: Callable[..., Any],
    cut_video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    segments_name: str,
) -> None:
    # given a video red 1.5 s -> blue 2 s -> green 1.5 s and a running server
    server = server_factory()
    frames_csv, segments = tmp_path / "frames.csv", tmp_path / segments_name

    # when it is watched with per-frame and segment outputs
    code = run_watch(
        cut_video, "--server", server.address, "--window", WINDOW, "--csv", frames_csv,
        "--segments", segments,
    )  # fmt: skip

    # then segments match the cuts (times are video positions), within the window's lag
    assert code == 0
    found = read_segments(segments)
    assert [s["label"] for s in found] == [label for label, _ in CUTS]
    cut_starts = np.cumsum([0.0] + [seconds for _, seconds in CUTS[:-1]])
    for segment, cut in zip(found, cut_starts, strict=True):
        assert cut <= segment["start_s"] <= cut + LAG_S, (segment, cut)
    assert found[-1]["end_s"] == pytest.approx(4.9)
    assert all(s["source"] == str(cut_video) for s in found)
    # and the CSV has one row per frame, in order, with the window and frame labels
    rows = read_csv(frames_csv)
    assert [int(r["frame"]) for r in rows] == list(range(50))
    assert rows[0]["label"] == rows[0]["frame_label"] == "red"
    assert rows[15]["frame_label"] == "blue" and rows[15]["label"] == "red"  # window lag
    # and the console shows the three label changes, then the summary
    out = capsys.readouterr().out
    changes = [line for line in out.splitlines() if str(cut_video) in line and "@" in line]
    assert [line.split()[2] for line in changes] == ["red", "blue", "green"]
    summary = out[out.index("source  ") :]
    assert "ended" in summary and " 50 " in summary and "p95 ms" in summary


@pytest.mark.timeout(60)
def test_folder_with_skip(
    server_factory: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given 12 images: 6 green then 6 blue
    folder = write_colour_folder(tmp_path / "frames", ["green"] * 6 + ["blue"] * 6)
    server = server_factory()
    frames_csv = tmp_path / "frames.csv"

    # when every third image is classified, one by one
    code = run_watch(
        folder, "--server", server.address, "--skip", "2", "--window", "1", "--csv", frames_csv,
        "--verbose",
    )  # fmt: skip

    # then frames 0, 3, 6, 9 were classified, each with its own colour
    assert code == 0
    rows = read_csv(frames_csv)
    assert [(int(r["frame"]), r["label"]) for r in rows] == [
        (0, "green"), (3, "green"), (6, "blue"), (9, "blue"),
    ]  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("  frame ") == 4  # --verbose prints every frame


@pytest.mark.timeout(60)
def test_several_sources_with_recording(
    server_factory: Callable[..., Any],
    cut_video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given two files and a folder
    short = write_colour_video(tmp_path / "short.mp4", [("blue", 1.0), ("red", 1.0)], 20)
    folder = write_colour_folder(tmp_path / "imgs", ["green"] * 7)
    server = server_factory()
    frames_csv, record = tmp_path / "frames.csv", tmp_path / "out" / "watch.mp4"

    # when they are watched at once, recording annotated video
    code = run_watch(
        cut_video, short, folder, "--server", server.address, "--window", "1", "--csv",
        frames_csv, "--record", record,
    )  # fmt: skip

    # then each source has its own results
    assert code == 0
    rows = read_csv(frames_csv)
    per_source = {
        str(s): [r for r in rows if r["source"] == str(s)] for s in (cut_video, short, folder)
    }
    assert {s: len(r) for s, r in per_source.items()} == {
        str(cut_video): 50, str(short): 40, str(folder): 7,
    }  # fmt: skip
    assert {r["label"] for r in per_source[str(folder)]} == {"green"}
    assert [r["label"] for r in per_source[str(short)]] == ["blue"] * 20 + ["red"] * 20
    # and one readable, annotated mp4 per source with one frame per classified frame
    videos = sorted(record.parent.glob("watch-*.mp4"))
    assert len(videos) == 3
    counts = {}
    for video in videos:
        cap = cv2.VideoCapture(str(video))
        frames = 0
        while (ok_frame := cap.read())[0]:
            frames += 1
            last = ok_frame[1]
        cap.release()
        counts[video.name] = frames
        assert last.shape == (48, 64, 3)
    assert sorted(counts.values()) == [7, 40, 50]
    assert "recorded" in capsys.readouterr().out


@pytest.mark.timeout(30)
def test_display_without_screen_fails_before_starting(
    monkeypatch: pytest.MonkeyPatch, cut_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    started = time.monotonic()
    # No server listens on this port: the display check must come first.
    code = run_watch(cut_video, "--server", f"127.0.0.1:{free_port()}", "--display")
    assert code == 2
    assert time.monotonic() - started < 2
    err = capsys.readouterr().err
    assert "cannot --display" in err and ("no screen" in err or "GUI" in err)


@pytest.mark.timeout(30)
def test_unreachable_server_exits_2_quickly(
    cut_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = run_watch(cut_video, "--server", f"127.0.0.1:{free_port()}", "--connect-timeout", "1")
    assert code == 2
    assert time.monotonic() - started < 5
    assert "cannot reach the server" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_missing_file_is_a_failed_source(
    server_factory: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_factory()
    code = run_watch(tmp_path / "nope.mp4", "--server", server.address)
    assert code == 1
    out = capsys.readouterr().out
    assert "failed" in out and "not found" in out


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (None, None),  # per source: LIVE for cameras and streams, LOSSLESS for files
        ("live", Delivery.LIVE),
        ("lossless", Delivery.LOSSLESS),
    ],
)
def test_delivery_flag(flag: str | None, expected: Delivery | None) -> None:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    argv = ["clip.mp4", "--max-retries", "3"] + ([] if flag is None else ["--delivery", flag])
    config = watch_cli.build_config(parser.parse_args(argv))
    assert isinstance(config, WatchConfig)
    assert config.delivery == expected
    assert config.reconnect.max_retries == 3


def build(*argv: str) -> WatchConfig:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    return watch_cli.build_config(parser.parse_args(["clip.mp4", *argv]))


def test_the_flags_defaults_are_the_configs() -> None:
    assert build() == WatchConfig(("clip.mp4",), watch_cli.DEFAULT_SERVER)


@pytest.mark.parametrize(
    ("argv", "attribute", "expected"),
    [
        (["-v"], "verbose", True),
        (["--max-retries", "3"], "reconnect", replace(DEFAULT_RECONNECT, max_retries=3)),
        (["--metrics-address", "0.0.0.0:9100"], "metrics_address", "0.0.0.0:9100"),
        # no host means loopback for both addresses of one command
        (["--metrics-address", ":9100", "--web", ":8080"], "metrics_address", ":9100"),
        (["--metrics-address", ":9100", "--web", ":8080"], "live.web", WebOptions(port=8080)),
        (["--web", "[::]:8080", "--web-token", "t"], "live.web", WebOptions("::", 8080, "t")),
        (["--web-token", "t"], "live.web", None),
        (["--restream", "rtsp://127.0.0.1:8555/"], "live.restream", ("127.0.0.1", 8555)),
        (
            ["--alert", "black:5", "--alert-down", "30", "--events", "e.jsonl"]
            + ["--on-alert", "notify", "--webhook", "http://hooks.local/"],
            "live.alerts",
            AlertOptions(
                AlertRules((parse_label_rule("black:5"),), DownRule(30.0)),
                Path("e.jsonl"),
                "notify",
                "http://hooks.local/",
            ),
        ),
    ],
)
def test_every_flag_lands_in_the_config(argv: list[str], attribute: str, expected: Any) -> None:
    assert attrgetter(attribute)(build(*argv)) == expected


def test_loopback_is_what_an_empty_host_binds() -> None:
    config = build("--metrics-address", ":0", "--web", ":0")
    assert config.metrics_address is not None and config.live.web is not None
    assert parse_host_port(config.metrics_address)[0] == config.live.web.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--web", "nope"], "expected HOST:PORT"),
        (["--web", "::1:8080"], "IPv6 address needs brackets"),
        (["--metrics-address", "9100"], "expected HOST:PORT"),
        (["--metrics-address", "h:70000"], "port must be 0..65535"),
        (["--restream", "http://x/"], "rtsp://HOST:PORT/"),
        (["--alert", "black"], "LABEL[,LABEL...]:SECONDS"),
        (["--alert-down", "x"], "--alert-down needs a number of seconds"),
    ],
)
def test_bad_flags_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["/data/a/clip.mp4"], ["out.mp4"]),
        (["/data/a/clip.mp4", "/data/b/clip.mp4"], ["out-clip-mp4.mp4", "out-clip-mp4-2.mp4"]),
        (["frames/", "rtsp://u:pw@cam/live"], ["out-frames.mp4", "out-rtsp-cam-live.mp4"]),
    ],
)
def test_record_paths(specs: list[str], expected: list[str]) -> None:
    paths = record_paths(Path("rec/out.mp4"), specs)
    assert [p.name for p in paths.values()] == expected
    assert all(p.parent == Path("rec") for p in paths.values())


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_summary(
    server_factory: Callable[..., Any], cut_video: Path, tmp_path: Path, signum: int
) -> None:
    # given `stream-classify watch` playing a 5 s file in real time, in its own process
    server = server_factory()
    segments = tmp_path / "segments.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", "--log-level", "WARNING", "watch", str(cut_video),
         "--server", server.address, "--realtime", "--segments", str(segments)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        first = process.stdout.readline() if ready else ""
        assert " red " in first, first
        # when it is interrupted before the end
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # then it stops cleanly: exit 0, a summary, and the open segment flushed
    assert process.returncode == 0, err
    assert "stopped" in out and "p50 ms" in out
    assert json.loads(segments.read_text().splitlines()[0])["label"] == "red"


@pytest.mark.timeout(180)
def test_three_hundred_sources_on_one_server_are_all_served(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # given 300 sources open at once, more than the server takes calls on one connection
    # (--max-calls-per-connection, 100): folders played in real time, a frame every 20 s, so
    # no source ends (and frees its call) while the others wait for theirs (3 frames: 60 s)
    folders = [
        write_colour_folder(tmp_path / f"src{i:03d}", ["red", "blue", "blue"]) for i in range(300)
    ]
    server = server_factory()
    frames_csv = tmp_path / "frames.csv"

    # when they are watched for a while
    code = run_watch(
        *folders, "--server", server.address, "--window", "1", "--csv", frames_csv,
        "--realtime", "--folder-fps", "0.05", "--duration", "30",
    )  # fmt: skip

    # then every source's first frame was answered: the client spread the streams over
    # several connections (docs/connections.md) instead of leaving 200 queued, unserved
    assert code == 0
    rows = read_csv(frames_csv)
    first = {row["source"]: row["label"] for row in rows if int(row["frame"]) == 0}
    assert first == {str(folder): "red" for folder in folders}
