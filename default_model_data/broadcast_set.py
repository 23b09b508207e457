"""The broadcast-like evaluation set: the frames issue 21 found hard, made without the training code.

Nothing here imports ``default_model_data/synth.py`` or uses its photographs, fonts or maths:

* drawing is PIL's (``ImageDraw`` with DejaVu TrueType fonts), never OpenCV's Hershey fonts;
* textures are spectral (FFT-filtered noise with a power law and an orientation band), Voronoi
  cells (scipy) and hill-shaded elevation data (matplotlib's ``jacksboro_fault_dem``), where
  the generator uses spatial blurs, value noise and shapes drawn one by one;
* photographs are only the four held out from training (``photos.HOLDOUT_NAMES``);
* snow is PIL's ``effect_noise``, Laplace, Poisson and uniform draws from numpy's ``PCG64DXSM``;
* compression and scaling are Pillow's libjpeg and resamplers, never ``cv2.imencode``/``resize``.

Every frame is labelled by construction following the written rules of the model card
(``streaming/default_model/MODEL_CARD.md``, "Labelling rules"); :func:`clear_case` then drops
a frame a broadcast engineer would hesitate on (e.g. a "black" frame whose level drifted above
the black rule, or a coloured field in the band between black and program). The set is seeded:
``broadcast_frames()`` returns the same frames every time.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SEED = 2112
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf")
# Source sizes of broadcast and receiver chains (width, height).
SIZES: tuple[tuple[int, int], ...] = ((720, 576), (1280, 720), (640, 360), (1920, 1080), (480, 270))

Rng = np.random.Generator


@dataclass(frozen=True)
class EvalFrame:
    """One full-resolution RGB frame, its label by the card's rules and the kind it stands for."""

    label: str
    kind: str
    image: np.ndarray
    # The frame before it in its stream (the temporal cue's evaluation): snow drawn again under
    # the same graphics, or for every other class the same still picture through a camera
    # (sensor noise, sometimes a shake of a few pixels), degraded the same way.
    previous: np.ndarray | None = None


# --------------------------------------------------------------------------- helpers


