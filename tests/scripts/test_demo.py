"""`make demo` end to end: real server with the embedded model, real clip, real watch process."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_finds_every_cut_of_the_sample_clip(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_demo.py"), "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cuts = json.loads((ROOT / "demo" / "broadcast_sample.cuts.json").read_text())
    assert f"all {len(cuts)} cuts found within 1 s" in result.stdout
    assert re.search(r"broadcast_monitor on /(CPU|GPU):\d+", result.stdout)  # the banner
    with (tmp_path / "segments.csv").open() as handle:
        segments = list(csv.DictReader(handle))
    assert [s["label"] for s in segments] == [c["label"] for c in cuts]
    with (tmp_path / "frames.csv").open() as handle:
        frames = list(csv.DictReader(handle))
    assert len(frames) == cuts[-1]["last_frame"] + 1
    # the web view was served while watch ran, and the report has the clip's timeline
    assert re.search(r"web view: http://127\.0\.0\.1:\d+/", result.stdout)
    assert f"timeline report of 1 source(s): {tmp_path / 'report.html'}" in result.stdout
    report = (tmp_path / "report.html").read_text()
    assert report.count('<section class="source">') == 1
    assert "broadcast_sample.mp4" in report and report.count("<svg") == 1
    for label in {c["label"] for c in cuts}:
        assert f"{label}</td>" in report
    assert cv2.imread(str(tmp_path / "report.png")) is not None
    recording = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(recording.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    recording.release()
