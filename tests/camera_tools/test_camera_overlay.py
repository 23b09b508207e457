from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_tools.overlay import (
    LabelHistory,
    OverlayPainter,
    draw_overlay,
    label_color,
    label_color_hex,
    short_source_name,
    text_color_on,
)


def gray(height: int = 120, width: int = 160) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


def color_pixels(image: np.ndarray, color: tuple[int, int, int]) -> int:
    return int(np.all(image == np.array(color, np.uint8), axis=2).sum())


@pytest.mark.parametrize(("height", "width"), [(48, 64), (120, 160), (360, 640), (1080, 1920)])
def test_badge_in_label_colour_scales_with_the_frame(height: int, width: int) -> None:
    image = gray(height, width)
    out = draw_overlay(image, label="color_bars", score=0.93, source="cam1")

    assert out is not image and (image == 128).all()
    badge = color_pixels(out, label_color("color_bars"))
    # The badge covers a share of the frame that does not shrink on big frames.
    assert badge / (height * width) > 0.004
    assert (out[height // 2 :, width // 2 :] == 128).all()  # the scene's lower right untouched


def badge_rows_and_columns(out: np.ndarray, label: str) -> tuple[int, int]:
    mask = np.all(out == np.array(label_color(label), np.uint8), axis=2)
    return int(mask.any(axis=1).sum()), int(np.flatnonzero(mask.any(axis=0)).max())


# (A 48x64 thumbnail shrinks each label to fit its width, so there heights differ by design.)
@pytest.mark.parametrize(("height", "width"), [(120, 160), (360, 640), (1080, 1920)])
def test_badge_height_does_not_depend_on_the_label(height: int, width: int) -> None:
    # OpenCV 5 reports each string's own descent; the badge must not jump as the label changes.
    rows = {
        label: badge_rows_and_columns(
            draw_overlay(gray(height, width), label=label, score=0.5), label
        )[0]
        for label in ("black", "program", "color_bars", "yyy")
    }
    assert len(set(rows.values())) == 1, rows


@pytest.mark.parametrize(
    ("height", "width", "label"),
    [
        (48, 64, "color_bars"),
        (120, 160, "a_rather_long_label_name"),
        (360, 640, "german_shepherd_dog_on_a_sofa"),
        (1080, 1920, "program"),
    ],
)
def test_badge_text_shrinks_to_fit_the_width_never_cut_off(
    height: int, width: int, label: str
) -> None:
    out = draw_overlay(gray(height, width), label=label, score=0.93)
    _, last_column = badge_rows_and_columns(out, label)
    assert last_column < width - 1  # the badge ends inside the frame: its text is whole
    assert (out[height // 2 :] == 128).all()


def test_strip_along_the_bottom_shows_each_label_colour() -> None:
    strip = ["program"] * 10 + ["black"] * 10 + [None] * 5
    out = draw_overlay(gray(360, 640), label="black", score=1.0, strip=strip)

    bottom = out[-3:]
    assert color_pixels(bottom, label_color("program")) > 0
    assert color_pixels(bottom, label_color("black")) > 0
    assert (out[-40:-20, 300:] == 128).all()  # thin: the scene above it is untouched


def test_short_name_is_drawn_not_the_full_path_or_credentials(tmp_path: Path) -> None:
    source = "rtsp://admin:hunter2@cam.example:8554/live/studio?token=abc"
    long_text = draw_overlay(gray(360, 640), label=None, source="x" * 200)
    short = draw_overlay(gray(360, 640), label=None, source=source)
    # A 200-character id is shortened, so its box does not run across the picture.
    assert (long_text[:, -40:] == 128).all()
    assert short_source_name(source) == "cam.example:8554/studio"
    # The 60-character redacted URL would run across two thirds of the frame; the short name not.
    changed_columns = np.flatnonzero((short != 128).any(axis=(0, 2)))
    assert 0 < changed_columns.max() < 640 // 2

    # given a realistic frame, when drawn as it is shown to people, then it is saved for review
    scene = cv2.resize(np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1)), (640, 360))
    scene = cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR)
    painter = OverlayPainter(strip_seconds=10, clock=iter(np.arange(0, 20, 0.5)).__next__)
    for label in ["program"] * 12 + ["black"] * 6:
        painter.observe(source, label)
    shown = painter.paint(scene, source=source, label="black", score=0.97, fps=9.8)
    cv2.imwrite(str(tmp_path / "overlay.png"), shown)
    assert color_pixels(shown, label_color("black")) > 1000
    assert color_pixels(shown[-5:], label_color("program")) > 0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("rtsp://u:p@10.0.0.5/cam/ch1", "10.0.0.5/ch1"),
        ("http://host.local/", "host.local"),
        ("/very/long/folder/name/clip.mp4", "clip.mp4"),
        ("/data/clip.mp4#2", "clip.mp4#2"),
        ("0", "0"),
        ("frames/", "frames"),
    ],
)
def test_short_source_name(source: str, expected: str) -> None:
    assert short_source_name(source) == expected


def test_label_colours_are_stable_and_text_is_readable() -> None:
    assert label_color("cat") == label_color("cat")
    assert label_color_hex("program") == "#2ecc71"
    assert len({label_color(label) for label in ("program", "black", "color_bars", "static")}) == 4
    assert text_color_on((255, 255, 255)) == (0, 0, 0)
    assert text_color_on((60, 60, 60)) == (255, 255, 255)


def test_label_history_keeps_only_the_window() -> None:
    history = LabelHistory(seconds=2.0)
    for t, label in [(0.0, "a"), (1.0, "b"), (5.0, "c")]:
        history.add(t, label)
    assert history.slots(now=6.0, count=3) == ["b", "c", "c"]  # b lasted until 5
    fresh = LabelHistory(seconds=2.0)
    fresh.add(0.0, "a")
    assert fresh.slots(now=0.5, count=2) == [None, "a"]  # nothing known before 0


def test_overlay_in_place_modifies_the_input() -> None:
    image = gray()
    out = draw_overlay(image, label="dog", score=0.5, in_place=True)
    assert out is image
    assert (image != 128).any()


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32)])
def test_overlay_rejects_bad_input(image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        draw_overlay(image, label="x")


def test_overlay_without_anything_returns_a_copy() -> None:
    image = gray()
    out = draw_overlay(image, label=None)
    assert out is not image and (out == image).all()
