"""The embedded broadcast monitor: its contract, and its answers on frames it never trained on.

The frames here are made independently of ``default_model_data/synth.py``: ffmpeg's own test sources and
noise (when ffmpeg is installed, as in CI), numpy noise, PIL-drawn text on black, and frames of
the committed demo clip, whose program segments are photos held out from training.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from streaming.default_model import LABELS_PATH, MODEL_PATH

REPO = Path(__file__).resolve().parents[2]
DEMO_CLIP = REPO / "demo" / "broadcast_sample.mp4"
HAVE_FFMPEG = shutil.which("ffmpeg") is not None
W, H = 640, 360

# At most this many of the independent frames below may be misclassified. One allows for a
# borderline frame after a retrain; a real regression (e.g. a whole family lost) fails the test.
MAX_MISSES = 1

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def model() -> Any:
    # imported here, not at collection: collecting the unit tier must not load TensorFlow
    keras = pytest.importorskip("keras", reason="the server extra (TensorFlow) is not installed")
    return keras.models.load_model(MODEL_PATH, compile=False)


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return LABELS_PATH.read_text().split()


def _input(model: Any, frame: np.ndarray) -> np.ndarray:
    size = model.input_shape[1:3]
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def _ffmpeg(graph: str) -> np.ndarray:
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-f",
        "lavfi",
        "-i",
        graph,
        "-frames:v",
        "1",
        "-s",
        f"{W}x{H}",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True, timeout=20).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W, 3)


def _cv2_bars(levels: tuple[int, int]) -> np.ndarray:
    hi, lo = levels
    colors = [
        (hi, hi, hi),
        (hi, hi, lo),
        (lo, hi, hi),
        (lo, hi, lo),
        (hi, lo, hi),
        (hi, lo, lo),
        (lo, lo, hi),
    ]
    img = np.zeros((H, W, 3), np.uint8)
    for i, c in enumerate(colors):
        cv2.rectangle(img, (i * W // 7, 0), ((i + 1) * W // 7, H), c, -1)
    return img


def _black_with_text(text: str, level: int) -> np.ndarray:
    img = Image.new("RGB", (W, H), (level, level, level))
    font = ImageFont.load_default(size=18)
    ImageDraw.Draw(img).text((W - 160, H - 40), text, font=font, fill=(220, 220, 220))
    return np.asarray(img)


def _demo_frames(indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames: list[np.ndarray] = []
    i, wanted = 0, set(indices)
    while len(frames) < len(indices):
        ok, bgr = cap.read()
        if not ok:
            break
        if i in wanted:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    assert len(frames) == len(indices), "demo clip is shorter than expected"
    return frames


def _cases() -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(1234)
    cases: list[tuple[str, str, np.ndarray]] = []
    if HAVE_FFMPEG:
        for name in (
            "smptebars",
            "smptehdbars",
            "pal75bars",
            "pal100bars",
            "testsrc",
            "testsrc2",
            "rgbtestsrc",
        ):
            cases.append(("color_bars", f"ffmpeg {name}", _ffmpeg(f"{name}=size={W}x{H}")))
        for base in ("gray", "white"):
            graph = f"color=c={base}:size={W}x{H},noise=alls=100:allf=t+u"
            cases.append(("static", f"ffmpeg noise on {base}", _ffmpeg(graph)))
        cases.append(("black", "ffmpeg black", _ffmpeg(f"color=c=black:size={W}x{H}")))
    else:
        cases += [("color_bars", f"cv2 bars {lv}", _cv2_bars(lv)) for lv in ((191, 16), (255, 0))]
    cases += [
        (
            "static",
            "uniform grey",
            np.repeat(rng.integers(0, 256, (H, W, 1), dtype=np.uint8), 3, axis=2),
        ),
        (
            "static",
            "gaussian colour",
            np.clip(rng.normal(128, 60, (H, W, 3)), 0, 255).astype(np.uint8),
        ),
        (
            "static",
            "salt and pepper",
            (rng.random((H, W, 1)) < 0.5).repeat(3, axis=2).astype(np.uint8) * 255,
        ),
        ("black", "black + timecode", _black_with_text("01:23:45:12", 0)),
        ("black", "near black + text", _black_with_text("NO SIGNAL", 10)),
        (
            "black",
            "black + faint noise",
            np.clip(rng.normal(6, 2, (H, W, 3)), 0, 255).astype(np.uint8),
        ),
    ]
    # Demo clip: program = held-out photos with a ticker; take the middle frame of every segment.
    cuts = json.loads(DEMO_CLIP.with_suffix(".cuts.json").read_text())
    middles = [(seg["first_frame"] + seg["last_frame"]) // 2 for seg in cuts]
    for seg, index, frame in zip(cuts, middles, _demo_frames(middles), strict=True):
        cases.append((seg["label"], f"demo frame {index}", frame))
    return cases


@pytest.mark.slow  # the real embedded model, in TensorFlow
def test_contract(model: Any, labels: list[str]) -> None:
    # given the shipped files
    assert labels == ["program", "black", "color_bars", "static"]
    assert MODEL_PATH.stat().st_size < 5_000_000
    # then the model takes square RGB frames and returns one probability per label
    _, h, w, c = model.input_shape
    assert (h, w, c) == (96, 96, 3)
    assert model.output_shape == (None, len(labels))
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    probs = np.asarray(model.predict_on_batch(np.full((2, h, w, 3), 255.0, np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_importing_paths_does_not_import_tensorflow() -> None:
    code = "import sys, streaming.default_model as m; assert m.MODEL_PATH.is_file(); assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=30)


@pytest.mark.slow  # the real embedded model, in TensorFlow
def test_classifies_independent_frames(model: Any, labels: list[str]) -> None:
    # given frames from generators the model never saw
    cases = _cases()
    # when
    probs = np.asarray(model.predict_on_batch(np.stack([_input(model, f) for _, _, f in cases])))
    # then
    misses = [
        f"{name}: expected {label}, got {labels[int(p.argmax())]} ({p.max():.2f})"
        for (label, name, _), p in zip(cases, probs, strict=True)
        if labels[int(p.argmax())] != label
    ]
    assert len(misses) <= MAX_MISSES, "\n".join(misses)
    # every class must be recognised at least once
    predicted = {labels[int(p.argmax())] for p in probs}
    assert predicted == set(labels)
