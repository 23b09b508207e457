"""The web view in a real headless Chromium (Debian's chromium + chromium-driver via Selenium)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from camera_tools.sinks.base import Classification
from camera_tools.web import SourceStats, WebHub, WebServer

from ..screens import png_image

pytestmark = pytest.mark.slow

BARS = "rtsp://***@studio.local:8554/bars"
CLIP = "/srv/clips/evening-news.mp4"
DEMO_OUTPUT = Path(__file__).resolve().parents[3] / "demo-output"
BAR_COLOURS = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192),
               (0, 0, 192), (192, 0, 0)]  # fmt: skip


def colour_bars(step: int, width: int = 640, height: int = 360) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    edges = np.linspace(0, width, len(BAR_COLOURS) + 1).astype(int)
    for colour, x0, x1 in zip(BAR_COLOURS, edges, edges[1:], strict=False):
        image[:, x0:x1] = colour
    # A moving square, so consecutive frames differ the way live video does.
    x = (step * 12) % (width - 60)
    image[height // 2 : height // 2 + 60, x : x + 60] = 255
    return image


def scene(step: int, width: int = 640, height: int = 360) -> np.ndarray:
    ramp = np.linspace(30, 200, width, dtype=np.uint8)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    image[:, :, 0] = (image[:, :, 0].astype(int) + step * 5) % 256
    return image


class Publisher:
    """Feeds the hub like the watch runner would: frames, labels, stats."""

    def __init__(self, hub: WebHub) -> None:
        self.hub = hub
        self.stop = threading.Event()
        self.clip_down = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for step in range(100_000):  # bounded; stopped long before
            if self.stop.wait(0.05):
                return
            self.hub.publish_frame(
                BARS,
                colour_bars(step),
                Classification(BARS, step, 1000.0 + step, "color_bars", 0.97),
            )
            if not self.clip_down.is_set():
                label = "program" if (step // 20) % 3 else "black"
                self.hub.publish_frame(
                    CLIP, scene(step), Classification(CLIP, step, 1000.0 + step, label, 0.88)
                )
            if step % 10 == 0:
                stats = SourceStats(fps=19.6, latency_ms=23.0, classified=step, dropped=2)
                self.hub.publish_stats(BARS, stats)


def test_page_in_a_real_browser(browser: WebDriver) -> None:
    driver = browser
    hub = WebHub([BARS, CLIP])
    publisher = Publisher(hub)
    with WebServer(hub, port=0, token="t0ken") as server:
        publisher.thread.start()
        try:
            # given the page, opened with its token
            driver.get(f"{server.url}?token=t0ken")
            wait = WebDriverWait(driver, 30, poll_frequency=0.2)
            tiles = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tile") or None)
            assert len(tiles) == 2
            bars = driver.find_element(
                By.CSS_SELECTOR, f'.tile[data-slug="{hub.add_source(BARS)}"]'
            )

            # then the label and the timeline show
            wait.until(lambda _: bars.find_element(By.CSS_SELECTOR, ".label").text == "color_bars")
            assert bars.find_element(By.CSS_SELECTOR, ".name").text == "studio.local:8554/bars"
            wait.until(
                lambda _: (
                    int(
                        bars.find_element(By.CSS_SELECTOR, ".timeline").get_attribute(
                            "data-segments"
                        )
                        or 0
                    )
                    >= 1
                )
            )
            assert "19.6 fps" in bars.find_element(By.CSS_SELECTOR, ".stats").text

            # and the video is not blank and moves
            video = bars.find_element(By.CSS_SELECTOR, ".video")
            wait.until(lambda _: video.get_property("naturalWidth") > 0)
            first = png_image(video.screenshot_as_png)
            assert first.std() > 20  # colour bars, not a blank box
            changed = wait.until(
                lambda _: (
                    (shot := png_image(video.screenshot_as_png)).shape == first.shape
                    and np.abs(shot.astype(int) - first).mean() > 1
                )
            )
            assert changed

            # when the clip's source goes down, its tile says so
            publisher.clip_down.set()
            hub.publish_state(CLIP, "reconnecting", "connection refused")
            clip = driver.find_element(
                By.CSS_SELECTOR, f'.tile[data-slug="{hub.add_source(CLIP)}"]'
            )
            wait.until(
                lambda _: "reconnecting" in clip.find_element(By.CSS_SELECTOR, ".state").text
            )
            assert "reconnecting" in clip.find_element(By.CSS_SELECTOR, ".down-banner").text

            DEMO_OUTPUT.mkdir(exist_ok=True)
            assert driver.save_screenshot(str(DEMO_OUTPUT / "web-view.png"))
        finally:
            publisher.stop.set()
            publisher.thread.join(timeout=10)
