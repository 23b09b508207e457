"""What the live web view costs ``watch``: classification throughput with and without it.

One measurement: a server with the embedded model, then ``stream-classify watch`` on ``sources``
copies of one video file (LOSSLESS, as fast as the server answers) for ``duration_s``, in rounds
that alternate *without* the web view and *with* it, where one MJPEG reader per source (what
the page's ``<img>`` tiles are) and one event-feed reader stay connected the whole run.
Throughput is classified frames (the ``--csv`` rows) per second of the run; the cost is
``1 - with / without``, from the best round of each kind (the machine is shared: the best round
is the one least disturbed by others).

Use from the suite (a server already running)::

    row = web_view_row(WebViewSpec(server="127.0.0.1:1234"), work_dir)

or alone, as a child process that starts its own server and prints one JSON line::

    python -m streaming.bench.web_view --sources 8 --duration 20
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from streaming.bench.processes import BenchError, ChildProcess, child_env, free_port
from streaming.bench.results import Row

logger = logging.getLogger(__name__)

CLIP_SIZE = (640, 360)
CLIP_FPS = 25
T = TypeVar("T")
_URL_TIMEOUT_S = 60.0  # watch's start: connect, open every source, bind the web view


@dataclass(frozen=True)
class WatchABSpec:
    """One with/without cost measurement of ``watch`` (this row's web view, or ``--collect``).

    Attributes:
        server: Address of a running classification server.
        sources: Copies of the clip watched at once.
        duration_s: Length of one run (``watch --duration``).
        rounds: Runs of each kind (without, with), alternated.
        clip_s: Length of the generated clip; long enough that no source ends early.
    """

    server: str
    sources: int = 8
    duration_s: float = 20.0
    rounds: int = 2
    clip_s: float = 120.0


WebViewSpec = WatchABSpec


@dataclass(frozen=True)
class WatchABResult:
    without_fps: tuple[float, ...]
    with_fps: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """Throughput with / without (best rounds)."""
        return max(self.with_fps) / max(self.without_fps)

    @property
    def cost(self) -> float:
        return 1.0 - self.ratio

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "cost": self.cost}


@dataclass(frozen=True)
class WebViewResult(WatchABResult):
    web_frames_read: int  # JPEG frames the readers received over all "with" rounds


def watch_argv(spec: WatchABSpec, clip: Path, csv_path: Path) -> list[str]:
    """``stream-classify watch`` on ``spec.sources`` copies of ``clip``, one CSV row per frame."""
    return [
        str(Path(sys.executable).with_name("stream-classify")), "--log-level", "WARNING",
        "watch", *[str(clip)] * spec.sources, "--server", spec.server,
        "--duration", str(spec.duration_s), "--csv", str(csv_path),
    ]  # fmt: skip


def classified_per_second(spec: WatchABSpec, csv_path: Path) -> float:
    """Frames classified per second of one run (its ``--csv`` rows)."""
    with csv_path.open() as handle:
        rows = sum(1 for _ in handle) - 1
    # Over the run's own duration, not the process's: start-up is the same with and without.
    return rows / spec.duration_s


def alternate(
    spec: WatchABSpec, clip: Path, what: str, run: Callable[[int, bool], tuple[float, T]]
) -> tuple[tuple[float, ...], tuple[float, ...], list[T]]:
    """``spec.rounds`` rounds of one run without ``what``, then one with it
    (``run(round, with_it)``), on ``clip`` (written first if missing).

    Returns:
        the frames/s without, with, and what each "with" run measured besides.
    """
    if not clip.exists():
        write_clip(clip, spec.clip_s)
    without: list[float] = []
    with_it: list[float] = []
    measured: list[T] = []
    for round_ in range(spec.rounds):
        without.append(run(round_, False)[0])
        fps, extra = run(round_, True)
        with_it.append(fps)
        measured.append(extra)
        logger.info(
            "round %d: %.1f fps without, %.1f with %s (%s)",
            round_,
            without[-1],
            fps,
            what,
            extra,
        )
    return tuple(without), tuple(with_it), measured


def with_a_server(server: str | None, log_path: Path, run: Callable[[str], T]) -> T:
    """``run(server)``, starting a server with the embedded model when none is given."""
    if server is not None:
        return run(server)
    address = f"127.0.0.1:{free_port()}"
    command = [str(Path(sys.executable).with_name("stream-classify")), "serve", "-ip", address]
    with ChildProcess(command, "address:", log_path):
        return run(address)


def write_clip(path: Path, seconds: float) -> Path:
    """A moving synthetic scene (so every frame differs and JPEG has real work)."""
    width, height = CLIP_SIZE
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"mp4v"), CLIP_FPS, CLIP_SIZE
    )
    if not writer.isOpened():
        raise BenchError("cannot write the web-view clip (no mp4v encoder)")
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    base = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    for i in range(round(seconds * CLIP_FPS)):
        frame = np.roll(base, i * 7, axis=1)
        frame[:, :, 2] = (frame[:, :, 2].astype(np.int32) + i * 3) % 256
        cv2.putText(frame, f"{i}", (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
        writer.write(frame)
    writer.release()
    return path


class _Readers:
    """One MJPEG reader per source and one event-feed reader, like an open page."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url + "api/sources", timeout=10) as response:
            slugs = [s["slug"] for s in json.load(response)["sources"]]
        self._stop = threading.Event()
        self.frames = 0
        self._lock = threading.Lock()
        paths = [f"stream/{slug}.mjpg" for slug in slugs] + ["events"]
        self._threads = [
            threading.Thread(target=self._read, args=(url + path,), daemon=True) for path in paths
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                while not self._stop.is_set():
                    chunk = response.read1(65536)
                    if not chunk:
                        return
                    with self._lock:
                        self.frames += chunk.count(b"\xff\xd8\xff")  # JPEG start markers
        except OSError:
            return  # watch ended the stream

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _run_watch(
    spec: WebViewSpec, clip: Path, work_dir: Path, tag: str, web: bool
) -> tuple[float, int]:
    """One ``watch`` run; (classified frames per second, JPEG frames the readers got)."""
    csv_path = work_dir / f"web-view-{tag}.csv"
    argv = watch_argv(spec, clip, csv_path)
    if web:
        argv += ["--web", "127.0.0.1:0"]
    with (work_dir / f"web-view-{tag}.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=child_env())
        readers = None
        try:
            if web:
                readers = _Readers(_web_url(process))
            process.wait(timeout=spec.duration_s + 120)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            raise BenchError(f"watch overran its deadline ({tag})") from exc
        finally:
            if readers is not None:
                readers.close()
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
    if process.returncode != 0:
        raise BenchError(f"watch exited with {process.returncode} ({tag}; see its log)")
    return classified_per_second(spec, csv_path), 0 if readers is None else readers.frames


def _web_url(process: subprocess.Popen[bytes]) -> str:
    stdout = process.stdout
    assert stdout is not None
    deadline = time.monotonic() + _URL_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = stdout.readline().decode()
        if not line:
            break
        if line.startswith("web view: "):
            return line.removeprefix("web view: ").strip()
    raise BenchError("watch printed no web view URL")


def measure(spec: WebViewSpec, work_dir: Path) -> WebViewResult:
    """Alternate runs without and with the web view; see the module docstring."""
    work_dir.mkdir(parents=True, exist_ok=True)
    clip = work_dir / "web-view-clip.mp4"
    without, with_web, jpegs = alternate(
        spec,
        clip,
        "the web view",
        lambda round_, web: _run_watch(
            spec, clip, work_dir, f"{'web' if web else 'plain'}-{round_}", web
        ),
    )
    return WebViewResult(without, with_web, sum(jpegs))


def web_view_row(spec: WebViewSpec, work_dir: Path) -> Row:
    """The benchmark table's row: throughput with the web view open, and its cost."""
    result = measure(spec, work_dir)
    return Row(
        key="web-view",
        name=f"watch, {spec.sources} files, web view open",
        setup=f"{spec.sources} MJPEG readers + event feed vs none; {spec.rounds}x{spec.duration_s:g} s",
        fps=max(result.with_fps),
        extra={
            "fps_without": max(result.without_fps),
            "ratio": round(result.ratio, 3),
            "cost_pct": round(100 * result.cost, 1),
            "web_frames_read": result.web_frames_read,
        },
        note="target: cost < 10%",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.bench.web_view")
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("bench-output"))
    parser.add_argument(
        "--server", default=None, help="a running server (default: start one, embedded model)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="web-view: %(message)s")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    def run(server: str) -> WebViewResult:
        spec = WebViewSpec(server, args.sources, args.duration, args.rounds)
        return measure(spec, args.work_dir)

    result = with_a_server(args.server, args.work_dir / "web-view-server.log", run)
    print(json.dumps(result.to_json()), flush=True)  # noqa: T201 - the process's output is this JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
