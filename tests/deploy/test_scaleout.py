"""``watch`` across replicas: one SIGTERMed and one SIGKILLed mid-run cost only their own streams.

3 replicas serve 24 sources of one ``stream-classify watch`` process, behind nginx (A) or through
the client's own ``round_robin`` over an ``ipv4:`` target (B): 16 video files (LOSSLESS, played
in real time) and 8 live MJPEG-over-HTTP cameras (LIVE). Mid-run one replica drains on SIGTERM
and another is killed. Then every frame of every file is in the CSV exactly once, every camera is
answered again after the kill, and the sources of the surviving replica never lost their stream.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.camera_tools.videos import colour_frames, write_video
from tests.support import wait_until

# Three TensorFlow processes start on a shared 2-core machine: allow them minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

REPLICAS = 3
FILES = 16
CAMERAS = 8
FRAMES = 160  # per file: 8 s in real time, so the kills land mid-file
FPS = 20.0
CAMERA_FPS = 10.0
SIZE = (64, 48)
GRACE_S = "2"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """16 copies of one short clip (distinct names: one source each); encoded once."""
    folder = tmp_path_factory.mktemp("clips")
    first = folder / "clip-00.mp4"
    labels = ["blue" if (i // 20) % 2 == 0 else "red" for i in range(FRAMES)]
    write_video(first, colour_frames(labels, SIZE), FPS)
    paths = [first]
    for n in range(1, FILES):
        paths.append(folder / f"clip-{n:02d}.mp4")
        shutil.copyfile(first, paths[-1])
    return paths


class _MjpegHandler(BaseHTTPRequestHandler):
    """An endless ``multipart/x-mixed-replace`` JPEG stream at CAMERA_FPS, on any path."""

    protocol_version = "HTTP/1.0"
    jpeg = b""
    stop = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n" % (
            len(self.jpeg),
            self.jpeg,
        )
        try:
            while not self.stop.wait(1.0 / CAMERA_FPS):
                self.wfile.write(part)
        except OSError:
            pass  # the watcher hung up


@pytest.fixture
def cameras() -> Iterator[list[str]]:
    """8 live cameras (MJPEG over HTTP on loopback, as many IP cameras serve): their URLs."""
    ok, jpeg = cv2.imencode(".jpg", np.full((SIZE[1], SIZE[0], 3), (255, 0, 0), np.uint8))
    assert ok
    handler = type("Handler", (_MjpegHandler,), {"jpeg": jpeg.tobytes(), "stop": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield [f"http://127.0.0.1:{port}/cam{i}" for i in range(CAMERAS)]
    finally:
        handler.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class Watch:
    """``stream-classify --log-format json watch`` as a subprocess."""

    process: subprocess.Popen[bytes]
    csv_path: Path
    log: Path

    def rows(self) -> list[dict[str, str]]:
        if not self.csv_path.exists():
            return []
        with self.csv_path.open(newline="") as f:
            return list(csv.DictReader(f))

    def log_entries(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def start_watch(target: str, sources: list[str], tmp_path: Path, *extra: str) -> Watch:
    csv_path, log = tmp_path / "watch.csv", tmp_path / "watch.log"
    command = [
        sys.executable, "-m", "streaming", "--log-format", "json", "watch", *sources,
        "--server", target, "--csv", str(csv_path), "--realtime", "--window", "1",
        "--connect-timeout", "30", "--stall-timeout", "5", "--in-flight", "4",
        "--duration", "150", *extra,
    ]  # fmt: skip
    with log.open("w") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
    return Watch(process, csv_path, log)


def sources_opened(log: Path) -> set[str]:
    """The sources whose streams a replica opened, from its JSON log."""
    sources = set()
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            match = re.match(r"stream \d+ opened: .* source='([^']*)'", entry["message"])
            if entry["logger"] == "streaming.server.stream_service" and match:
                sources.add(match.group(1))
    return sources


def captured_at(row: dict[str, str]) -> float:
    return dt.datetime.fromisoformat(f"{row['date']}T{row['time']}").timestamp()


@pytest.mark.parametrize("balancer", ["nginx", "round_robin"])
def test_watch_survives_two_of_three_replicas_dying(
    balancer: str,
    clips: list[Path],
    cameras: list[str],
    server_processes: Callable[..., Any],
    nginx: Callable[..., Any],
    read_metric: Callable[..., float],
    stop_gracefully: Callable[..., int],
    tmp_path: Path,
) -> None:
    # given: 3 replicas, reached through nginx or the client's own round_robin
    replicas = server_processes(REPLICAS, "--grace", GRACE_S, "--log-format", "json")
    if balancer == "nginx":
        target, extra = nginx([r.port for r in replicas]).address, ()
    else:
        target = "ipv4:" + ",".join(r.address for r in replicas)
        extra = ("--lb-policy", "round_robin")
    files = [str(p) for p in clips]
    watch = start_watch(target, [*files, *cameras], tmp_path, *extra)
    try:
        # and every replica serving some of the 24 streams, every source answered a few times
        def open_streams() -> list[float]:
            return [read_metric(r.metrics_port, "stream_classify_streams_open") for r in replicas]

        def started() -> bool:
            per_source = Counter(r["source"] for r in watch.rows())
            return all(per_source[s] >= 5 for s in [*files, *cameras])

        wait_until(
            lambda: started() and sum(open_streams()) == FILES + CAMERAS,
            timeout=90,
            interval=0.25,
            message=lambda: (
                f"streams open per replica {open_streams()}; {watch.log.read_text()[-2000:]}"
            ),
        )
        assert all(n > 0 for n in open_streams()), open_streams()
        drained, killed, survivor = replicas
        victims = sources_opened(drained.log) | sources_opened(killed.log)
        on_survivor = sources_opened(survivor.log)
        assert victims and on_survivor and not victims & on_survivor

        # when: one replica is SIGTERMed (drains) and another SIGKILLed, mid-file
        drained.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        killed.process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert drained.process.wait(30) == 0

        # then: the files are classified to their end and every camera is answered again
        def done() -> bool:
            rows = watch.rows()
            per_file = Counter(r["source"] for r in rows)
            fresh = {r["source"] for r in rows if captured_at(r) > killed_at + 1.0}
            return all(per_file[f] >= FRAMES for f in files) and set(cameras) <= fresh

        wait_until(
            done,
            timeout=90,
            interval=0.25,
            message=lambda: (
                f"{Counter(r['source'] for r in watch.rows())}; {watch.log.read_text()[-3000:]}"
            ),
        )
    finally:
        exit_code = stop_gracefully(watch.process, signal.SIGTERM, timeout=30)
    assert exit_code == 0, watch.log.read_text()[-3000:]

    rows = watch.rows()
    # every frame of every file exactly once: 0..N-1, no gap, no duplicate
    frames: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        frames[row["source"]].append(int(row["frame"]))
    for path in files:
        assert sorted(frames[path]) == list(range(FRAMES)), path
    # every camera answered after the kill
    for camera in cameras:
        assert max(captured_at(r) for r in rows if r["source"] == camera) > killed_at + 1.0

    # only the dead replicas' streams were reopened; the connection itself was never rebuilt
    messages = [e["message"] for e in watch.log_entries()]
    lost = {
        m.partition(": stream to the server lost")[0]
        for m in messages
        if ": stream to the server lost" in m
    }
    assert lost and lost <= victims, (lost, victims)
    assert set(cameras) & victims <= lost  # a live camera never ends: it lost its stream
    server_states = [m for m in messages if m.startswith(f"server {target}: ")]
    assert not [m for m in server_states if "stalled" in m or "reconnecting" in m], server_states
