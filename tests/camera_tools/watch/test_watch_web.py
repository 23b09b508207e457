"""``stream-classify watch --web`` in a real headless Chromium: a real RTSP colour-bars feed and a
real video file, classified by a real server with the embedded model, watched by a real browser."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from ..conftest import RtspServer
from ..screens import png_image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
CLIP = ROOT / "demo" / "broadcast_sample.mp4"
DEMO_OUTPUT = ROOT / "demo-output"
STREAM_CLASSIFY = Path(sys.executable).with_name("stream-classify")


class WatchProcess:
    """``stream-classify watch ... --web 127.0.0.1:0`` as a child; :attr:`url` is its page."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [str(STREAM_CLASSIFY), "watch", *argv, "--web", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = self._read_url(timeout_s=60)

    def _read_url(self, timeout_s: float) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        for _ in range(50):  # bounded: lines printed before the URL
            ready, _, _ = select.select([stdout], [], [], timeout_s)
            assert ready, f"watch printed no web view URL within {timeout_s} s"
            line = stdout.readline()
            assert line, "watch ended before serving its web view"
            if line.startswith("web view: "):
                return line.removeprefix("web view: ").strip()
        raise AssertionError("no web view line")

    def sources(self) -> dict[str, dict[str, Any]]:
        """The JSON snapshot at /api/sources, by source id."""
        with urllib.request.urlopen(self.url + "api/sources", timeout=10) as response:
            return {s["id"]: s for s in json.load(response)["sources"]}

    def stop(self) -> int:
        """SIGTERM (a clean stop), then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()


@pytest.fixture
def watch_bars_and_clip(
    embedded_server: Any, rtsp_colour_bars: RtspServer
) -> Iterator[tuple[WatchProcess, str]]:
    """watch on the colour-bars feed and the demo clip; yields the process and the feed's URL."""
    feed = rtsp_colour_bars.url()
    watch = WatchProcess(
        feed, str(CLIP), "--server", embedded_server.address, "--realtime",
        "--stall-timeout", "3", "--duration", "240",
    )  # fmt: skip
    try:
        yield watch, feed
    finally:
        if watch.process.poll() is None:
            watch.stop()


def tile(driver: WebDriver, slug: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'.tile[data-slug="{slug}"]')


def text_of(element: WebElement, selector: str) -> str:
    return str(element.find_element(By.CSS_SELECTOR, selector).text)


@pytest.mark.timeout(300)
def test_watch_web_view_in_a_real_browser(
    browser: WebDriver,
    watch_bars_and_clip: tuple[WatchProcess, str],
    rtsp_colour_bars: RtspServer,
) -> None:
    watch, feed = watch_bars_and_clip
    driver = browser
    wait = WebDriverWait(driver, 60, poll_frequency=0.25)
    slugs = {source_id: s["slug"] for source_id, s in watch.sources().items()}
    assert set(slugs) == {feed, str(CLIP)}

    # given the page of a running watch
    driver.get(watch.url)
    tiles = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tile") or None)
    assert len(tiles) == 2
    bars, clip = tile(driver, slugs[feed]), tile(driver, slugs[str(CLIP)])
    assert text_of(clip, ".name") == CLIP.name  # the short name, not the path

    # then the bars feed is labelled color_bars, and both timelines have a segment
    wait.until(lambda _: text_of(bars, ".label") == "color_bars")
    for each in (bars, clip):
        wait.until(
            lambda _, t=each: (
                int(
                    t.find_element(By.CSS_SELECTOR, ".timeline").get_attribute("data-segments") or 0
                )
                >= 1
            )
        )
    wait.until(lambda _: "fps" in text_of(bars, ".stats"))

    # and the video areas are not blank and change over time
    for each in (bars, clip):
        video = each.find_element(By.CSS_SELECTOR, ".video")
        wait.until(lambda _, v=video: v.get_property("naturalWidth") > 0)
        first = png_image(video.screenshot_as_png)
        assert first.std() > 20, "the video area is blank"
        wait.until(
            lambda _, v=video, f=first: (
                (shot := png_image(v.screenshot_as_png)).shape == f.shape
                and float(np.abs(shot.astype(int) - f).mean()) > 1.0
            )
        )

    # when the RTSP server goes away, the bars tile says it is reconnecting
    rtsp_colour_bars.kill()
    wait.until(lambda _: "reconnecting" in text_of(bars, ".down-banner"))
    wait.until(lambda _: "down" in (bars.get_attribute("class") or "").split())
    wait.until(lambda _: watch.sources()[feed]["down"])

    # and when it is back, the tile recovers: up again and labelled
    rtsp_colour_bars.start()
    wait.until(lambda _: "down" not in (bars.get_attribute("class") or "").split())
    wait.until(lambda _: text_of(bars, ".label") == "color_bars")
    wait.until(lambda _: not watch.sources()[feed]["down"])
    DEMO_OUTPUT.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(DEMO_OUTPUT / "watch-web.png"))
    assert watch.stop() == 0
