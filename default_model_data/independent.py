"""Frames made independently of ``default_model_data/synth.py``: ffmpeg test sources, ffmpeg noise and
text rendering (DejaVu via libfreetype), and held-out photos scaled/cropped by ffmpeg.

None of these generators or photos is used in training, so accuracy on them measures
generalisation rather than memorisation of the training generator.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SIZES: tuple[tuple[int, int], ...] = ((640, 360), (720, 576), (1280, 720), (320, 240))


@dataclass(frozen=True)
class Case:
    """One ffmpeg recipe: ``graph`` is a lavfi filter graph with ``{w}``/``{h}`` placeholders."""

    label: str
    family: str
    graph: str
    frames: int = 2


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def ffmpeg_frames(
    graph: str, width: int, height: int, frames: int, image: Path | None = None
) -> np.ndarray:
    """Render ``frames`` RGB frames (one per second of the source) from a lavfi graph."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    if image is None:
        cmd += ["-f", "lavfi", "-i", graph.format(w=width, h=height)]
    else:
        cmd += [
            "-loop",
            "1",
            "-framerate",
            "1",
            "-i",
            str(image),
            "-vf",
            graph.format(w=width, h=height),
        ]
    cmd += [
        "-frames:v",
        str(frames),
        "-s",
        f"{width}x{height}",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def _text(
    text: str,
    size: str = "h/18",
    x: str = "(w-text_w)/2",
    y: str = "h-2*text_h",
    color: str = "white",
) -> str:
    return f"drawtext=fontfile={FONT}:text='{text}':fontsize={size}:x={x}:y={y}:fontcolor={color}"


BARS = (
    "smptebars",
    "smptehdbars",
    "pal75bars",
    "pal100bars",
    "rgbtestsrc",
    "yuvtestsrc",
    "testsrc",
    "testsrc2",
    "colorspectrum",
)

CASES: tuple[Case, ...] = (
    *(Case("color_bars", name, f"{name}=size={{w}}x{{h}}:rate=1") for name in BARS),
    Case("color_bars", "colorchart", "colorchart=rate=1,scale={w}:{h}", 1),
    Case(
        "color_bars",
        "smptebars+ident",
        "smptebars=size={w}x{h}:rate=1,"
        + _text("STATION ID", y="h/3", color="white:box=1:boxcolor=black"),
    ),
    Case(
        "static", "noise-grey-uniform", "color=c=gray:size={w}x{h}:rate=1,noise=alls=100:allf=t+u"
    ),
    Case("static", "noise-black", "color=c=black:size={w}x{h}:rate=1,noise=alls=90:allf=t"),
    Case("static", "noise-white", "color=c=white:size={w}x{h}:rate=1,noise=alls=100:allf=t+u"),
    Case(
        "static",
        "noise-chroma",
        "color=c=0x606060:size={w}x{h}:rate=1,noise=c0s=90:c1s=60:c2s=60:allf=t+u",
    ),
    Case(
        "static",
        "geq-random-luma",
        "nullsrc=size={w}x{h}:rate=1,geq=lum='random(1)*255':cb=128:cr=128",
    ),
    Case(
        "static",
        "geq-random-rgb",
        "nullsrc=size={w}x{h}:rate=1,format=gbrp,geq=r='random(1)*255':g='random(2)*255':b='random(3)*255'",
    ),
    Case(
        "static",
        "geq-blocky",
        "nullsrc=size=160x90:rate=1,geq=lum='random(1)*255':cb=128:cr=128,scale={w}:{h}:flags=neighbor",
    ),
    Case("black", "black", "color=c=black:size={w}x{h}:rate=1"),
    Case(
        "black",
        "black+clock",
        "color=c=black:size={w}x{h}:rate=1,"
        + _text("%{{pts\\:hms}}", x="w-text_w-20", y="h-text_h-20"),
    ),
    Case(
        "black",
        "black+timecode",
        "color=c=0x101010:size={w}x{h}:rate=1,"
        + f"drawtext=fontfile={FONT}:timecode='10\\:00\\:00\\:00':rate=25:fontsize=h/20:x=20:y=20:fontcolor=white",
    ),
    Case(
        "black",
        "black+logo",
        "color=c=0x080808:size={w}x{h}:rate=1,drawbox=x=iw-iw/8:y=ih/16:w=iw/12:h=ih/12:color=white@0.5:t=fill",
    ),
    Case("black", "black+faint-noise", "color=c=black:size={w}x{h}:rate=1,noise=alls=6:allf=t"),
    Case(
        "black",
        "black+no-signal",
        "color=c=0x0c0c0c:size={w}x{h}:rate=1,"
        + _text("NO SIGNAL", size="h/22", y="(h-text_h)/2", color="gray"),
    ),
    Case("program", "mandelbrot", "mandelbrot=size={w}x{h}:rate=1"),
)

# Applied to each held-out photo; "{w}:{h}" is the output size.
PHOTO_GRAPHS: tuple[str, ...] = (
    "scale={w}:{h}",
    "scale=2*{w}:-2,crop={w}:{h}:0:0",
    "scale=2*{w}:-2,crop={w}:{h}:iw-{w}:ih-{h}",
    "scale={w}:{h},eq=brightness=-0.25:saturation=0.6",
    "scale={w}:{h},drawbox=y=ih-ih/9:w=iw:h=ih/9:color=navy@1:t=fill,"
    + _text("BREAKING NEWS  markets close higher", size="h/18", x="10", y="h-h/12"),
    "scale={w}:{h},hue=s=0",
    "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2",
)


def degrade(frame: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The frame as rendered, as a low-quality JPEG (libjpeg via PIL), and downscaled + JPEG."""
    yield "raw", frame
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=30)
    yield "jpeg30", np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    small = np.asarray(
        Image.fromarray(frame).resize(
            (frame.shape[1] // 2, frame.shape[0] // 2), Image.Resampling.BILINEAR
        )
    )
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, "JPEG", quality=60)
    yield "half+jpeg60", np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def to_input(frame: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize a full frame to the model's square input (aspect ratio is not kept)."""
    return cv2.resize(frame, (size, size), interpolation=interpolation)


@dataclass(frozen=True)
class Frame:
    label: str
    family: str
    variant: str
    image: np.ndarray
    # The source's other frame one second later, degraded the same way (the temporal cue's
    # evaluation; the cue compares two frames, in either order): a still source repeats itself,
    # ffmpeg's noise is drawn again. A looped still photo repeats exactly.
    companion: np.ndarray


def independent_frames(
    photos: tuple[np.ndarray, ...], sizes: tuple[tuple[int, int], ...] = SIZES
) -> list[Frame]:
    """Build the whole independent set (needs ffmpeg); a few hundred full-resolution frames."""
    out: list[Frame] = []
    for case in CASES:
        for w, h in sizes:
            rendered = ffmpeg_frames(case.graph, w, h, case.frames + 1)
            for frame, after in zip(rendered[:-1], rendered[1:], strict=True):
                for (variant, image), (_, companion) in zip(
                    degrade(frame), degrade(after), strict=True
                ):
                    out.append(Frame(case.label, case.family, variant, image, companion))
    with tempfile.TemporaryDirectory() as tmp:
        for i, photo in enumerate(photos):
            path = Path(tmp) / f"photo{i}.png"
            Image.fromarray(photo).save(path)
            for j, graph in enumerate(PHOTO_GRAPHS):
                w, h = sizes[(i + j) % len(sizes)]
                for frame in ffmpeg_frames(graph, w, h, 1, image=path):
                    for variant, image in degrade(frame):
                        out.append(Frame("program", f"photo{i}", variant, image, image))
    return out
