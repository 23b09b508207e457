from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

from camera_tools.alert_outputs import JsonlAlertOutput
from camera_tools.alerts import AlertEvent, AlertKind
from camera_tools.camera_errors import SinkError
from camera_tools.overlay import label_color
from camera_tools.sinks import Classification, SegmentLog, read_segments
from camera_tools.timeline_report import build_timelines, format_duration
from streaming.cli import main

FILE = "/media/clips/news.mp4"
CAM = "rtsp://***@cam.local/live"
T0 = 1_790_000_000.0


def write_segments(path: Path) -> None:
    """Two sources through the real segments sink: a file (positions) and a live camera."""
    with SegmentLog(path) as log:
        labels = ["program"] * 20 + ["black"] * 30 + ["program"] * 10 + ["black"] * 5
        for i, label in enumerate(labels):  # 10 fps
            log.write(Classification(FILE, i, T0 + i, label, 0.9, position_s=i / 10))
        live = [(T0 + s, "color_bars") for s in range(10)]
        live += [(T0 + 69 + s, "static") for s in range(5)]  # a minute down in between
        for i, (at, label) in enumerate(live):
            log.write(Classification(CAM, i, at, label, 0.8))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_segments_read_back_as_written(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"segments{suffix}"
    write_segments(path)
    segments = read_segments(path)
    assert [(s.source, s.label, s.frames) for s in segments] == [
        (FILE, "program", 20),
        (FILE, "black", 30),
        (FILE, "program", 10),
        (CAM, "color_bars", 10),
        (FILE, "black", 5),
        (CAM, "static", 5),
    ]


def test_summary_per_label(tmp_path: Path) -> None:
    write_segments(tmp_path / "s.csv")
    news, cam = build_timelines(read_segments(tmp_path / "s.csv"))

    labels = {s.label: s for s in news.labels}
    assert labels["program"].seconds == pytest.approx(3.0)  # 0-2 s and 5-6 s
    assert labels["black"].seconds == pytest.approx(3.4)  # 2-5 s and 6-6.4 s
    assert (labels["black"].count, labels["black"].longest_s) == (2, pytest.approx(3.0))
    assert sum(s.share for s in news.labels) == pytest.approx(1.0)
    assert not news.wall_clock and cam.wall_clock
    # the minute the camera was down stays a hole: color_bars ends at its last frame
    assert [(s.label, s.seconds) for s in cam.stretches] == [("color_bars", 9.0), ("static", 4.0)]


def test_report_command_writes_html_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given segments from the real sink and an events file from the real alert output
    segments = tmp_path / "segments.jsonl"
    write_segments(segments)
    events = JsonlAlertOutput(tmp_path / "events.jsonl")
    events.send(AlertEvent(AlertKind.RAISED, "black:2", FILE, T0 + 4, T0 + 2, 2.0, "black", "<b>x"))
    events.send(AlertEvent(AlertKind.CLEARED, "black:2", FILE, T0 + 5, T0 + 2, 3.0, "program"))
    events.close()

    # when
    out, png = tmp_path / "out" / "report.html", tmp_path / "out" / "report.png"
    code = main(["report", str(segments), "--out", str(out), "--png", str(png),
                 "--events", str(tmp_path / "events.jsonl")])  # fmt: skip

    # then one timeline per source, shares summing to 100 %, the longest stretch, the alerts
    assert code == 0 and str(out) in capsys.readouterr().out
    page = out.read_text()
    assert page.count('<svg class="timeline"') == 2
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    sections = page.split('<section class="source">')[1:]
    assert ">news.mp4</h2>" in sections[0] and ">cam.local/live</h2>" in sections[1]
    for section in sections:
        shares = [float(x) for x in re.findall(r"<td class=num>([\d.]+)%</td>", section)]
        assert sum(shares) == pytest.approx(100.0, abs=0.15)
    black_row = re.search(r"black</td>(.*?)</tr>", sections[0])
    assert black_row is not None
    assert f"<td class=num>{format_duration(3.0)}</td>" in black_row.group(1).split("%")[-1]
    assert sections[0].count('data-label="black"') == 2
    assert 'class="raised">raised' in sections[0] and "&lt;b&gt;x" in sections[0]
    assert "raised" not in sections[1]

    picture = cv2.imread(str(png))
    assert picture is not None and picture.shape[1] == 1200
    assert (picture == label_color("color_bars")).all(axis=2).sum() > 1000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "not a segment file"),
        ("source,label,start_s,end_s,first_frame,last_frame,mean_score,frames\ncam,x,1,0,0,0,1,1\n",
         "s.csv:2"),
    ],
)  # fmt: skip
def test_bad_segment_files_are_reported(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(content)
    with pytest.raises(SinkError, match=message):
        read_segments(path)


def test_report_command_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["report", str(empty), "--out", str(tmp_path / "r.html")]) == 2
    assert "no segments" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r.html")]) == 2
    bad_events = tmp_path / "events.jsonl"
    bad_events.write_text("{not json\n")
    write_segments(tmp_path / "s.csv")
    code = main(["report", str(tmp_path / "s.csv"), "--out", str(tmp_path / "r.html"),
                 "--events", str(bad_events)])  # fmt: skip
    assert code == 2 and "events.jsonl:1" in capsys.readouterr().err
