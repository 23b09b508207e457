"""The whole loop on real video: train on annotated clips, serve the model, watch a held-out clip."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import launch_serve

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_trained_model_serves_and_watch_gets_held_out_clip_right(
    video_set: Any, cli: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given four clips of three ffmpeg sources and their segments CSV
    out = tmp_path / "model"

    # when a short CPU run trains on them
    code = cli(
        "train", video_set.segments, "--out", out, "--input-size", "64", "--epochs", "8",
        "--batch-size", "16", "--sample-fps", "4", "--min-per-class", "5", "--seed", "1",
    )  # fmt: skip

    # then the model, labels and card are written, with validation on a held-out clip
    assert code == 0, capsys.readouterr().err
    assert (out / "labels.txt").read_text().split() == ["life", "mandelbrot", "testsrc2"]
    card = (out / "MODEL_CARD.md").read_text()
    assert f"stream-classify serve -la {out / 'model.keras'} -ohe {out / 'labels.txt'}" in card
    assert "## Validation results" in card and "confusion (rows = truth" in card
    assert (out / "evaluation" / "confusion.png").is_file()

    # when a real server serves it with no other step and watch reads a clip never trained on
    server = launch_serve(out / "model.keras", out / "labels.txt")
    try:
        address = server.wait_ready(timeout=90).address
        frames_csv = tmp_path / "frames.csv"
        watch = subprocess.run(
            [sys.executable, "-m", "streaming", "watch", str(video_set.held_out),
             "--server", address, "--window", "1", "--csv", str(frames_csv)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.stop(timeout=30)
    assert watch.returncode == 0, watch.stderr

    # then at least 90 % of its frames get their source's label
    with frames_csv.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == video_set.held_out_frames
    correct = sum(row["label"] == video_set.held_out_label(int(row["frame"])) for row in rows)
    print(f"held-out clip: {correct}/{len(rows)} frames correct")
    assert correct / len(rows) >= 0.9, f"{correct}/{len(rows)} correct"