def _font(rng: Rng, px: float, mono: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono.ttf" if mono else FONTS[int(rng.integers(len(FONTS)))]
    return _truetype(name, max(6, int(px)))


@cache
def _truetype(name: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), px)


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _spectral(
    rng: Rng, h: int, w: int, beta: float, angle: float | None = None, spread: float = 0.3
) -> np.ndarray:
    """Noise with a 1/f^beta power spectrum, optionally only near one orientation; in [0, 1]."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2)
    if angle is not None:  # keep frequencies whose direction is near `angle` (streaks across it)
        theta = np.arctan2(fy, fx)
        d = np.angle(np.exp(2j * (theta - angle))) / 2
        amp = amp * np.exp(-((d / spread) ** 2))
    amp[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    field = np.fft.irfft2(amp * np.exp(1j * phase), s=(h, w))
    lo, hi = np.percentile(field, [1, 99])
    return np.clip((field - lo) / max(hi - lo, 1e-9), 0, 1).astype(np.float32)


def _ramp(value: np.ndarray, stops: list[tuple[int, int, int]]) -> np.ndarray:
    """Colour a [0, 1] field by linear interpolation through colour stops."""
    xs = np.linspace(0, 1, len(stops))
    out = np.stack([np.interp(value, xs, [c[i] for c in stops]) for i in range(3)], axis=-1).astype(
        np.float32
    )
    return out


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _size(rng: Rng) -> tuple[int, int]:
    return SIZES[int(rng.integers(len(SIZES)))]


# --------------------------------------------------------------------------- program


def _wood(rng: Rng, w: int, h: int) -> np.ndarray:
    along = rng.uniform(0, np.pi)
    grain = _spectral(rng, h, w, rng.uniform(1.5, 2.5), along, rng.uniform(0.05, 0.2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # growth rings: distance to a far centre, wobbled by the grain itself
    cx, cy = rng.uniform(-3, 4) * w, rng.uniform(-3, 4) * h
    rings = 0.5 + 0.5 * np.cos(np.hypot(xx - cx, yy - cy) / rng.uniform(3, 20) + grain * 6)
    value = 0.5 * grain + 0.5 * rings
    dark = (int(rng.integers(50, 100)), int(rng.integers(25, 60)), int(rng.integers(5, 30)))
    light = (int(rng.integers(170, 240)), int(rng.integers(110, 170)), int(rng.integers(50, 110)))
    return _ramp(value, [dark, light])


def _turf(rng: Rng, w: int, h: int) -> np.ndarray:
    blades = _spectral(rng, h, w, rng.uniform(0.6, 1.4), np.pi / 2 + rng.normal(0, 0.1), 0.25)
    value = 0.8 * blades + 0.2 * _spectral(rng, h, w, 2.5)
    img = _ramp(value, [(15, 45, 10), (60, 120, 35), (150, 200, 90)])
    if rng.random() < 0.6:  # mown stripes
        xs = np.arange(w)
        img *= (1 + 0.15 * np.sign(np.cos(np.pi * xs / (w / rng.uniform(4, 10)))))[None, :, None]
    return img


def _gravel(rng: Rng, w: int, h: int) -> np.ndarray:
    """Stones as Voronoi cells (scipy), a few to a few dozen pixels of the model's input each,
    under a soft light: drawn at <= 640 px wide and scaled up by PIL."""
    from scipy.spatial import cKDTree  # type: ignore[import-untyped]

    full_w, full_h = w, h
    w, h = min(w, 640), max(8, int(h * min(w, 640) / w))
    cell = w * rng.uniform(1 / 100, 1 / 30)
    n = int(w * h / cell**2)
    seeds = rng.uniform(0, 1, (n, 2)) * [w, h]
    tree = cKDTree(seeds)
    yy, xx = np.mgrid[0:h, 0:w]
    dist, idx = tree.query(np.stack([xx.ravel(), yy.ravel()], 1), k=2)
    edge = (dist[:, 1] - dist[:, 0]).reshape(h, w)
    shade = rng.uniform(0.3, 1.0, n)[idx[:, 0]].reshape(h, w)
    value = shade * np.clip(edge / (cell * 0.25), 0, 1) ** 0.5
    value = value * (0.6 + 0.4 * _spectral(rng, h, w, 3.0))
    base = np.array([rng.uniform(150, 230), rng.uniform(130, 210), rng.uniform(100, 190)])
    img = _to_uint8(value[..., None] * base[None, None, :])
    return np.asarray(
        Image.fromarray(img).resize((full_w, full_h), Image.Resampling.BICUBIC), np.float32
    )


def _fbm(rng: Rng, w: int, h: int) -> np.ndarray:
    value = _spectral(rng, h, w, rng.uniform(1.4, 2.6))
    palettes = [
        [(40, 30, 25), (120, 100, 80), (220, 210, 190)],  # rock
        [(20, 40, 90), (90, 140, 200), (240, 240, 250)],  # cloud
        [(60, 20, 10), (190, 90, 40), (250, 200, 120)],  # rust
        [(10, 10, 10), (128, 128, 128), (250, 250, 250)],  # grey
    ]
    return _ramp(value, palettes[int(rng.integers(len(palettes)))])


def _hillshade(z: np.ndarray, rng: Rng) -> np.ndarray:
    gy, gx = np.gradient(z)
    az, alt = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(25, 55))
    shade = np.sin(alt) + np.cos(alt) * (gx * np.cos(az) + gy * np.sin(az))
    shade = shade / np.sqrt(1 + gx**2 + gy**2)
    zn = (z - z.min()) / max(float(z.max() - z.min()), 1e-9)
    colour = _ramp(zn, [(50, 90, 40), (170, 150, 100), (240, 235, 225)])
    lo, hi = np.percentile(shade, [1, 99])
    return colour * (0.35 + 0.65 * np.clip((shade - lo) / max(hi - lo, 1e-9), 0, 1))[..., None]


def _render(rng: Rng, w: int, h: int) -> np.ndarray:
    """A detailed 3D render: hill-shaded real elevation data or a spectral terrain."""
    if rng.random() < 0.5:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "jacksboro_fault_dem.npz"
        with np.load(path) as data:
            z = data["elevation"].astype(np.float32)
        k = rng.uniform(0.3, 1.0)
        ch, cw = max(16, int(z.shape[0] * k)), max(16, int(z.shape[1] * k))
        y0, x0 = (
            int(rng.integers(0, z.shape[0] - ch + 1)),
            int(rng.integers(0, z.shape[1] - cw + 1)),
        )
        z = z[y0 : y0 + ch, x0 : x0 + cw]
        z = np.asarray(Image.fromarray(z).resize((w, h), Image.Resampling.BICUBIC))
        return _hillshade(z * rng.uniform(0.5, 3.0), rng)
    z = _spectral(rng, h, w, rng.uniform(2.0, 3.0)) * rng.uniform(80, 400)
    return _hillshade(z + _spectral(rng, h, w, 1.6) * rng.uniform(3, 12), rng)


def _illustration(rng: Rng, w: int, h: int) -> np.ndarray:
    """A busy illustration: hundreds of small outlined shapes and glyphs (PIL)."""
    bg = tuple(int(v) for v in rng.integers(40, 256, 3))
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    size = rng.uniform(0.012, 0.04) * w
    for _ in range(int(w * h / size**2 * rng.uniform(0.5, 1.0))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        s = size * rng.uniform(0.5, 1.6)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(4))
        box = (x, y, x + s, y + s * rng.uniform(0.5, 1.2))
        if kind == 0:
            draw.ellipse(box, fill=fill, outline=(0, 0, 0), width=max(1, int(s / 10)))
        elif kind == 1:
            draw.pieslice(
                box, rng.uniform(0, 360), rng.uniform(0, 360), fill=fill, outline=(0, 0, 0)
            )
        elif kind == 2:
            pts = [
                (x + rng.uniform(-s, s), y + rng.uniform(-s, s))
                for _ in range(int(rng.integers(3, 6)))
            ]
            draw.polygon(pts, fill=fill, outline=(0, 0, 0))
        else:
            draw.text((x, y), chr(int(rng.integers(65, 91))), fill=fill, font=_font(rng, s))
    return np.asarray(im, np.float32)


def _photo_detail(rng: Rng, w: int, h: int, photos: tuple[np.ndarray, ...]) -> np.ndarray:
    """A held-out photo: a tight crop (fine detail filling the frame) or the whole picture shrunk
    and repeated (a video wall of thumbnails)."""
    src = photos[int(rng.integers(len(photos)))]
    ph, pw = src.shape[:2]
    im = Image.fromarray(src)
    if rng.random() < 0.7:
        k = rng.uniform(0.15, 0.6)
        cw, ch = int(pw * k), int(min(ph, pw * k * h / w))
        x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        return np.asarray(
            im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.LANCZOS), np.float32
        )
    tiles = int(rng.integers(3, 7))
    thumb = im.resize((w // tiles, h // tiles), Image.Resampling.LANCZOS)
    wall = Image.new("RGB", (w, h))
    for ty in range(tiles):
        for tx in range(tiles):
            wall.paste(thumb, (tx * (w // tiles), ty * (h // tiles)))
    return np.asarray(wall, np.float32)


def _contrast(rng: Rng, img: np.ndarray) -> np.ndarray:
    """Many contrasts: from a washed-out, low-contrast texture to a punchy one."""
    mean = img.mean(axis=(0, 1), keepdims=True)
    return mean + (img - mean) * rng.uniform(0.35, 1.2) + rng.uniform(-25, 25)


def _warm_field(rng: Rng, w: int, h: int) -> np.ndarray:
    """A flat-ish warm or coloured field whose brightest channel is clearly program (>= 64)."""
    top = rng.uniform(64, 170)
    ratios = [1.0, rng.uniform(0.35, 0.8), rng.uniform(0.05, 0.45)]
    colour = np.array(ratios if rng.random() < 0.65 else list(rng.permutation(ratios))) * top
    im = Image.radial_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
    fall = np.asarray(im, np.float32) / 255.0
    img = colour[None, None, :] * (1 - rng.uniform(0.0, 0.3) * fall[..., None])
    return img + rng.normal(0, rng.uniform(0, 2.5), (h, w, 1))


def _program(rng: Rng, photos: tuple[np.ndarray, ...]) -> list[EvalFrame]:
    makers: list[tuple[str, int, Callable[[Rng, int, int], np.ndarray]]] = [
        ("texture-wood", 12, _wood),
        ("texture-turf", 12, _turf),
        ("texture-gravel", 12, _gravel),
        ("texture-fbm", 12, _fbm),
        ("render", 12, _render),
        ("illustration", 12, _illustration),
        ("photo-detail", 24, lambda r, w, h: _photo_detail(r, w, h, photos)),
        ("warm-field", 12, _warm_field),
    ]
    out = []
    for kind, count, maker in makers:
        for _ in range(count):
            w, h = _size(rng)
            img = maker(rng, w, h)
            if kind != "warm-field":
                img = _contrast(rng, img)
            out.append(EvalFrame("program", kind, _to_uint8(img)))
    for _ in range(12):  # receiver graphics over a picture: still program
        w, h = _size(rng)
        img = _to_uint8(_photo_detail(rng, w, h, photos) if rng.random() < 0.5 else _fbm(rng, w, h))
        out.append(EvalFrame("program", "program+osd", _osd(rng, img)))
    return out


# --------------------------------------------------------------------------- on-screen graphics


def _osd(rng: Rng, img: np.ndarray, small: bool = False) -> np.ndarray:
    """Receiver/VCR graphics drawn crisply (no antialiasing) by PIL: volume bar, counter,
    channel number, menu."""
    im = Image.fromarray(img)
    im.info.clear()
    draw = ImageDraw.Draw(im)
    draw.fontmode = "1"  # hard-edged glyphs, like a receiver's character generator
    h, w = img.shape[:2]
    colour = [(255, 255, 255), (0, 255, 0), (255, 255, 0), (0, 255, 255)][int(rng.integers(4))]
    kinds = ["volume", "counter", "channel"] + ([] if small else ["menu"])
    for kind in rng.choice(kinds, size=int(rng.integers(1, 3)), replace=False):
        px = h * rng.uniform(0.04, 0.08)
        if kind == "volume":
            x0, y0 = w * rng.uniform(0.1, 0.3), h * rng.uniform(0.7, 0.88)
            bw, bh = w * rng.uniform(0.35, 0.6), h * rng.uniform(0.03, 0.05)
            level = rng.uniform(0.05, 1.0)
            draw.rectangle((x0, y0, x0 + bw, y0 + bh), outline=colour, width=2)
            steps = int(rng.integers(12, 30))
            for k in range(int(steps * level)):
                xa = x0 + 3 + k * (bw - 6) / steps
                draw.rectangle((xa, y0 + 3, xa + (bw - 6) / steps * 0.6, y0 + bh - 3), fill=colour)
            draw.text(
                (x0, y0 - px * 1.3), f"VOLUME {int(level * 63)}", fill=colour, font=_font(rng, px)
            )
        elif kind == "counter":
            text = str(
                rng.choice(
                    [
                        f"{int(rng.integers(24)):02d}:{int(rng.integers(60)):02d}:{int(rng.integers(60)):02d}:{int(rng.integers(25)):02d}",
                        f"PLAY  {int(rng.integers(10))}:{int(rng.integers(60)):02d}:{int(rng.integers(60)):02d}",
                        f"REW  -{int(rng.integers(10))}:{int(rng.integers(60)):02d}",
                        "STOP",
                    ]
                )
            )
            draw.text(
                (w * rng.uniform(0.05, 0.55), h * rng.uniform(0.05, 0.85)),
                text,
                fill=colour,
                font=_font(rng, px, mono=True),
            )
        elif kind == "channel":
            text = str(
                rng.choice(
                    [
                        f"P{int(rng.integers(1, 99)):02d}",
                        f"{int(rng.integers(1, 99))}",
                        "AV",
                        "EXT 1",
                    ]
                )
            )
            draw.text(
                (w * rng.uniform(0.05, 0.8), h * rng.uniform(0.05, 0.2)),
                text,
                fill=colour,
                font=_font(rng, px * 2),
            )
        else:
            x0, y0 = w * rng.uniform(0.1, 0.4), h * rng.uniform(0.1, 0.35)
            lines = int(rng.integers(3, 7))
            lh = px * 1.4
            bw = w * rng.uniform(0.3, 0.45)
            if rng.random() < 0.7:
                draw.rectangle(
                    (x0, y0, x0 + bw, y0 + lh * lines + lh / 2),
                    fill=(0, 0, 90) if rng.random() < 0.5 else (30, 30, 30),
                )
            items = ["Picture", "Sound", "Channels", "Timer", "Install", "Language", "Exit"]
            sel = int(rng.integers(lines))
            for k in range(lines):
                y = y0 + lh * k + lh / 4
                if k == sel:
                    draw.rectangle((x0, y, x0 + bw, y + lh), fill=colour)
                draw.text(
                    (x0 + px / 2, y),
                    items[k % len(items)],
                    fill=(0, 0, 0) if k == sel else colour,
                    font=_font(rng, px),
                )
    return np.array(im)


# --------------------------------------------------------------------------- static


def _snow(rng: Rng, w: int, h: int, companion: Rng) -> tuple[np.ndarray, np.ndarray]:
    """Two consecutive frames of snow as an analogue tuner makes it: at standard definition
    (<= 720x576, the bandwidth of the signal), scaled by PIL to the frame size, like the
    receiver's picture it replaces. The second frame has the same kind and level of noise, drawn
    again from ``companion`` (``rng`` is used exactly as for one frame)."""
    full_w, full_h = w, h
    w, h = min(w, int(rng.choice([720, 640, 480]))), min(h, int(rng.choice([576, 480, 360])))
    pair = _snow_sd(rng, w, h, companion)
    if (w, h) == (full_w, full_h):
        return pair
    method = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST][
        int(rng.integers(3))
    ]

    def scaled(img: np.ndarray) -> np.ndarray:
        channels = [
            Image.fromarray(_to_uint8(img[..., c])).resize((full_w, full_h), method)
            for c in range(3)
        ]
        return np.stack([np.asarray(c, np.float32) for c in channels], axis=-1)

    return scaled(pair[0]), scaled(pair[1])


def _snow_sd(rng: Rng, w: int, h: int, companion: Rng) -> tuple[np.ndarray, np.ndarray]:
    kind = int(rng.integers(5))
    mean = rng.uniform(60, 190)
    frames = []
    if kind == 0:  # PIL's own Gaussian noise generator
        sigma = rng.uniform(30, 90)
        for _ in range(2):
            grey = np.asarray(Image.effect_noise((w, h), sigma), np.float32)
            frames.append(np.repeat((grey - 128 + mean)[..., None], 3, axis=2))
    elif kind == 1:
        scale = rng.uniform(20, 50)
        for gen in (rng, companion):
            frames.append(np.repeat(gen.laplace(mean, scale, (h, w, 1)), 3, axis=2))
    elif kind == 2:  # shot noise on a dim field
        lam = rng.uniform(4, 30)
        for gen in (rng, companion):
            frames.append(np.repeat(gen.poisson(lam, (h, w, 1)) * (mean / lam), 3, axis=2))
    elif kind == 3:  # coloured snow
        for gen in (rng, companion):
            frames.append(gen.uniform(mean - 90, mean + 90, (h, w, 3)))
    else:  # coarse snow from a low-resolution tuner, scaled up by PIL
        k = int(rng.integers(2, 5))
        sigma = rng.uniform(40, 80)
        for gen in (rng, companion):
            small = gen.normal(mean, sigma, (h // k, w // k)).clip(0, 255).astype(np.uint8)
            grey = np.asarray(
                Image.fromarray(small).resize((w, h), Image.Resampling.NEAREST), np.float32
            )
            frames.append(np.repeat(grey[..., None], 3, axis=2))
    return frames[0], frames[1]


def _replaying(rng: Rng) -> Rng:
    """A generator that will draw exactly what ``rng`` draws next (to draw the same graphics or
    degradation on a frame's companion)."""
    twin = np.random.Generator(np.random.PCG64DXSM())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def _static(rng: Rng, companion: Rng) -> list[EvalFrame]:
    out = []
    for i in range(100):
        w, h = _size(rng)
        img, previous = (_to_uint8(f) for f in _snow(rng, w, h, companion))
        kind = "snow"
        if i % 10 < 7:  # mostly with the receiver's graphics drawn over it (the same on both)
            twin = _replaying(rng)
            img = np.array(_osd(rng, img))
            previous = np.array(_osd(twin, previous))
            kind = "snow+osd"
        if rng.random() < 0.15:  # a 4:3 tuner picture pillarboxed
            b = w // 8
            img[:, :b] = img[:, w - b :] = 0
            previous[:, :b] = previous[:, w - b :] = 0
            kind += "+pillarbox"
        out.append(EvalFrame("static", kind, img, previous))
    return out


# --------------------------------------------------------------------------- black


def _black_level(rng: Rng, warm: bool) -> np.ndarray:
    level = rng.uniform(0, 18)
    if warm:
        return np.array([1.0, rng.uniform(0.4, 0.9), rng.uniform(0.1, 0.6)]) * rng.uniform(8, 22)
    return np.full(3, level)


def _black(rng: Rng) -> list[EvalFrame]:
    kinds = [
        "pillarbox-uneven",
        "letterbox-uneven",
        "vignette",
        "jpeg-blocking",
        "logo-pillarbox",
        "caption",
        "warm-black",
        "osd",
    ]
    out = []
    for i in range(96):
        kind = kinds[i % len(kinds)]
        w, h = _size(rng)
        img = np.zeros((h, w, 3), np.float32) + _black_level(rng, kind == "warm-black")
        if kind in ("pillarbox-uneven", "logo-pillarbox"):
            b = w // 8 if rng.random() < 0.7 else int(w * rng.uniform(0.05, 0.15))
            img[:, b : w - b] = _black_level(rng, False)
        elif kind == "letterbox-uneven":
            b = int(h * rng.uniform(0.1, 0.15))
            img[b : h - b] = _black_level(rng, False)
        elif kind == "vignette":
            fall = np.asarray(Image.radial_gradient("L").resize((w, h)), np.float32) / 255.0
            img = img * (1 - np.clip(fall, 0, 1)[..., None]) + rng.uniform(0, 10) * (
                1 - fall[..., None]
            )
        img += rng.normal(0, rng.uniform(0, 3), (h, w, 1))
        frame = _to_uint8(img)
        im = Image.fromarray(frame)
        draw = ImageDraw.Draw(im)
        if kind == "jpeg-blocking":
            frame = _jpeg(np.asarray(im), int(rng.integers(2, 12)))
            im = Image.fromarray(frame)
            draw = ImageDraw.Draw(im)
        if kind == "logo-pillarbox" or rng.random() < 0.3:  # a small channel logo
            s = w * rng.uniform(0.04, 0.08)
            x0, y0 = w * rng.choice([0.15, 0.78]), h * rng.choice([0.06, 0.82])
            fill = tuple(int(v) for v in rng.integers(90, 256, 3))
            draw.ellipse((x0, y0, x0 + s, y0 + s * 0.8), outline=fill, width=max(1, int(s / 10)))
            draw.text(
                (x0 + s * 0.2, y0 + s * 0.2),
                "TV" if rng.random() < 0.5 else "7",
                fill=fill,
                font=_font(rng, s * 0.4),
            )
        if kind == "caption":
            text = str(
                rng.choice(
                    ["We'll be right back", "Programmes resume shortly", "NO SIGNAL", "Off air"]
                )
            )
            draw.text(
                (w * rng.uniform(0.1, 0.4), h * rng.uniform(0.4, 0.85)),
                text,
                fill=(200, 200, 200),
                font=_font(rng, h * 0.04),
            )
        frame = np.asarray(im)
        if kind == "osd":
            frame = _osd(rng, np.ascontiguousarray(frame), small=True)
        out.append(EvalFrame("black", kind, np.ascontiguousarray(frame)))
    return out


# --------------------------------------------------------------------------- colour bars


def _bars(rng: Rng) -> list[EvalFrame]:
    out = []
    for i in range(40):
        w, h = _size(rng)
        hi = int(rng.choice([191, 255, 235]))
        im = Image.new("RGB", (w, h))
        draw = ImageDraw.Draw(im)
        order = [(1, 1, 1), (1, 1, 0), (0, 1, 1), (0, 1, 0), (1, 0, 1), (1, 0, 0), (0, 0, 1)]
        top = h * (0.67 if i % 2 else 1.0)
        for k, c in enumerate(order):
            draw.rectangle((k * w / 7, 0, (k + 1) * w / 7, top), fill=tuple(hi * v for v in c))
        if i % 2:  # SMPTE-like bottom rows: reverse blue bars, then PLUGE
            for k, c in enumerate(order[::-1]):
                draw.rectangle(
                    (k * w / 7, top, (k + 1) * w / 7, h * 0.75),
                    fill=tuple(hi * v * (k % 2 == 0) for v in c),
                )
            for k, v in enumerate([(0, 33, 76), (255, 255, 255), (50, 0, 106), (16, 16, 16)]):
                draw.rectangle((k * w / 4, h * 0.75, (k + 1) * w / 4, h), fill=v)
        if rng.random() < 0.4:
            draw.rectangle((w * 0.3, h * 0.4, w * 0.7, h * 0.52), fill=(0, 0, 0))
            draw.text(
                (w * 0.32, h * 0.41),
                "STUDIO 2  LINE UP",
                fill=(255, 255, 255),
                font=_font(rng, h * 0.06),
            )
        out.append(EvalFrame("color_bars", "bars" if i % 2 == 0 else "smpte-like", np.asarray(im)))
    return out


# --------------------------------------------------------------------------- degradations


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def degrade(rng: Rng, img: np.ndarray) -> tuple[str, np.ndarray]:
    """One broadcast-chain degradation by Pillow: none, JPEG, a low-resolution stream, blur."""
    r = rng.random()
    h, w = img.shape[:2]
    if r < 0.3:
        return "raw", img
    if r < 0.6:
        q = int(rng.integers(8, 45))
        return f"jpeg{q}", _jpeg(img, q)
    if r < 0.85:
        k = rng.uniform(2, 6)
        small = Image.fromarray(img).resize(
            (max(32, int(w / k)), max(18, int(h / k))), Image.Resampling.BOX
        )
        small = Image.fromarray(_jpeg(np.asarray(small), int(rng.integers(20, 70))))
        method = [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC][
            int(rng.integers(3))
        ]
        return f"low-res/{k:.1f}", np.asarray(small.resize((w, h), method))
    blurred = Image.fromarray(img).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    return "blur", _jpeg(np.asarray(blurred), int(rng.integers(40, 90)))


# --------------------------------------------------------------------------- the rules


def clear_case(label: str, img: np.ndarray) -> bool:
    """Whether the card's rules label ``img`` without hesitation (else it is left out).

    black: every channel's mean level <= 28/255 and at most 5 % of the pixels brighter than
    60 (a logo, a timecode, a caption). A flat-ish field is program only when its brightest
    channel's mean is >= 56. Snow must fill the frame: its high-pass energy stays high.
    """
    means = img.reshape(-1, 3).mean(axis=0)
    y = _luma(img)
    if label == "black":
        return float(means.max()) <= 28 and float((y > 60).mean()) <= 0.05
    if label == "program":
        return float(means.max()) >= 56
    if label == "static":
        im = Image.fromarray(img).convert("L")
        detail = np.asarray(im, np.float32) - np.asarray(
            im.filter(ImageFilter.GaussianBlur(2)), np.float32
        )
        return float(detail.std()) >= 6
    return True


def _still_camera(rng: Rng, img: np.ndarray) -> np.ndarray:
    """The frame before a still picture's: the same scene with other sensor noise, and in a
    third of the frames a camera shake of 1-4 pixels."""
    out = img.astype(np.float32) + rng.normal(0, rng.uniform(0.5, 2.5), img.shape)
    if rng.random() < 1 / 3:
        dy, dx = (int(v) * int(rng.choice([-1, 1])) for v in rng.integers(0, 5, 2))
        out = np.roll(out, (dy, dx), axis=(0, 1))
    return _to_uint8(out)


def broadcast_frames(seed: int = SEED) -> list[EvalFrame]:
    """The whole set, degraded and checked by the rules; the same list for the same seed.

    Each frame comes with the frame before it in its stream (``previous``), drawn from another
    generator so that the frames themselves are the same with or without it."""
    from default_model_data.photos import load_photos

    rng = np.random.Generator(np.random.PCG64DXSM(seed))
    companion = np.random.Generator(np.random.PCG64DXSM(seed + 1))
    raw = [
        *_program(rng, load_photos(holdout=True)),
        *_black(rng),
        *_bars(rng),
        *_static(rng, companion),
    ]
    out = []
    for frame in raw:
        before = frame.previous
        if before is None:
            before = _still_camera(companion, frame.image)
        twin = _replaying(rng)
        variant, image = degrade(rng, frame.image)
        _, previous = degrade(twin, before)
        if clear_case(frame.label, image):
            out.append(
                EvalFrame(
                    frame.label,
                    f"{frame.kind}/{variant.split('/')[0].rstrip('0123456789')}",
                    image,
                    previous,
                )
            )
    return out
