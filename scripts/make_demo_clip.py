"""Write ``demo/broadcast_sample.mp4`` and its ground truth ``demo/broadcast_sample.cuts.json``.

A 36 s, 640x360, 25 fps clip that cuts between program, black, colour bars and static. The
program segments are pans and zooms over photos *held out* from training (with a scrolling
news ticker, a channel bug and a clock drawn in DejaVu Sans, a font training never uses); the
bars come from ffmpeg's own ``smptehdbars`` / ``pal75bars`` sources, which training never sees.
So the clip is an honest demo, not a replay of the training set.

Needs ffmpeg (libx264) and the training extra (for the bundled photos)::

    python scripts/make_demo_clip.py [--out demo/broadcast_sample.mp4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from default_model_data.photos import load_photos  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 25
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
TICKER = (
    "MARKETS: shares close higher after a quiet session  +++  WEATHER: sunny spells, 21C this "
    "afternoon  +++  SPORT: city win 2-1 in extra time  +++  TRAFFIC: ring road reopened  +++  "
)

# (label, seconds, source): program sources index the held-out photos.
TIMELINE: tuple[tuple[str, float, str], ...] = (
    ("program", 4, "photo0"),
    ("black", 3, "timecode"),
    ("program", 4, "photo1"),
    ("color_bars", 4, "smptehdbars"),
    ("program", 4, "photo2"),
    ("static", 3, "snow"),
    ("program", 4, "photo3"),
    ("black", 3, "logo"),
    ("color_bars", 3, "pal75bars"),
    ("program", 4, "photo1-wide"),
)


@dataclass(frozen=True)
class Segment:
    label: str
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT_BOLD if bold else FONT, size)
    except OSError:
        return ImageFont.load_default()


def _ken_burns(
    photo: np.ndarray, n: int, zoom: tuple[float, float], pan: tuple[float, float]
) -> Iterator[np.ndarray]:
    """Crop a moving, zooming 16:9 window out of ``photo`` for ``n`` frames."""
    ih, iw = photo.shape[:2]
    base_w = min(iw, ih * WIDTH / HEIGHT)
    for i in range(n):
        t = i / max(1, n - 1)
        z = zoom[0] + (zoom[1] - zoom[0]) * t
        cw, ch = base_w / z, base_w / z * HEIGHT / WIDTH
        cx = cw / 2 + (iw - cw) * (pan[0] + (pan[1] - pan[0]) * t)
        cy = ih / 2
        m = np.array(
            [
                [WIDTH / cw, 0, -(cx - cw / 2) * WIDTH / cw],
                [0, HEIGHT / ch, -(cy - ch / 2) * HEIGHT / ch],
            ]
        )
        yield cv2.warpAffine(
            photo, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )


def _news_graphics(frame: np.ndarray, index: int) -> np.ndarray:
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img, "RGBA")
    draw.rectangle((0, HEIGHT - 34, WIDTH, HEIGHT), fill=(10, 30, 90, 235))
    offset = (index * 4) % 1800
    draw.text((110 - offset, HEIGHT - 28), TICKER * 2, font=_font(18), fill="white")
    draw.rectangle((0, HEIGHT - 34, 96, HEIGHT), fill=(200, 20, 30, 255))
    draw.text((12, HEIGHT - 28), "LIVE", font=_font(20, bold=True), fill="white")
    draw.text((WIDTH - 92, 14), "NEWS 24", font=_font(18, bold=True), fill=(255, 255, 255, 170))
    seconds = 10 * 3600 + index // FPS
    draw.text(
        (16, 14),
        f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
        font=_font(16),
        fill="white",
    )
    return np.asarray(img)


def _program(
    source: str, n: int, start: int, photos: tuple[np.ndarray, ...]
) -> Iterator[np.ndarray]:
    index = int(source[5])
    if source.endswith("-wide"):
        frames = _ken_burns(photos[index], n, (1.6, 1.1), (0.8, 0.3))
    else:
        frames = _ken_burns(photos[index], n, (1.0, 1.35), (0.2 + 0.2 * index % 0.6, 0.6))
    for i, frame in enumerate(frames):
        yield _news_graphics(frame, start + i)


def _black(source: str, n: int, start: int) -> Iterator[np.ndarray]:
    for i in range(n):
        img = Image.new("RGB", (WIDTH, HEIGHT), (4, 4, 4) if source == "logo" else (0, 0, 0))
        draw = ImageDraw.Draw(img)
        if source == "logo":
            draw.ellipse((WIDTH - 70, 16, WIDTH - 30, 56), outline=(90, 90, 90), width=3)
            draw.text((WIDTH - 62, 27), "24", font=_font(16, bold=True), fill=(110, 110, 110))
        else:
            f = start + i
            tc = f"10:{f // (FPS * 60) % 60:02d}:{f // FPS % 60:02d}:{f % FPS:02d}"
            draw.text((WIDTH // 2 - 60, HEIGHT - 40), tc, font=_font(18), fill=(200, 200, 200))
        yield np.asarray(img)


def _ffmpeg_source(name: str, n: int) -> Iterator[np.ndarray]:
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-f",
        "lavfi",
        "-i",
        f"{name}=size={WIDTH}x{HEIGHT}:rate={FPS}",
        "-frames:v",
        str(n),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    yield from np.frombuffer(raw, np.uint8).reshape(n, HEIGHT, WIDTH, 3)


def _snow(n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    # 2x2-pixel snow compresses enough to keep the clip small; a hum bar rolls down the picture.
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    for i in range(n):
        noise = rng.integers(0, 256, (HEIGHT // 2, WIDTH // 2), dtype=np.uint8)
        noise = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST).astype(
            np.float32
        )
        band = 1 - 0.35 * np.exp(-(((y - (i * 9) % HEIGHT) / 40) ** 2))
        yield np.repeat(np.clip(noise * band, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def frames(
    photos: tuple[np.ndarray, ...], seed: int = 7
) -> tuple[Iterator[np.ndarray], list[Segment]]:
    segments: list[Segment] = []
    t = 0.0
    for label, seconds, _ in TIMELINE:
        first = round(t * FPS)
        last = round((t + seconds) * FPS) - 1
        segments.append(Segment(label, t, t + seconds, first, last))
        t += seconds

    def generate() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        for (label, _, source), seg in zip(TIMELINE, segments, strict=True):
            n = seg.last_frame - seg.first_frame + 1
            if label == "program":
                yield from _program(source, n, seg.first_frame, photos)
            elif label == "black":
                yield from _black(source, n, seg.first_frame)
            elif label == "color_bars":
                yield from _ffmpeg_source(source, n)
            else:
                yield from _snow(n, rng)

    return generate(), segments


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "demo" / "broadcast_sample.mp4")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    stream, segments = frames(load_photos(holdout=True))
    # x264 with a bitrate cap: the snow segments would otherwise take most of the 2 MB budget.
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{WIDTH}x{HEIGHT}",
        "-r",
        str(FPS),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        "slow",
        "-crf",
        "26",
        "-maxrate",
        "500k",
        "-bufsize",
        "1000k",
        "-g",
        str(FPS * 2),
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(args.out),
    ]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        count = 0
        for frame in stream:
            proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
            count += 1
        proc.stdin.close()
    if proc.returncode:
        raise SystemExit(f"ffmpeg failed with exit code {proc.returncode}")
    cuts = args.out.with_suffix(".cuts.json")
    cuts.write_text(json.dumps([asdict(s) for s in segments], indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {count} frames) and {cuts}")


if __name__ == "__main__":
    main()
