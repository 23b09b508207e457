"""The label page in a real headless Chromium: 20 frames labelled by keyboard, one skip, one undo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.camera_tools.screens import png_image

from .collected import write_collected
from .label_process import LabelProcess

pytestmark = pytest.mark.slow

DEMO_OUTPUT = Path(__file__).resolve().parents[3] / "demo-output"
LABELS = ("program", "black", "color_bars", "ident")  # the model's three, then --new-labels ident
# What is typed: 20 frames decided (18 labels, a skip, and a label given after an undo).
KEYS = ["1", "2", "3", "4", "1", "s", "2", "2", "3", "4", "1", "3", "u", "2", "4", "1", "2",
        "3", "1", "4", "2", "3"]  # fmt: skip


def expected_from(
    keys: list[str], order: list[str]
) -> tuple[list[tuple[str, str, str | None]], dict[str, str]]:
    """Replay the keys on the page's order: the decision lines and the tree they must give."""
    lines: list[tuple[str, str, str | None]] = []
    shown, done = 0, []
    for key in keys:
        if key == "u":
            frame, action, label = lines[-1]
            lines.append((frame, "undo", label))
            done.pop()
            shown = order.index(frame)
            continue
        frame = order[shown]
        if key == "s":
            lines.append((frame, "skip", None))
        else:
            lines.append((frame, "assign", LABELS[int(key) - 1]))
        done.append(frame)
        shown = next(i for i, f in enumerate(order) if f not in done and i > shown)
    standing: dict[str, str] = {}
    for frame, action, label in lines:
        if action == "assign" and label is not None:
            standing[frame] = label
        elif action == "undo":
            standing.pop(frame, None)
    return lines, standing


@pytest.mark.timeout(180)
def test_label_twenty_frames_by_keyboard(browser: WebDriver, tmp_path: Path) -> None:
    driver = browser
    # given 24 collected frames and the label page, behind a token, with a new class
    collected = write_collected(
        tmp_path / "collected", 24, sources=("rtsp://cam1/live", "news.mp4")
    )
    out = tmp_path / "dataset"
    page = LabelProcess(collected.folder, out, "--new-labels", "ident", "--web-token", "t0k")
    try:
        driver.get(f"{page.url}?token=t0k")
        wait = WebDriverWait(driver, 30, poll_frequency=0.1)
        body = driver.find_element(By.TAG_NAME, "body")
        order = collected.by_score()
        wait.until(lambda d: body.get_attribute("data-frame") == order[0])
        wait.until(lambda d: driver.find_element(By.ID, "image").get_property("naturalWidth") > 0)

        # then the page shows the frame, its prediction, and the numbered labels
        first = collected.entries[collected.ids().index(order[0])]
        assert driver.find_element(By.ID, "predicted").text == first["label"]
        assert driver.find_element(By.ID, "score").text == f"{round(first['score'] * 100)}%"
        assert first["source"] in driver.find_element(By.ID, "where").text
        buttons = driver.find_elements(By.CSS_SELECTOR, "#labels button")
        assert [b.text.split("\n")[:2] for b in buttons] == [
            [str(i + 1), label] for i, label in enumerate(LABELS)
        ]
        assert driver.find_element(By.ID, "left").text == "24 left of 24"

        # when the keys are typed, one after another as fast as a person who knows them
        for key in KEYS:
            body.send_keys(key)
        wait.until(
            lambda d: (
                body.get_attribute("data-idle") == "1"
                and d.find_element(By.ID, "left").get_attribute("data-left") == "4"
            )
        )

        # then the folder tree and the decisions file are exactly what was typed
        lines, standing = expected_from(KEYS, order)
        written = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]
        assert [(d["id"], d["action"], d["label"]) for d in written] == lines
        tree = {str(p.relative_to(out)) for p in out.glob("*/*") if not p.name.startswith(".")}
        assert tree == {f"{label}/{frame}.jpg" for frame, label in standing.items()}
        assert len(standing) == 19 and sum(1 for x in lines if x[1] == "skip") == 1
        # and the counts on screen say so
        tally = driver.find_element(By.ID, "tally").text
        for label in LABELS:
            assert f"{label} {sum(1 for v in standing.values() if v == label)}" in tally
        assert "skipped 1" in tally
        assert body.get_attribute("data-frame") == order[20]

        # when the mouse is used: the arrow buttons move without deciding
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: body.get_attribute("data-frame") == order[21])
        body.send_keys(Keys.ARROW_LEFT)
        wait.until(lambda d: body.get_attribute("data-frame") == order[20])
        assert len((out / "decisions.jsonl").read_text().splitlines()) == len(lines)

        # a picture for the docs: a frame other than snow (which also makes a large PNG)
        for _ in range(3):
            shown = body.get_attribute("data-frame") or ""
            if int(shown.rsplit("-", 1)[1]) % 4 != 3:
                break
            body.send_keys(Keys.ARROW_RIGHT)
            wait.until(lambda d, s=shown: body.get_attribute("data-frame") != s)
        wait.until(lambda d: body.get_attribute("data-idle") == "1")
        shot = png_image(driver.get_screenshot_as_png())
        assert shot.std() > 20
        DEMO_OUTPUT.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(DEMO_OUTPUT / "label-page.png"))

        # and a label button does what its key does
        shown = body.get_attribute("data-frame")
        driver.find_element(By.CSS_SELECTOR, '#labels button[data-label="ident"]').click()
        wait.until(lambda d: body.get_attribute("data-frame") != shown)
        last = json.loads((out / "decisions.jsonl").read_text().splitlines()[-1])
        assert (last["id"], last["action"], last["label"]) == (shown, "assign", "ident")
        assert (out / "ident" / f"{shown}.jpg").is_file()
    finally:
        page.kill()
        shutil.rmtree(tmp_path / "collected", ignore_errors=True)
