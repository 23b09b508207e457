"""Fixtures for the trainer: small real videos made by ffmpeg, image folders, a CLI runner."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.camera_tools.conftest import browser  # noqa: F401 (a fixture, shared: the learning loop)

# Three visually different ffmpeg sources; each clip shows them in some order for SEGMENT_S each.
SOURCES = {
    "testsrc2": "testsrc2=size=128x96:rate={fps}",
    "mandelbrot": "mandelbrot=size=128x96:rate={fps}",
    "life": "life=size=128x96:rate={fps}:mold=10:ratio=0.3:seed={seed}",
}
FPS = 10
SEGMENT_S = 4
# (clip name, offset into each source in seconds, order of sources)
TRAINING_CLIPS = (
    ("c1", 0, ("testsrc2", "mandelbrot", "life")),
    ("c2", 3, ("life", "testsrc2", "mandelbrot")),
    ("c3", 6, ("mandelbrot", "life", "testsrc2")),
    ("c4", 9, ("testsrc2", "life", "mandelbrot")),
)
HELD_OUT = ("held", 14, ("life", "mandelbrot", "testsrc2"))


def make_clip(folder: Path, name: str, offset: int, order: Sequence[str]) -> Path:
    """One H.264 clip: ``order`` sources, SEGMENT_S seconds each, from ``offset`` s into each."""
    inputs: list[str] = []
    graph = ""
    for i, source in enumerate(order):
        inputs += ["-f", "lavfi", "-i", SOURCES[source].format(fps=FPS, seed=offset + 1)]
        graph += (
            f"[{i}]trim={offset}:{offset + SEGMENT_S},setpts=PTS-STARTPTS,format=yuv420p[s{i}];"
        )
    graph += "".join(f"[s{i}]" for i in range(len(order))) + f"concat=n={len(order)}:v=1[v]"
    path = folder / f"{name}.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *inputs,
         "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def write_segments(path: Path, clips: Sequence[tuple[str, int, Sequence[str]]]) -> Path:
    """The CSV `watch --segments` writes (video names relative to the CSV's folder)."""
    lines = ["source,label,start_s,end_s,first_frame,last_frame,mean_score,frames"]
    for name, _, order in clips:
        for k, label in enumerate(order):
            start, end = k * SEGMENT_S, (k + 1) * SEGMENT_S - 1 / FPS
            lines.append(
                f"{name}.mp4,{label},{start:.3f},{end:.3f},{k * SEGMENT_S * FPS},"
                f"{(k + 1) * SEGMENT_S * FPS - 1},0.9,{SEGMENT_S * FPS}"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class VideoSet:
    """Training clips with their segments CSV, and a clip never trained on.

    ``held_out_label(frame)`` is the truth for a frame index of the held-out clip.
    """

    folder: Path
    segments: Path
    held_out: Path
    held_out_frames: int = len(HELD_OUT[2]) * SEGMENT_S * FPS

    def held_out_label(self, frame: int) -> str:
        return HELD_OUT[2][frame // (SEGMENT_S * FPS)]


@pytest.fixture(scope="session")
def video_set(tmp_path_factory: pytest.TempPathFactory) -> VideoSet:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    folder = tmp_path_factory.mktemp("videos")
    for name, offset, order in TRAINING_CLIPS:
        make_clip(folder, name, offset, order)
    held_out = make_clip(folder, *HELD_OUT)
    return VideoSet(folder, write_segments(folder / "segments.csv", TRAINING_CLIPS), held_out)


# Folder data: three colours the tests' tiny model (tests/conftest.py) also knows.
COLOURS_BGR = {"red": (40, 40, 220), "green": (40, 200, 40), "blue": (220, 60, 40)}


def colour_image(label: str, rng: np.random.Generator) -> np.ndarray:
    """A noisy frame dominated by one colour, with a random darker rectangle."""
    image = np.clip(
        np.array(COLOURS_BGR[label], np.float32) + rng.normal(0, 25, (48, 64, 3)), 0, 255
    ).astype(np.uint8)
    x, y = int(rng.integers(0, 40)), int(rng.integers(0, 30))
    image[y : y + 15, x : x + 20] //= 2
    return image


def write_colour_folders(root: Path, per_label: int, seed: int = 0) -> Path:
    """``root/<colour>/`` with loose images and one sub-folder of "frames of one clip"."""
    rng = np.random.default_rng(seed)
    for label in COLOURS_BGR:
        for i in range(per_label):
            folder = root / label / ("clip" if i % 3 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{label}_{i:03d}.png"), colour_image(label, rng))
    return root


def _run_cli(*argv: str | Path) -> int:
    from streaming.cli import main

    return main([str(a) for a in argv])


@pytest.fixture
def cli() -> Callable[..., int]:
    """``cli("train", ...)``: the ``stream-classify`` front door, in this process."""
    return _run_cli


@pytest.fixture
def colour_folders() -> Callable[..., Path]:
    """``colour_folders(root, per_label, seed=0)``: see :func:`write_colour_folders`."""
    return write_colour_folders
