"""Fixtures for camera_tools tests: small real videos, image folders, scripted fake sources, a real
RTSP server, a real server with the embedded model and a real headless browser."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camera_tools.camera_errors import SourceError, SourceOfflineError
from camera_tools.sources import RawFrame, SourceKind
from camera_tools.video_frames import SourceProperties
from tests.camera_tools.pages import PageServer, grey_frames, write_hls
from tests.camera_tools.videos import write_video


def numbered_image(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A frame whose mean brightness encodes ``i`` (survives lossy encoding roughly)."""
    return np.full((height, width, 3), (i * 10) % 250, np.uint8)


def write_numbered_video(path: Path, frames: int, fps: float) -> Path:
    return write_video(path, (numbered_image(i) for i in range(frames)), fps)


@pytest.fixture(scope="session")
def video_30f_10fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_numbered_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=30, fps=10)


@pytest.fixture(scope="session")
def video_60f_30fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_numbered_video(tmp_path_factory.mktemp("video") / "clip30.mp4", frames=60, fps=30)


@pytest.fixture(scope="session")
def video_10f_20fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_numbered_video(tmp_path_factory.mktemp("video") / "clip20.mp4", frames=10, fps=20)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), numbered_image(i))
    (folder / "notes.txt").write_text("not an image")
    return folder


@dataclass
class Script:
    """What one fake source does after opening: ``frames`` frames, then ``then``.

    ``then``: ``"end"`` (read returns None), ``"raise"``, or ``"hang"`` (blocks until released).
    ``offline``: open raises SourceOfflineError (a page with nothing to play now).
    ``is_live``: what the opened source says it is; ``None`` for its kind's default.
    """

    frames: int = 0
    interval_s: float = 0.0
    then: str = "end"
    open_error: bool = False
    fps: float | None = 25.0
    offline: bool = False
    is_live: bool | None = None


@dataclass
class FakeSource:
    script: Script
    kind_: SourceKind
    release: threading.Event
    opened: bool = False
    closed: bool = False
    served: int = 0

    @property
    def kind(self) -> SourceKind:
        return self.kind_

    @property
    def is_live(self) -> bool:
        return self.kind_.is_live if self.script.is_live is None else self.script.is_live

    def open(self) -> SourceProperties:
        if self.script.open_error:
            raise SourceError("connection refused")
        if self.script.offline:
            raise SourceOfflineError("not live yet")
        self.opened = True
        return SourceProperties(64, 48, self.script.fps, self.is_live)

    def read(self) -> RawFrame | None:
        if self.served < self.script.frames:
            if self.script.interval_s:
                time.sleep(self.script.interval_s)
            self.served += 1
            position = None if self.is_live else (self.served - 1) / (self.script.fps or 25.0)
            return RawFrame(numbered_image(self.served), position)
        if self.script.then == "raise":
            raise OSError("stream broke")
        if self.script.then == "hang":
            self.release.wait()
            return None
        return None

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeFactory:
    """A source factory that hands out one scripted :class:`FakeSource` per call."""

    scripts: list[Script]
    kind: SourceKind = SourceKind.NETWORK
    created: list[FakeSource] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, spec: str) -> FakeSource:
        self.specs.append(spec)
        script = self.scripts[min(len(self.created), len(self.scripts) - 1)]
        source = FakeSource(script, self.kind, self.release)
        self.created.append(source)
        return source


@pytest.fixture
def fake_factory() -> Iterable[Callable[..., FakeFactory]]:
    made: list[FakeFactory] = []

    def make(scripts: list[Script], kind: SourceKind = SourceKind.NETWORK) -> FakeFactory:
        factory = FakeFactory(scripts, kind)
        made.append(factory)
        return factory

    yield make
    for factory in made:
        factory.release.set()  # unblock hung readers so no thread outlives the test


@pytest.fixture
def script() -> type[Script]:
    """The :class:`Script` class (test modules cannot import conftest under importlib mode)."""
    return Script


# -- a real RTSP server (GStreamer's gst-rtsp-server, run by Debian's python3) -------------------

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def rtsp_server_available() -> bool:
    probe = 'import gi; gi.require_version("GstRtspServer", "1.0")'
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class RtspServer:
    """Starts, kills and restarts ``rtsp_server.py`` on one port."""

    def __init__(self, *options: str) -> None:
        self.port = 0
        self.options = options  # more rtsp_server.py flags, e.g. "--pattern", "smpte"
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 15.0) -> None:
        self._close_pipe()
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--port", str(self.port), *self.options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.stop()
            pytest.fail(f"RTSP server did not start (got {line!r})")
        self.port = int(line.split()[1])

    def kill(self) -> None:
        """Die like a crashed camera: no RTSP teardown."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close_pipe()

    def freeze(self) -> None:
        """Hang like a wedged camera: the connection stays open but goes silent."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a stopped process cannot handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials}127.0.0.1:{self.port}/test"


def _running_rtsp_server(*options: str) -> Iterator[RtspServer]:
    if not rtsp_server_available():
        pytest.skip(
            "no GStreamer RTSP server: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"
        )
    server = RtspServer(*options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """A running RTSP server; skips the test when GStreamer's RTSP server is not installed."""
    yield from _running_rtsp_server()


COLOUR_BARS_OPTIONS = ("--pattern", "smpte", "--scroll", "2", "--width", "320", "--height", "240")


@pytest.fixture
def rtsp_colour_bars() -> Iterator[RtspServer]:
    """A running RTSP server of SMPTE colour bars, scrolling so that frames differ."""
    yield from _running_rtsp_server(*COLOUR_BARS_OPTIONS)


# -- a real server with the embedded broadcast-monitor model (knows black, color_bars...) --------


@pytest.fixture(scope="session")
def embedded_classifier() -> Any:
    """The embedded model, loaded once (it costs seconds)."""
    from streaming.server.model import load_classifier
    from streaming.server.serve_config import ModelConfig

    return load_classifier(ModelConfig())


@pytest.fixture
def embedded_server(server_factory: Callable[..., Any], embedded_classifier: Any) -> Any:
    """A real server on 127.0.0.1:0 with the embedded model; ``.address`` is its address."""
    from streaming.server.serve_config import ModelConfig

    return server_factory(classifier=embedded_classifier, model=ModelConfig())


# -- a real headless Chromium (Debian's chromium and chromedriver, through Selenium) ------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium WebDriver (1280x900); skips without Debian's chromium packages."""
    from selenium import webdriver

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("no browser: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# -- web pages and HLS streams on loopback (see pages.py) ----------------------------------------


@pytest.fixture(scope="session")
def grey_hls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames at 10 fps whose brightness tells their index, as HLS segments and a VOD playlist."""
    folder = tmp_path_factory.mktemp("hls-grey")
    write_hls(folder, grey_frames(30), fps=10)
    return folder


@pytest.fixture
def page_server() -> Iterator[Callable[[Path], PageServer]]:
    """``page_server(folder)``: pages and HLS of ``folder`` on loopback, closed after the test."""
    started: list[PageServer] = []

    def start(folder: Path) -> PageServer:
        server = PageServer(folder)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
