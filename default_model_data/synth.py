"""Procedural frame generator for the broadcast signal monitor.

Every ``make_<class>`` function draws one full-resolution RGB uint8 frame of that class from a
random family; :func:`finish` then applies broadcast-chain degradations (letterbox, colour
drift, blur, JPEG, scaling with a random interpolation) and returns a model-sized frame.

Nothing here uses ffmpeg or its test sources: those are kept as an independent evaluation set.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from default_model_data.photos import load_photos

CLASSES: tuple[str, ...] = ("program", "black", "color_bars", "static")

Rng = np.random.Generator
Image = np.ndarray

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
_WORDS = [
    "NEWS",
    "LIVE",
    "BREAKING",
    "WEATHER",
    "SPORT",
    "MARKETS",
    "UPDATE",
    "TONIGHT",
    "REPORT",
    "STUDIO",
    "CITY",
    "COUNCIL",
    "VOTE",
    "STORM",
    "WARNING",
    "TRAFFIC",
    "FINAL",
    "SCORE",
    "ELECTION",
    "HEADLINES",
    "WORLD",
    "LOCAL",
    "FORECAST",
    "CH1",
    "HD",
    "TV",
    "ONE",
]


# --------------------------------------------------------------------------- helpers


def frame_size(rng: Rng, max_width: int = 960) -> tuple[int, int]:
    """A random source resolution (height, width) with a broadcast-like aspect ratio."""
    width = int(rng.integers(192, max_width + 1))
    aspect = rng.choice([16 / 9, 16 / 9, 4 / 3, 4 / 3, 1.0, 2.35, 5 / 4])
    return max(96, int(width / aspect)), width


def rand_color(rng: Rng, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def random_text(rng: Rng, words: int | None = None) -> str:
    n = int(words if words is not None else rng.integers(1, 5))
    parts = []
    for _ in range(n):
        if rng.random() < 0.7:
            parts.append(str(rng.choice(_WORDS)))
        else:
            k = int(rng.integers(2, 8))
            parts.append("".join(rng.choice(list(string.ascii_letters + string.digits), size=k)))
    return " ".join(parts)


def timecode(rng: Rng) -> str:
    h, m, s, f = rng.integers(0, 24), rng.integers(0, 60), rng.integers(0, 60), rng.integers(0, 25)
    return f"{h:02d}:{m:02d}:{s:02d}:{f:02d}"


def put_text(
    img: Image,
    text: str,
    org: tuple[int, int],
    height_px: float,
    color: tuple[int, int, int],
    rng: Rng,
) -> None:
    font = int(rng.choice(_FONTS))
    scale = max(0.2, height_px / 22.0)
    thickness = max(1, int(round(height_px / 12 * rng.uniform(0.6, 1.6))))
    cv2.putText(img, text, org, font, scale, color, thickness, cv2.LINE_AA)


def smooth_noise(rng: Rng, h: int, w: int, cells: int, octaves: int = 3) -> np.ndarray:
    """Low-frequency value noise in [0, 1]: clouds, terrain, water (program, not static)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * (2**o)
        grid = rng.random((max(2, c * h // w + 1), c + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def gradient(rng: Rng, h: int, w: int, colors: int | None = None) -> Image:
    n = int(colors or rng.integers(2, 4))
    stops = np.array([rand_color(rng) for _ in range(n)], np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx / w * np.cos(angle) + yy / h * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6) * (n - 1)
    i = np.clip(t.astype(int), 0, n - 2)
    f = (t - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def random_crop(rng: Rng, img: Image, h: int, w: int, min_scale: float = 0.25) -> Image:
    """A random crop with the target aspect, covering ``min_scale``..1 of the shorter side."""
    ih, iw = img.shape[:2]
    target = w / h
    scale = rng.uniform(min_scale, 1.0)
    ch = int(min(ih, iw / target) * scale)
    cw = int(ch * target * rng.uniform(0.85, 1.15))
    ch, cw = max(8, min(ch, ih)), max(8, min(cw, iw))
    y, x = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
    return cv2.resize(img[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)


def photo(rng: Rng, h: int, w: int, holdout: bool = False, min_scale: float = 0.25) -> Image:
    photos = load_photos(holdout)
    img = photos[int(rng.integers(len(photos)))]
    out = random_crop(rng, img, h, w, min_scale)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def draw_logo(img: Image, rng: Rng, max_frac: float = 0.12, alpha: float | None = None) -> None:
    """A small channel bug in a corner (or centre): shape + short text, optionally translucent."""
    h, w = img.shape[:2]
    size = max(6, int(w * rng.uniform(0.03, max_frac)))
    corners = [(0.05, 0.05), (0.95, 0.05), (0.05, 0.95), (0.95, 0.95), (0.5, 0.5)]
    cx, cy = corners[int(rng.integers(len(corners)))]
    x = int(np.clip(cx * w - (size if cx > 0.5 else 0 if cx < 0.5 else size / 2), 0, w - size))
    y = int(np.clip(cy * h - (size if cy > 0.5 else 0 if cy < 0.5 else size / 2), 0, h - size))
    layer = img.copy()
    color = rand_color(rng, 60, 256)
    kind = rng.integers(4)
    if kind == 0:
        cv2.circle(
            layer,
            (x + size // 2, y + size // 2),
            size // 2,
            color,
            -1 if rng.random() < 0.5 else 2,
            cv2.LINE_AA,
        )
    elif kind == 1:
        cv2.rectangle(
            layer, (x, y), (x + size, y + int(size * 0.6)), color, -1 if rng.random() < 0.5 else 2
        )
    elif kind == 2:
        pts = np.array([[x, y + size], [x + size // 2, y], [x + size, y + size]], np.int32)
        cv2.fillPoly(layer, [pts], color, cv2.LINE_AA)
    text_color = rand_color(rng, 120, 256) if kind == 3 or rng.random() < 0.5 else (0, 0, 0)
    put_text(
        layer, random_text(rng, 1)[:4], (x, y + int(size * 0.55)), size * 0.45, text_color, rng
    )
    a = alpha if alpha is not None else rng.uniform(0.35, 1.0)
    cv2.addWeighted(layer, a, img, 1 - a, 0, dst=img)


_OSD_COLOURS = ((255, 255, 255), (60, 255, 60), (255, 255, 60), (60, 230, 255), (255, 160, 40))


def osd(img: Image, rng: Rng, small: bool = False) -> None:
    """Receiver/VCR on-screen graphics drawn crisply: a volume bar, a timecode or counter, a
    channel number, a menu. Over snow the frame stays ``static``; ``small`` keeps to the
    little elements (what a black frame may carry)."""
    h, w = img.shape[:2]
    color = _OSD_COLOURS[int(rng.integers(len(_OSD_COLOURS)))]
    shadow = rng.random() < 0.4
    kinds = ["volume", "counter", "channel"] + ([] if small else ["menu", "menu"])
    for kind in rng.choice(kinds, size=int(rng.integers(1, 3)), replace=False):
        th = h * rng.uniform(0.04, 0.09)
        if kind == "volume":
            x0, y0 = int(w * rng.uniform(0.05, 0.3)), int(h * rng.uniform(0.6, 0.9))
            bw, bh = int(w * rng.uniform(0.3, 0.6)), max(3, int(h * rng.uniform(0.025, 0.06)))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x0, y0), (x0 + bw, y0 + bh), (0, 0, 0), -1)
            n = int(rng.integers(10, 40))
            on = int(rng.integers(1, n + 1))
            seg = bw / n
            for k in range(on):
                xa = int(x0 + k * seg)
                cv2.rectangle(img, (xa, y0), (max(xa, int(xa + seg * 0.7)), y0 + bh), color, -1)
            cv2.rectangle(img, (x0, y0), (x0 + bw, y0 + bh), color, 1)
            label = str(rng.choice(["VOLUME", "VOL", "SOUND", "AUDIO", "BRIGHT"]))
            _osd_text(img, f"{label} {on}", (x0, y0 - int(th * 0.4)), th, color, shadow, rng)
        elif kind == "counter":
            text = str(
                rng.choice(
                    [timecode(rng), f"PLAY {rng.integers(10)}:{rng.integers(60):02d}:{rng.integers(60):02d}",
                     f"SP {rng.integers(10)}:{rng.integers(60):02d}", "REC", "STOP", "PAUSE",
                     f"-{rng.integers(10)}:{rng.integers(60):02d}:{rng.integers(60):02d}"]
                )
            )  # fmt: skip
            org = (int(w * rng.uniform(0.03, 0.6)), int(h * rng.uniform(0.1, 0.95)))
            _osd_text(img, text, org, th, color, shadow, rng)
        elif kind == "channel":
            text = str(
                rng.choice(
                    [
                        f"CH {rng.integers(1, 99):02d}",
                        f"{rng.integers(1, 99)}",
                        "AV1",
                        "AV 2",
                        "TV",
                        "HDMI 1",
                    ]
                )
            )
            org = (int(w * rng.uniform(0.03, 0.8)), int(h * rng.uniform(0.1, 0.3)))
            _osd_text(img, text, org, th * rng.uniform(1, 2.2), color, shadow, rng)
        else:  # a menu: boxed lines, one highlighted
            x0, y0 = int(w * rng.uniform(0.05, 0.4)), int(h * rng.uniform(0.05, 0.4))
            lines = int(rng.integers(3, 8))
            lh = max(8, int(h * rng.uniform(0.05, 0.08)))
            bw = int(w * rng.uniform(0.3, 0.55))
            box = rand_color(rng, 0, 120) if rng.random() < 0.7 else (0, 0, 160)
            if rng.random() < 0.7:  # opaque box; else the text floats over the snow
                cv2.rectangle(img, (x0, y0), (x0 + bw, y0 + lh * lines + lh // 2), box, -1)
            pick = int(rng.integers(lines))
            for k in range(lines):
                y = y0 + lh * (k + 1)
                if k == pick:
                    cv2.rectangle(img, (x0, y - lh + 3), (x0 + bw, y + 3), color, -1)
                words = str(rng.choice(["PICTURE", "SOUND", "SETUP", "TUNING", "CHANNEL", "TIMER",
                                         "LANGUAGE", "SEARCH", "AUTO", "MANUAL", "EXIT", "COLOUR"]))  # fmt: skip
                fg = (0, 0, 0) if k == pick else color
                put_text(img, words, (x0 + 6, y), lh * 0.6, fg, rng)


def _osd_text(
    img: Image, text: str, org: tuple[int, int], height: float, color: tuple[int, int, int],
    shadow: bool, rng: Rng,
) -> None:  # fmt: skip
    font = int(
        rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN])
    )
    scale = max(0.3, height / 22.0)
    thick = max(1, int(round(height / 10)))
    if shadow:
        cv2.putText(img, text, (org[0] + 2, org[1] + 2), font, scale, (0, 0, 0), thick + 1)
    # No anti-aliasing: receiver OSDs are drawn with hard pixel edges.
    cv2.putText(img, text, org, font, scale, color, thick, cv2.LINE_8)


# --------------------------------------------------------------------------- program


def _prog_photo(rng: Rng, h: int, w: int) -> Image:
    img = photo(rng, h, w).astype(np.float32)
    if rng.random() < 0.2:  # black-and-white film
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.2:  # dim scene: darker, but content stays clearly visible
        img *= rng.uniform(0.35, 0.7)
    elif rng.random() < 0.12:  # night scene: crushed blacks, a few lit objects (not dead air)
        grey = img.mean(axis=2)
        img = img - (float(np.percentile(grey, rng.uniform(40, 80))) - rng.uniform(0, 15))
    return np.clip(img, 0, 255).astype(np.uint8)


def _prog_shapes(rng: Rng, h: int, w: int) -> Image:
    img = gradient(rng, h, w)
    for _ in range(int(rng.integers(3, 25))):
        c = rand_color(rng)
        kind = rng.integers(4)
        x, y = int(rng.integers(-w // 8, w)), int(rng.integers(-h // 8, h))
        s = int(rng.integers(max(4, w // 30), w // 3))
        if kind == 0:
            cv2.circle(img, (x, y), s // 2, c, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 1.5))), c, -1)
        elif kind == 2:
            pts = rng.integers(-s, s, size=(int(rng.integers(3, 7)), 2)) + [x, y]
            cv2.fillPoly(img, [pts.astype(np.int32)], c, cv2.LINE_AA)
        else:
            cv2.line(
                img,
                (x, y),
                (int(rng.integers(w)), int(rng.integers(h))),
                c,
                int(rng.integers(1, 8)),
                cv2.LINE_AA,
            )
    return img


def _prog_texture(rng: Rng, h: int, w: int) -> Image:
    from matplotlib import colormaps

    n = smooth_noise(rng, h, w, int(rng.integers(2, 10)), int(rng.integers(1, 4)))
    cmap = str(
        rng.choice(
            [
                "terrain",
                "viridis",
                "ocean",
                "gist_earth",
                "Blues",
                "YlGn",
                "copper",
                "twilight",
                "cubehelix",
                "bone",
            ]
        )
    )
    return (colormaps[cmap](n)[..., :3] * 255).astype(np.uint8)


def _prog_studio(rng: Rng, h: int, w: int) -> Image:
    img = gradient(rng, h, w, 2)
    if rng.random() < 0.5:  # a video wall behind the presenter
        x0, y0 = int(w * rng.uniform(0.45, 0.6)), int(h * rng.uniform(0.08, 0.2))
        x1, y1 = int(w * rng.uniform(0.85, 0.97)), int(h * rng.uniform(0.5, 0.65))
        img[y0:y1, x0:x1] = photo(rng, y1 - y0, x1 - x0)
    desk_y = int(h * rng.uniform(0.6, 0.75))
    cv2.fillPoly(
        img,
        [np.array([[0, h], [w // 8, desk_y], [7 * w // 8, desk_y], [w, h]], np.int32)],
        rand_color(rng, 20, 200),
    )
    cx = int(w * rng.uniform(0.25, 0.5))
    skin = (int(rng.integers(120, 240)), int(rng.integers(80, 190)), int(rng.integers(60, 160)))
    cv2.ellipse(
        img,
        (cx, desk_y),
        (int(w * 0.12), int(h * 0.22)),
        0,
        180,
        360,
        rand_color(rng, 0, 160),
        -1,
        cv2.LINE_AA,
    )
    cv2.ellipse(
        img,
        (cx, int(desk_y - h * 0.3)),
        (int(w * 0.045), int(h * 0.085)),
        0,
        0,
        360,
        skin,
        -1,
        cv2.LINE_AA,
    )
    if rng.random() < 0.8:
        _lower_third(img, rng)
    return img


def _lower_third(img: Image, rng: Rng) -> None:
    h, w = img.shape[:2]
    y0 = int(h * rng.uniform(0.72, 0.86))
    bh = int(h * rng.uniform(0.07, 0.14))
    x1 = int(w * rng.uniform(0.5, 1.0))
    cv2.rectangle(img, (int(w * 0.04), y0), (x1, y0 + bh), rand_color(rng), -1)
    put_text(
        img,
        random_text(rng),
        (int(w * 0.06), y0 + int(bh * 0.72)),
        bh * 0.55,
        rand_color(rng, 150, 256),
        rng,
    )


def _ticker(img: Image, rng: Rng) -> None:
    h, w = img.shape[:2]
    bh = int(h * rng.uniform(0.06, 0.1))
    cv2.rectangle(img, (0, h - bh), (w, h), rand_color(rng, 0, 200), -1)
    x = int(-rng.integers(0, w // 2))
    put_text(
        img, random_text(rng, 8), (x, h - int(bh * 0.25)), bh * 0.6, rand_color(rng, 150, 256), rng
    )


def _prog_slide(rng: Rng, h: int, w: int) -> Image:
    img = (
        gradient(rng, h, w, 2)
        if rng.random() < 0.6
        else np.full((h, w, 3), rand_color(rng, 30, 256), np.uint8)
    )
    fg = rand_color(rng)
    lines = int(rng.integers(2, 8))
    for i in range(lines):
        y = int(h * (0.15 + 0.75 * i / lines))
        put_text(
            img,
            random_text(rng, int(rng.integers(1, 6))),
            (int(w * rng.uniform(0.03, 0.2)), y),
            h / lines * rng.uniform(0.3, 0.6),
            fg,
            rng,
        )
    if rng.random() < 0.5:  # a chart or picture block beside the text
        x0, y0 = int(w * 0.55), int(h * 0.2)
        x1, y1 = int(w * 0.95), int(h * 0.8)
        if rng.random() < 0.5:
            img[y0:y1, x0:x1] = photo(rng, y1 - y0, x1 - x0)
        else:
            n = int(rng.integers(3, 9))
            bw = (x1 - x0) // n
            for k in range(n):
                top = int(y1 - (y1 - y0) * rng.uniform(0.1, 1.0))
                cv2.rectangle(
                    img, (x0 + k * bw, top), (x0 + (k + 1) * bw - 3, y1), rand_color(rng), -1
                )
    return img


def _prog_collage(rng: Rng, h: int, w: int) -> Image:
    img = photo(rng, h, w) if rng.random() < 0.5 else gradient(rng, h, w)
    for _ in range(int(rng.integers(1, 5))):
        pw, ph = int(w * rng.uniform(0.25, 0.55)), int(h * rng.uniform(0.25, 0.55))
        x, y = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
        img[y : y + ph, x : x + pw] = photo(rng, ph, pw)
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + pw, y + ph), rand_color(rng), int(rng.integers(1, 5)))
    return img


def _prog_field(rng: Rng, h: int, w: int) -> Image:
    base = np.array([rng.integers(20, 80), rng.integers(90, 170), rng.integers(20, 80)], np.float32)
    stripes = (np.arange(w) // max(4, w // int(rng.integers(6, 14))) % 2)[
        None, :, None
    ] * rng.uniform(5, 25)
    img = np.clip(base + stripes + np.zeros((h, w, 3), np.float32), 0, 255).astype(np.uint8)
    cv2.line(img, (w // 2, 0), (w // 2, h), (235, 235, 235), max(1, w // 200))
    cv2.circle(img, (w // 2, h // 2), h // 5, (235, 235, 235), max(1, w // 200), cv2.LINE_AA)
    for _team in range(2):
        c = rand_color(rng)
        for _ in range(int(rng.integers(3, 11))):
            x, y = int(rng.integers(w)), int(rng.integers(h))
            cv2.ellipse(img, (x, y), (max(2, w // 90), max(4, h // 25)), 0, 0, 360, c, -1)
    if rng.random() < 0.7:  # score bug
        cv2.rectangle(img, (10, 10), (10 + w // 4, 10 + h // 12), (20, 20, 40), -1)
        put_text(
            img,
            f"ABC {rng.integers(10)} - {rng.integers(10)} XYZ",
            (14, 10 + h // 14),
            h / 22,
            (255, 255, 255),
            rng,
        )
    return img


def _prog_cartoon(rng: Rng, h: int, w: int) -> Image:
    img = np.full((h, w, 3), rand_color(rng, 80, 256), np.uint8)
    img[int(h * rng.uniform(0.5, 0.8)) :] = rand_color(rng, 30, 200)  # ground
    for _ in range(int(rng.integers(3, 12))):
        c = rand_color(rng)
        x, y = int(rng.integers(w)), int(rng.integers(h))
        ax, ay = int(rng.integers(w // 30, w // 6)), int(rng.integers(h // 30, h // 4))
        cv2.ellipse(img, (x, y), (ax, ay), float(rng.uniform(0, 180)), 0, 360, c, -1, cv2.LINE_AA)
        cv2.ellipse(img, (x, y), (ax, ay), 0, 0, 360, (0, 0, 0), max(1, w // 250), cv2.LINE_AA)
    return img


def _prog_flat(rng: Rng, h: int, w: int) -> Image:
    """Flat or nearly flat fields (fades to white, colour cards, sky) with at most light grain."""
    # Neutral white/grey cards are the ones most easily mistaken for faint snow.
    level = rng.uniform(30, 256)
    color = [level] * 3 if rng.random() < 0.5 else list(rand_color(rng, 30, 256))
    img = np.full((h, w, 3), color, np.float32)
    if rng.random() < 0.5:
        img = img * 0.7 + gradient(rng, h, w, 2).astype(np.float32) * 0.3
    img += rng.normal(0, rng.uniform(0, 2.5), (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _prog_warm_field(rng: Rng, h: int, w: int) -> Image:
    """Warm or coloured flat-ish fields (a dim brown wall, a dark red curtain, a teal sky):
    ``program`` once the brightest channel reaches ~48/255 (the black/program rule in the card)."""
    top = rng.uniform(56, 150)
    hue = rng.random()
    if hue < 0.6:  # warm: red >= green >= blue
        color = np.array([1.0, rng.uniform(0.45, 0.85), rng.uniform(0.1, 0.5)]) * top
    else:
        color = rng.permutation(np.array([1.0, rng.uniform(0.1, 0.9), rng.uniform(0.0, 0.6)])) * top
    img = np.zeros((h, w, 3), np.float32) + color.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:  # gentle light fall-off or vignette
        r = np.hypot((xx - w * rng.uniform(0.3, 0.7)) / w, (yy - h * rng.uniform(0.3, 0.7)) / h)
        img *= (1 - rng.uniform(0.1, 0.4) * np.clip(r / 0.7, 0, 1) ** 2)[..., None]
    if rng.random() < 0.5:
        img *= 1 + smooth_noise(rng, h, w, int(rng.integers(2, 6)), 2)[..., None] * 0.15
    img += rng.normal(0, rng.uniform(0, 3), (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _fibres(rng: Rng, h: int, w: int, along: float, across: float) -> np.ndarray:
    """Noise stretched along x (``along`` px) and tight across it, rotated: grain, blades, brushing."""
    white = rng.standard_normal((h, w)).astype(np.float32)
    n: np.ndarray = cv2.GaussianBlur(white, (0, 0), sigmaX=along, sigmaY=across)
    n /= max(float(n.std()), 1e-6)
    angle = float(rng.uniform(-90, 90))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(n, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def _palette(rng: Rng, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Dark and light colour of a natural material."""
    bases = {
        "wood": ((70, 35, 12), (200, 140, 80)),
        "turf": ((20, 60, 10), (120, 190, 70)),
        "stone": ((60, 55, 50), (200, 190, 175)),
        "sand": ((120, 95, 60), (235, 210, 160)),
    }
    dark, light = (np.array(c, np.float32) for c in bases[kind])
    jitter = rng.uniform(0.75, 1.2, size=3).astype(np.float32)
    return dark * jitter, light * jitter


def _shade(rng: Rng, value: np.ndarray, dark: np.ndarray, light: np.ndarray) -> Image:
    """Map a [0, 1] field to a colour ramp at a random contrast."""
    v = np.clip(value, 0, 1)
    contrast = rng.uniform(0.25, 1.0)
    v = 0.5 + (v - 0.5) * contrast
    return dark + (light - dark) * v[..., None]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - float(x.min())
    return x / max(float(x.max()), 1e-6)


def _tex_wood(rng: Rng, h: int, w: int) -> Image:
    period = rng.uniform(3, 25)
    fibres = _fibres(rng, h, w, rng.uniform(8, 40), rng.uniform(0.4, 1.2))
    warp = smooth_noise(rng, h, w, int(rng.integers(2, 6)), 2) * rng.uniform(2, 8)
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (yy / period + warp))
    if rng.random() < 0.5:  # planks: strips with their own offset and dark joints
        plank = int(rng.integers(max(8, h // 12), max(9, h // 3)))
        rows = (np.arange(h) // plank)[:, None]
        rings = 0.5 + 0.5 * np.sin(2 * np.pi * (yy / period + warp + rows * 0.37))
        rings[(np.arange(h) % plank) < max(1, plank // 20)] = 0
    value = 0.55 * rings + 0.45 * _normalise(fibres)
    dark, light = _palette(rng, str(rng.choice(["wood", "wood", "sand"])))
    img = _shade(rng, value, dark, light)
    if rng.random() < 0.5:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-90, 90)), 1.3)
        img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return img


def _tex_turf(rng: Rng, h: int, w: int) -> Image:
    dark, light = _palette(rng, "turf")
    if rng.random() < 0.5:
        n = rng.standard_normal((h, w)).astype(np.float32)
        value = _normalise(
            cv2.GaussianBlur(n, (0, 0), sigmaX=rng.uniform(0.4, 1.0), sigmaY=rng.uniform(1.5, 6))
        )
        img = _shade(rng, value, dark, light)
    else:  # blades drawn one by one
        img = np.zeros((h, w, 3), np.float32) + dark
        count = int(h * w / rng.uniform(8, 40))
        xs, ys = rng.integers(0, w, count), rng.integers(0, h, count)
        length = rng.uniform(3, 15)
        ang = rng.normal(np.pi / 2, 0.35, count)
        shades = rng.uniform(0, 1, count)
        for x, y, a, s in zip(xs, ys, ang, shades, strict=True):
            c = tuple(float(v) for v in dark + (light - dark) * s)
            x2, y2 = int(x + length * np.cos(a)), int(y - length * np.sin(a))
            cv2.line(img, (int(x), int(y)), (x2, y2), c, 1, cv2.LINE_AA)
    if rng.random() < 0.6:  # mowing stripes
        stripe = rng.uniform(w / 12, w / 4)
        xx = np.arange(w, dtype=np.float32)
        img *= (1 + rng.uniform(0.08, 0.25) * np.sign(np.sin(np.pi * xx / stripe)))[None, :, None]
    return img


def _tex_gravel(rng: Rng, h: int, w: int) -> Image:
    dark, light = _palette(rng, str(rng.choice(["stone", "sand", "stone"])))
    img = np.zeros((h, w, 3), np.float32) + dark * rng.uniform(0.6, 1.0)
    size = rng.uniform(2, 14) * w / 384
    count = min(3000, int(h * w / (size * size) * rng.uniform(0.8, 1.6)))
    xs, ys = rng.integers(0, w, count), rng.integers(0, h, count)
    for x, y in zip(xs, ys, strict=True):
        a, b = size * rng.uniform(0.5, 1.0), size * rng.uniform(0.3, 0.8)
        c = dark + (light - dark) * rng.uniform(0, 1)
        cv2.ellipse(
            img,
            (int(x), int(y)),
            (max(1, int(a)), max(1, int(b))),
            float(rng.uniform(0, 180)),
            0,
            360,
            tuple(float(v) for v in c),
            -1,
            cv2.LINE_AA,
        )
        if size > 5 and rng.random() < 0.5:  # highlight on the pebble
            cv2.circle(
                img,
                (int(x - a / 3), int(y - b / 3)),
                max(1, int(b / 3)),
                tuple(float(v) for v in np.minimum(c * 1.3, 255)),
                -1,
                cv2.LINE_AA,
            )
    return img


def _tex_fractal(rng: Rng, h: int, w: int) -> Image:
    """fBm down to a few pixels: rock, marble, clouds with fine detail, hill-shaded terrain."""
    from matplotlib import colormaps

    n = smooth_noise(rng, h, w, int(rng.integers(3, 12)), int(rng.integers(4, 7)))
    mode = rng.integers(3)
    if mode == 0:  # marble veins
        xx = np.mgrid[0:h, 0:w][1].astype(np.float32)
        n = 0.5 + 0.5 * np.sin(2 * np.pi * (xx / w * rng.uniform(2, 10) + n * rng.uniform(3, 10)))
    elif mode == 1:  # a rendered terrain: lambert shading of the height field
        gy, gx = np.gradient(n * rng.uniform(40, 200))
        az = rng.uniform(0, 2 * np.pi)
        shade = (np.cos(az) * gx + np.sin(az) * gy + 1) / np.sqrt(gx**2 + gy**2 + 1)
        n = _normalise(shade)
    cmap = str(
        rng.choice(["gist_earth", "copper", "bone", "pink", "terrain", "YlOrBr", "BrBG", "gray"])
    )
    return (colormaps[cmap](np.clip(n, 0, 1))[..., :3] * 255).astype(np.float32)


def _tex_lines(rng: Rng, h: int, w: int) -> Image:
    """Man-made fine patterns: hatching, fabric weave, corduroy, halftone, window grids."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(2.5, 14)
    a = rng.uniform(0, np.pi)
    u = xx * np.cos(a) + yy * np.sin(a)
    v = -xx * np.sin(a) + yy * np.cos(a)
    kind = rng.integers(4)
    if kind == 0:
        value = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * u / period))
    elif kind == 1:
        value = 0.5 + 0.25 * (
            np.sin(2 * np.pi * u / period) + np.sin(2 * np.pi * v / period * rng.uniform(0.7, 1.4))
        )
    elif kind == 2:
        value = (
            (np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))
            > rng.uniform(-0.5, 0.5)
        ).astype(np.float32)
    else:  # lit windows on a dark facade
        cell = max(3, int(period))
        lit = rng.random((h // cell + 1, w // cell + 1)) < rng.uniform(0.2, 0.8)
        value = lit[(yy // cell).astype(int), (xx // cell).astype(int)].astype(np.float32)
        value *= ((yy % cell) > cell * 0.3) & ((xx % cell) > cell * 0.3)
    value = value + rng.normal(0, 0.05, (h, w)).astype(np.float32)
    value *= 0.7 + 0.3 * smooth_noise(rng, h, w, 3, 2)
    c1, c2 = np.array(rand_color(rng), np.float32), np.array(rand_color(rng), np.float32)
    return _shade(rng, _normalise(value), c1, c2)


def _tex_busy(rng: Rng, h: int, w: int) -> Image:
    """A busy illustration or a detailed render: many small outlined shapes or shaded spheres."""
    img = gradient(rng, h, w).astype(np.float32)
    size = rng.uniform(3, 18) * w / 384
    count = min(2500, int(h * w / (size * size) * rng.uniform(0.4, 1.2)))
    spheres = rng.random() < 0.4
    outline = max(1, int(size / 8))
    for _ in range(count):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = max(2, int(size * rng.uniform(0.5, 1.5)))
        c = np.array(rand_color(rng), np.float32)
        if spheres:
            for k in range(3):  # darker rim, body, highlight
                f = (0.5, 1.0, 1.5)[k]
                r = max(1, int(s * (1.0, 0.8, 0.3)[k] / 2))
                off = int(s * (0, 0.08, 0.2)[k])
                cv2.circle(
                    img,
                    (x - off, y - off),
                    r,
                    tuple(float(v) for v in np.minimum(c * f, 255)),
                    -1,
                    cv2.LINE_AA,
                )
        else:
            kind = rng.integers(3)
            col = tuple(float(v) for v in c)
            if kind == 0:
                cv2.circle(img, (x, y), s // 2, col, -1, cv2.LINE_AA)
                cv2.circle(img, (x, y), s // 2, (0, 0, 0), outline, cv2.LINE_AA)
            elif kind == 1:
                cv2.rectangle(img, (x, y), (x + s, y + s // 2 + 1), col, -1)
                cv2.rectangle(img, (x, y), (x + s, y + s // 2 + 1), (0, 0, 0), outline)
            else:
                pts = (rng.integers(-s, s, (3, 2)) + [x, y]).astype(np.int32)
                cv2.fillPoly(img, [pts], col, cv2.LINE_AA)
                cv2.polylines(img, [pts], True, (0, 0, 0), outline, cv2.LINE_AA)
    return img


def _tex_photo(rng: Rng, h: int, w: int) -> Image:
    """A training photo shrunk and tiled: its texture at a finer scale than any crop gives."""
    src = photo(rng, int(rng.integers(48, 200)), int(rng.integers(48, 200)), min_scale=0.1)
    k = rng.uniform(1.5, 6)
    tile = cv2.resize(
        src,
        (max(8, int(src.shape[1] / k * w / 384)), max(8, int(src.shape[0] / k * w / 384))),
        interpolation=cv2.INTER_AREA,
    )
    reps = (h // tile.shape[0] + 1, w // tile.shape[1] + 1, 1)
    return np.tile(tile, reps)[:h, :w].astype(np.float32)


def _tex_cells(rng: Rng, h: int, w: int) -> Image:
    """Packed cells: gravel, pebbles, cobbles, dry mud, scales; sharp pieces with shading and gaps.

    Each pixel takes the colour of its nearest seed (OpenCV's labelled distance transform), the
    borders between pieces become dark gaps, and every piece is shaded towards its rim."""
    cell = rng.uniform(1.8, 10) * w / 96  # piece size: 2-10 pixels of the model's input
    seeds_h, seeds_w = max(2, int(h / cell)), max(2, int(w / cell))
    gy, gx = np.mgrid[0:seeds_h, 0:seeds_w].astype(np.float32)
    jitter = rng.uniform(0.35, 0.5)
    ys = ((gy + 0.5 + rng.uniform(-jitter, jitter, gy.shape)) * h / seeds_h).astype(int)
    xs = ((gx + 0.5 + rng.uniform(-jitter, jitter, gx.shape)) * w / seeds_w).astype(int)
    seed_map = np.full((h, w), 255, np.uint8)
    seed_map[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)] = 0
    _, labels = cv2.distanceTransformWithLabels(
        seed_map, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    n = int(labels.max()) + 1
    # Random bright colours per piece only for big pieces: small ones would be blocky snow.
    kinds = ["stone", "sand", "stone"] + (["mixed", "bright"] if cell > 4 * w / 96 else [])
    kind = str(rng.choice(kinds))
    if kind == "mixed":  # multicoloured pebbles / terrazzo
        tones = rng.uniform(40, 230, (n, 3)).astype(np.float32)
        tones = tones * 0.5 + tones.mean(axis=1, keepdims=True) * 0.5
    elif kind == "bright":  # mosaic tiles, candy, scales
        tones = rng.uniform(20, 255, (n, 3)).astype(np.float32)
    else:
        dark, light = _palette(rng, kind)
        tones = dark + (light - dark) * rng.uniform(0, 1, (n, 1)).astype(np.float32)
    img = tones[labels]
    # Borders: where a neighbour belongs to another piece; widened into gaps of a dark grout.
    edge: np.ndarray = np.zeros((h, w), np.uint8)
    edge[:, 1:] |= (labels[:, 1:] != labels[:, :-1]).astype(np.uint8)
    edge[1:] |= (labels[1:] != labels[:-1]).astype(np.uint8)
    gap = int(rng.integers(0, 3)) if cell > 6 else 0
    if gap:
        edge = cv2.dilate(edge, np.ones((gap + 1, gap + 1), np.uint8))
    inside = cv2.distanceTransform((1 - edge).astype(np.uint8), cv2.DIST_L2, 3)
    rim = np.clip(inside / max(1.0, cell * rng.uniform(0.15, 0.4)), 0, 1)
    img = img * (rng.uniform(0.45, 0.8) + rng.uniform(0.2, 0.55) * rim)[..., None]
    if rng.random() < 0.6:  # a highlight towards the light: an offset copy of the rim shading
        dx, dy = int(rng.integers(-2, 3)), int(rng.integers(-2, 3))
        lit = np.roll(rim, (dy, dx), axis=(0, 1))
        img += (rng.uniform(10, 50) * np.clip(lit - rim, 0, 1))[..., None]
    grout = np.array(rand_color(rng, 0, 90), np.float32) * rng.uniform(0.2, 1.0)
    img[edge > 0] = img[edge > 0] * rng.uniform(0.0, 0.5) + grout * rng.uniform(0.5, 1.0)
    if rng.random() < 0.5:  # speckled stone surface
        img += rng.normal(0, rng.uniform(2, 10), (h, w, 1)).astype(np.float32)
    return img


def _tiny_figure(img: np.ndarray, x: int, y: int, s: int, col: tuple[float, ...]) -> None:
    """A crowd member: head and shoulders, a few pixels tall."""
    cv2.circle(img, (x, y - s), max(1, s // 2), col, -1, cv2.LINE_AA)
    cv2.ellipse(img, (x, y + s // 2), (max(1, s // 2 + 1), s), 0, 180, 360, col, -1, cv2.LINE_AA)


def _tex_confetti(rng: Rng, h: int, w: int) -> Image:
    """Dense small shapes: confetti, sprinkles, leaves, flowers, a crowd of tiny figures.

    Pieces are 1-3 pixels of the model's input (many) or larger (fewer), on a plain, graded or
    textured ground, with or without an illustrator's outline."""
    ground = rng.random()
    if ground < 0.4:
        img = gradient(rng, h, w).astype(np.float32)
    elif ground < 0.7:
        img = np.zeros((h, w, 3), np.float32) + np.array(rand_color(rng), np.float32)
    else:
        img = _shade(
            rng,
            smooth_noise(rng, h, w, int(rng.integers(2, 8)), 3),
            np.array(rand_color(rng), np.float32),
            np.array(rand_color(rng), np.float32),
        )
    px = w / 96  # one pixel of the model's input
    size = px * (rng.uniform(1.5, 3) if rng.random() < 0.6 else rng.uniform(3, 8))
    kind = str(rng.choice(["confetti", "sprinkles", "leaves", "crowd", "mixed"]))
    palette = [rand_color(rng) for _ in range(int(rng.integers(2, 9)))]
    count = min(4000, int(h * w / (size * size) * rng.uniform(0.3, 1.1)))
    outline = rng.random() < 0.35
    ink = (0.0, 0.0, 0.0) if rng.random() < 0.7 else tuple(float(v) for v in rand_color(rng))
    xs, ys = rng.integers(0, w, count), rng.integers(0, h, count)
    sizes = np.maximum(1.0, size * rng.uniform(0.5, 1.5, count))
    angles = rng.uniform(0, np.pi, count)
    picks = rng.integers(0, len(palette), count)
    for i in range(count):
        x, y, s, a = int(xs[i]), int(ys[i]), float(sizes[i]), float(angles[i])
        col = tuple(float(v) for v in palette[int(picks[i])])
        k = kind if kind != "mixed" else ("confetti", "sprinkles", "leaves")[i % 3]
        if k == "confetti":
            r = max(1, int(s / 2))
            if i % 2:
                cv2.circle(img, (x, y), r, col, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(img, (x - r, y - r), (x + r, y + r // 2), col, -1)
        elif k == "sprinkles":
            dx, dy = int(s * np.cos(a)), int(s * np.sin(a))
            cv2.line(img, (x - dx, y - dy), (x + dx, y + dy), col, max(1, int(s / 3)), cv2.LINE_AA)
        elif k == "leaves":
            axes = (max(1, int(s)), max(1, int(s * 0.45)))
            cv2.ellipse(img, (x, y), axes, np.degrees(a), 0, 360, col, -1, cv2.LINE_AA)
        else:
            _tiny_figure(img, x, y, max(1, int(s / 2)), col)
        if outline and s >= 2 * px:
            cv2.circle(img, (x, y), max(1, int(s / 2)), ink, 1, cv2.LINE_AA)
    return img


def _prog_pale_field(rng: Rng, h: int, w: int) -> Image:
    """A pale, almost flat field: white or grey sky, an overexposed wall, a lit backdrop.

    A smooth gradient with faint clouds or blotches, maybe a thin horizon or an object at an
    edge, and the faint fine grain and compression a camera adds (still ``program``)."""
    top = rng.uniform(140, 250)
    tint = rng.uniform(-12, 12, size=3)
    if rng.random() < 0.3:  # a pale blue or warm sky
        tint += np.array([-1, 0, 1] if rng.random() < 0.6 else [1, 0, -1]) * rng.uniform(5, 30)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    slope = (xx / w * np.cos(a) + yy / h * np.sin(a)) * rng.uniform(-40, 40)
    clouds = smooth_noise(rng, h, w, int(rng.integers(2, 6)), 3) * rng.uniform(0, 25)
    img = (top + slope + clouds)[..., None] + tint.astype(np.float32)
    r = rng.random()
    if r < 0.35:  # something at an edge: a roof line, a mast, a tree, a horizon
        dark = np.array(rand_color(rng, 20, 140), np.float32)
        if rng.random() < 0.5:
            y0 = int(h * rng.uniform(0.8, 0.97))
            ridge = (y0 + smooth_noise(rng, 1, w, 6, 2)[0] * h * 0.08).astype(int)
            img[yy.astype(int) >= ridge[None, :]] = dark
        else:
            x0 = int(w * rng.uniform(0.0, 0.12))
            x1 = x0 + max(2, int(w * rng.uniform(0.01, 0.06)))
            y0 = int(h * rng.uniform(0.2, 0.7))
            img[y0:, x0:x1] = dark
    elif r < 0.5:  # a thin cable or contrail across the sky
        y0, y1 = int(rng.uniform(0, h)), int(rng.uniform(0, h))
        c = tuple(float(v) for v in rand_color(rng, 40, 200))
        cv2.line(img, (0, y0), (w, y1), c, max(1, w // 400), cv2.LINE_AA)
    img += rng.normal(0, rng.uniform(0.3, 2.5), (h, w, 1 if rng.random() < 0.7 else 3))
    out = np.clip(img, 0, 255).astype(np.uint8)
    return jpeg(out, int(rng.integers(30, 90))) if rng.random() < 0.6 else out


_TEXTURES: Sequence[tuple[float, Callable[[Rng, int, int], Image]]] = (
    (0.12, _tex_wood),
    (0.12, _tex_turf),
    (0.1, _tex_gravel),
    (0.16, _tex_cells),
    (0.12, _tex_fractal),
    (0.1, _tex_lines),
    (0.08, _tex_busy),
    (0.12, _tex_confetti),
    (0.08, _tex_photo),
)


def _prog_fine_texture(rng: Rng, h: int, w: int) -> Image:
    """Fine natural or structured texture filling most of the frame: ``program``, never snow.

    Drawn at <= 384 px wide (fine enough once squashed to the model's input) and scaled up."""
    maker = _pick(rng, _TEXTURES)
    # Shape-by-shape textures are drawn smaller (they cost per shape); the rest at <= 384 px.
    k = max(1.0, w / (224 if maker in (_tex_gravel, _tex_busy, _tex_confetti) else 384))
    hh, ww = max(32, int(h / k)), max(32, int(w / k))
    img = maker(rng, hh, ww)
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    if rng.random() < 0.6:  # light fall-off, as in any real shot
        r = np.hypot(xx / ww - rng.uniform(0.2, 0.8), yy / hh - rng.uniform(0.2, 0.8))
        img = img * (1 - rng.uniform(0.1, 0.5) * np.clip(r, 0, 1))[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:  # texture only behind part of the frame, e.g. a close-up beside a sky
        img[: int(hh * rng.uniform(0.1, 0.4))] = np.array(rand_color(rng, 40, 256), np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)


_PROGRAM: Sequence[tuple[float, Callable[[Rng, int, int], Image]]] = (
    (0.22, _prog_photo),
    (0.06, _prog_shapes),
    (0.04, _prog_texture),
    (0.06, _prog_studio),
    (0.05, _prog_slide),
    (0.07, _prog_collage),
    (0.04, _prog_field),
    (0.04, _prog_cartoon),
    (0.04, _prog_flat),
    (0.04, _prog_warm_field),
    (0.06, _prog_pale_field),
    (0.28, _prog_fine_texture),
)


def make_program(rng: Rng, h: int, w: int) -> Image:
    return _decorate_program(rng, _pick(rng, _PROGRAM)(rng, h, w))


def make_program_holdout(rng: Rng, h: int, w: int) -> Image:
    """Program frames from the held-out photos only (evaluation, never training)."""
    img = photo(rng, h, w, holdout=True).astype(np.float32)
    if rng.random() < 0.2:
        img *= rng.uniform(0.35, 0.7)
    return _decorate_program(rng, img.astype(np.uint8))


def _decorate_program(rng: Rng, img: Image) -> Image:
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    if rng.random() < 0.25:
        _ticker(img, rng)
    if rng.random() < 0.2:
        _lower_third(img, rng)
    if rng.random() < 0.3:
        draw_logo(img, rng)
    if rng.random() < 0.1:
        put_text(img, timecode(rng), (int(w * 0.05), int(h * 0.1)), h * 0.05, (255, 255, 255), rng)
    if rng.random() < 0.15:  # the same receiver graphics over a picture stay program
        osd(img, rng)
    if rng.random() < 0.15:  # film grain / sensor noise: still picture content
        img = np.clip(img + rng.normal(0, rng.uniform(2, 10), img.shape), 0, 255).astype(np.uint8)
    return img


# --------------------------------------------------------------------------- black


def _black_level(rng: Rng) -> np.ndarray:
    """A black level per channel: neutral, or warm/coloured black, every channel <= ~24."""
    level = rng.uniform(0, 20) if rng.random() < 0.8 else rng.uniform(0, 4)
    if rng.random() < 0.25:  # warm or coloured black (a tinted studio black, a dark blue slate)
        return rng.permutation(np.array([1.0, rng.uniform(0.3, 1.0), rng.uniform(0.0, 0.7)])) * min(
            24.0, level * 1.5 + 4
        )
    return np.clip(level + rng.uniform(-3, 3, size=3), 0, 255)


def _black_field(rng: Rng, h: int, w: int) -> np.ndarray:
    """The black picture before overlays: flat, boxed at two levels, or vignetted (float)."""
    img = np.zeros((h, w, 3), np.float32) + _black_level(rng).astype(np.float32)
    r = rng.random()
    if r < 0.3:  # 4:3 (or scope) black inside pillar/letterbox bars of another black level
        inner = _black_level(rng).astype(np.float32)
        if rng.random() < 0.65:
            b = int(w * rng.uniform(0.08, 0.2))
            img[:, b : w - b] = inner
        else:
            b = int(h * rng.uniform(0.08, 0.2))
            img[b : h - b] = inner
    elif r < 0.5:  # studio "black" with a faint vignette or hot spot
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rad = np.hypot((xx - w * rng.uniform(0.3, 0.7)) / w, (yy - h * rng.uniform(0.3, 0.7)) / h)
        fall = np.clip(rad / 0.75, 0, 1) ** rng.uniform(1, 3)
        img = (
            img * (1 - rng.uniform(0.3, 1.0) * fall)[..., None]
            + rng.uniform(0, 8) * (1 - fall)[..., None]
        )
    if rng.random() < 0.2:  # uneven blanking level
        img += (np.linspace(0, rng.uniform(-6, 6), h)[:, None, None]).astype(np.float32)
    return img


def make_black(rng: Rng, h: int, w: int) -> Image:
    img = _black_field(rng, h, w)
    if rng.random() < 0.5:
        img += rng.normal(0, rng.uniform(0.5, 4.0), (h, w, 1 if rng.random() < 0.6 else 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:  # compressed black: faint noise blocked by a low-quality encoder
        img = jpeg(img, int(rng.integers(2, 25)))
    if rng.random() < 0.5:
        draw_logo(img, rng, max_frac=0.1)
    if rng.random() < 0.15:
        osd(img, rng, small=True)
    if rng.random() < 0.5:
        th = h * rng.uniform(0.025, 0.07)
        tw = th * 6
        org = (int(rng.uniform(0.02, 0.98) * max(1, w - tw)), int(rng.uniform(0.1, 0.97) * h))
        put_text(
            img,
            timecode(rng),
            org,
            th,
            rand_color(rng, 100, 256) if rng.random() < 0.3 else (230, 230, 230),
            rng,
        )
    if rng.random() < 0.2:
        th = h * rng.uniform(0.03, 0.07)
        put_text(
            img,
            str(
                rng.choice(["NO SIGNAL", "STANDBY", "OFF AIR", "CH 1", "MUTE", random_text(rng, 1)])
            ),
            (int(w * rng.uniform(0.05, 0.6)), int(h * rng.uniform(0.1, 0.95))),
            th,
            rand_color(rng, 80, 256),
            rng,
        )
    return img


# --------------------------------------------------------------------------- colour bars


def _bars(
    w: int, h: int, colors: Sequence[Sequence[float]], edges: Sequence[float] | None = None
) -> Image:
    n = len(colors)
    xs = np.asarray(edges if edges is not None else np.linspace(0, 1, n + 1)) * w
    img = np.zeros((h, w, 3), np.float32)
    for i, c in enumerate(colors):
        img[:, int(round(xs[i])) : int(round(xs[i + 1]))] = c
    return img


def _levels(rng: Rng) -> tuple[float, float, float]:
    """(high, black, white) levels: 75 % or 100 % bars, with setup and slight analogue drift."""
    hi = float(rng.choice([191.0, 255.0, 180.0, 235.0])) + rng.uniform(-6, 6)
    return hi, rng.uniform(0, 20), rng.uniform(230, 255)


def _primary_bars(hi: float, lo: float, order: str = "wycgmrb") -> list[list[float]]:
    table = {
        "w": [hi, hi, hi],
        "y": [hi, hi, lo],
        "c": [lo, hi, hi],
        "g": [lo, hi, lo],
        "m": [hi, lo, hi],
        "r": [hi, lo, lo],
        "b": [lo, lo, hi],
        "k": [lo, lo, lo],
    }
    return [table[ch] for ch in order]


def _bars_smpte(rng: Rng, h: int, w: int) -> Image:
    hi, blk, white = _levels(rng)
    lo = blk
    top = _bars(w, h, _primary_bars(hi, lo))
    mid = _bars(
        w,
        h,
        [[lo, lo, hi], [blk] * 3, [hi, lo, hi], [blk] * 3, [lo, hi, hi], [blk] * 3, [hi, hi, hi]],
    )
    b = 1 / 7
    edges = [0, 1.25 * b, 2.5 * b, 3.75 * b, 5 * b, 5 * b + b / 3, 5 * b + 2 * b / 3, 6 * b, 1]
    bottom = _bars(
        w,
        h,
        [
            [0, 33, 76],
            [white] * 3,
            [50, 0, 106],
            [blk] * 3,
            [max(0, blk - 10)] * 3,
            [blk] * 3,
            [blk + 10] * 3,
            [blk] * 3,
        ],
        edges,
    )
    y1, y2 = int(h * rng.uniform(0.6, 0.7)), int(h * rng.uniform(0.72, 0.78))
    img = bottom
    img[:y2] = mid[:y2]
    img[:y1] = top[:y1]
    return img


def _bars_smpte_hd(rng: Rng, h: int, w: int) -> Image:
    hi, blk, white = _levels(rng)
    d = 1 / 8
    inner = [d + i * (6 * d / 7) for i in range(8)]
    grey40 = 102 + rng.uniform(-10, 10)
    row1 = _bars(w, h, [[grey40] * 3, *_primary_bars(hi, blk), [grey40] * 3], [0, *inner, 1])
    row2 = _bars(w, h, [[0, 255, 255], [hi] * 3, [hi] * 3, [0, 0, 255]], [0, d, inner[1], 7 * d, 1])
    ramp = np.zeros((h, w, 3), np.float32)
    ramp[:, int(d * w) : int(7 * d * w)] = np.linspace(0, 255, int(7 * d * w) - int(d * w))[
        None, :, None
    ]
    ramp[:, : int(d * w)] = [255, 255, 0]
    ramp[:, int(7 * d * w) :] = [255, 0, 0]
    b = 6 * d / 7
    row4 = _bars(
        w,
        h,
        [
            [38] * 3,
            [blk] * 3,
            [white] * 3,
            [blk] * 3,
            [max(0, blk - 5)] * 3,
            [blk] * 3,
            [blk + 5] * 3,
            [blk] * 3,
            [38] * 3,
        ],
        [
            0,
            d,
            d + 1.5 * b,
            d + 3.5 * b,
            d + 4.5 * b,
            d + 4.5 * b + b / 3,
            d + 4.5 * b + 2 * b / 3,
            d + 5 * b,
            7 * d,
            1,
        ],
    )
    y1, y2, y3 = int(h * 7 / 12), int(h * 8 / 12), int(h * 9 / 12)
    img = row4
    img[:y3] = ramp[:y3]
    img[:y2] = row2[:y2]
    img[:y1] = row1[:y1]
    return img


def _bars_ebu(rng: Rng, h: int, w: int) -> Image:
    hi, blk, white = _levels(rng)
    order = (
        "wycgmrbk" if rng.random() < 0.8 else str(rng.choice(["wycgmrb", "ycgmrb", "wycgmrbkw"]))
    )
    cols = _primary_bars(hi, blk, order)
    if order[0] == "w" and rng.random() < 0.5:  # PAL 75 % / 100 % white variants
        cols[0] = [white] * 3
    img = _bars(w, h, cols)
    r = rng.random()
    if r < 0.25:  # split field: reverse bars or red below
        y = int(h * rng.uniform(0.6, 0.8))
        img[y:] = (
            _bars(w, h, _primary_bars(hi, blk, order[::-1]))[y:]
            if rng.random() < 0.5
            else [hi, blk, blk]
        )
    elif r < 0.4:  # greyscale step wedge below
        y = int(h * rng.uniform(0.6, 0.8))
        n = int(rng.integers(5, 12))
        img[y:] = _bars(w, h, [[v] * 3 for v in np.linspace(blk, white, n)])[y:]
    return img


def _bars_ramps(rng: Rng, h: int, w: int) -> Image:
    """Horizontal bands of ramps or steps (R, G, B, grey...), like RGB/YUV test generators."""
    names = ["r", "g", "b", "w", "c", "m", "y"]
    table = {
        "r": (1, 0, 0),
        "g": (0, 1, 0),
        "b": (0, 0, 1),
        "w": (1, 1, 1),
        "c": (0, 1, 1),
        "m": (1, 0, 1),
        "y": (1, 1, 0),
    }
    n = int(rng.integers(2, 6))
    chosen = (
        ["r", "g", "b"] if rng.random() < 0.3 else list(rng.choice(names, size=n, replace=False))
    )
    img = np.zeros((h, w, 3), np.float32)
    t = np.linspace(0, 1, w, dtype=np.float32)
    steps = int(rng.integers(4, 12)) if rng.random() < 0.4 else 0
    for i, name in enumerate(chosen):
        tt = np.floor(t * steps) / (steps - 1) if steps else t
        if rng.random() < 0.3:
            tt = tt[::-1]
        y0, y1 = int(h * i / len(chosen)), int(h * (i + 1) / len(chosen))
        img[y0:y1] = tt[None, :, None] * np.array(table[name], np.float32) * 255
    if rng.random() < 0.3:
        img = np.ascontiguousarray(np.transpose(cv2.resize(img, (h, w)), (1, 0, 2)))
    return img


def _bars_spectrum(rng: Rng, h: int, w: int) -> Image:
    hue = np.linspace(0, 179, w, dtype=np.float32)[None, :].repeat(h, 0)
    hsv = np.stack(
        [hue, np.full((h, w), 255, np.float32), np.full((h, w), 255, np.float32)], -1
    ).astype(np.uint8)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    mode = rng.integers(3)
    if mode == 0:  # fade to white at the top and to black at the bottom
        img = np.where(y < 0.5, img + (255 - img) * (1 - 2 * y), img * (2 - 2 * y))
    elif mode == 1:
        img = img * (1 - y)
    else:
        band = int(h * rng.uniform(0.1, 0.3))
        y0 = int(rng.integers(0, h - band))
        base = _bars_ebu(rng, h, w) if rng.random() < 0.5 else _bars_ramps(rng, h, w)
        base[y0 : y0 + band] = img[y0 : y0 + band]
        img = base
    return img


def _bars_checker(rng: Rng, h: int, w: int) -> Image:
    """Colour checker / patch charts on a dark or grey surround."""
    rows, cols = int(rng.integers(3, 6)), int(rng.integers(4, 9))
    img = np.full((h, w, 3), rng.uniform(0, 90), np.float32)
    gap = rng.uniform(0.0, 0.15)
    greys = rng.random() < 0.5
    for r in range(rows):
        for c in range(cols):
            if greys and r == rows - 1:
                color = [255 * (1 - c / max(1, cols - 1))] * 3
            else:
                color = list(rand_color(rng, 30, 240))
            x0, x1 = int(w * (c + gap / 2) / cols), int(w * (c + 1 - gap / 2) / cols)
            y0, y1 = int(h * (r + gap / 2) / rows), int(h * (r + 1 - gap / 2) / rows)
            img[y0:y1, x0:x1] = color
    return img


def _bars_grid(rng: Rng, h: int, w: int) -> Image:
    """Crosshatch / convergence grid, checkerboard or multiburst."""
    kind = rng.integers(3)
    if kind == 0:
        img = np.full((h, w, 3), rng.uniform(0, 120), np.float32)
        step = int(w / rng.integers(8, 20))
        col = [rng.uniform(180, 255)] * 3
        for x in range(step // 2, w, step):
            img[:, x : x + max(1, w // 300)] = col
        for y in range(step // 2, h, step):
            img[y : y + max(1, w // 300)] = col
        if rng.random() < 0.6:
            cv2.circle(img, (w // 2, h // 2), int(h * 0.45), col, max(1, w // 300), cv2.LINE_AA)
        return img
    if kind == 1:
        n = int(rng.integers(4, 16))
        yy, xx = np.mgrid[0:h, 0:w]
        cb = ((yy * n // h + xx * n // h) % 2).astype(np.float32)
        return np.repeat(cb[..., None], 3, 2) * 255
    bands = int(rng.integers(4, 7))
    img = np.zeros((h, w, 3), np.float32)
    xs = np.arange(w, dtype=np.float32)
    for i in range(bands):
        x0, x1 = int(w * i / bands), int(w * (i + 1) / bands)
        freq = (i + 1) * rng.uniform(0.02, 0.05)
        img[:, x0:x1] = (127 + 120 * np.sin(xs[x0:x1] * freq * 2 * np.pi))[None, :, None]
    y = int(h * rng.uniform(0.2, 0.35))
    img[:y] = _bars(w, h, [[v] * 3 for v in np.linspace(0, 255, bands)])[:y]
    return img


def _bars_card(rng: Rng, h: int, w: int) -> Image:
    """A generic composite test card: grid, circle with bars, step wedge, caption box."""
    img = (
        _bars_grid(rng, h, w)
        if rng.random() < 0.5
        else np.full((h, w, 3), rng.uniform(60, 160), np.float32)
    )
    r = int(h * rng.uniform(0.35, 0.48))
    cx, cy = w // 2, h // 2
    inner = _bars_ebu(rng, h, w) if rng.random() < 0.6 else _bars_ramps(rng, h, w)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (cx, cy), r, 255, -1, cv2.LINE_AA)
    band = np.zeros_like(mask)
    band[cy - r // 2 : cy + r // 2] = 255
    m = (cv2.bitwise_and(mask, band) > 127)[..., None]
    img = np.clip(np.where(m, inner, img), 0, 255).astype(np.uint8)
    cv2.circle(img, (cx, cy), r, (255, 255, 255), max(1, w // 250), cv2.LINE_AA)
    if rng.random() < 0.7:
        bw, bh = int(w * 0.2), int(h * 0.08)
        cv2.rectangle(
            img, (cx - bw // 2, cy + r // 2), (cx + bw // 2, cy + r // 2 + bh), (0, 0, 0), -1
        )
        put_text(
            img,
            random_text(rng, 1)[:8],
            (cx - bw // 2 + 3, cy + r // 2 + int(bh * 0.75)),
            bh * 0.6,
            (255, 255, 255),
            rng,
        )
    return img


_BARS: Sequence[tuple[float, Callable[[Rng, int, int], Image]]] = (
    (0.22, _bars_smpte),
    (0.16, _bars_smpte_hd),
    (0.24, _bars_ebu),
    (0.1, _bars_ramps),
    (0.07, _bars_spectrum),
    (0.07, _bars_checker),
    (0.06, _bars_grid),
    (0.08, _bars_card),
)


def make_color_bars(rng: Rng, h: int, w: int) -> Image:
    img = np.clip(_pick(rng, _BARS)(rng, h, w), 0, 255).astype(np.uint8)
    if rng.random() < 0.15:  # swapped or mis-wired channels still show bars
        img = np.ascontiguousarray(img[..., rng.permutation(3)])
    if rng.random() < 0.35:  # station ident box over the bars
        bw, bh = int(w * rng.uniform(0.2, 0.5)), int(h * rng.uniform(0.07, 0.15))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        cv2.rectangle(
            img, (x, y), (x + bw, y + bh), (0, 0, 0) if rng.random() < 0.6 else rand_color(rng), -1
        )
        put_text(
            img, random_text(rng, 2), (x + 4, y + int(bh * 0.75)), bh * 0.55, (255, 255, 255), rng
        )
    if rng.random() < 0.2:
        put_text(
            img,
            timecode(rng),
            (int(w * rng.uniform(0.05, 0.6)), int(h * rng.uniform(0.1, 0.95))),
            h * 0.05,
            (255, 255, 255),
            rng,
        )
    if rng.random() < 0.15:
        draw_logo(img, rng)
    return img


# --------------------------------------------------------------------------- static


def make_static(rng: Rng, h: int, w: int) -> Image:
    # Noise may be drawn coarser than the frame (blocky / analogue streaks), then scaled up.
    block = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
    stretch = float(rng.choice([1, 1, 1, 1.5, 2, 3]))
    nh, nw = max(8, h // block), max(8, int(w / block / stretch))
    colored = rng.random() < 0.35
    ch = 3 if colored else 1
    kind = rng.integers(4)
    mean = rng.uniform(40, 200)
    if kind == 0:  # uniform
        spread = rng.uniform(60, 128)
        n = rng.uniform(mean - spread, mean + spread, (nh, nw, ch))
    elif kind == 1:  # gaussian
        n = rng.normal(mean, rng.uniform(35, 90), (nh, nw, ch))
    elif kind == 2:  # salt and pepper over a flat or noisy background
        n = np.full((nh, nw, ch), rng.uniform(0, 255)) + rng.normal(
            0, rng.uniform(0, 30), (nh, nw, ch)
        )
        density = rng.uniform(0.15, 0.6)
        r = rng.random((nh, nw, ch))
        n[r < density / 2] = 0
        n[r > 1 - density / 2] = 255
    else:  # noise added to a flat field and clipped: dark speckle, or bright snow off white
        base = float(rng.choice([0.0, 255.0, rng.uniform(0, 255)]))
        n = rng.normal(0, rng.uniform(40, 110), (nh, nw, ch)) + base + rng.uniform(-10, 30)
    if colored and rng.random() < 0.5:  # luma + chroma noise mixed in YUV
        y = n[..., :1]
        n = y + rng.normal(0, rng.uniform(15, 60), (nh, nw, 3))
    n = np.clip(n, 0, 255).astype(np.float32)
    if n.shape[2] == 1:
        n = np.repeat(n, 3, axis=2)
    interp = cv2.INTER_NEAREST if rng.random() < 0.6 else cv2.INTER_LINEAR
    img: np.ndarray = cv2.resize(n, (w, h), interpolation=interp).astype(np.float32)
    if rng.random() < 0.2:
        img *= np.array(rand_color(rng, 150, 256), np.float32) / 255
    if rng.random() < 0.25:  # scanlines
        img[:: int(rng.integers(2, 4))] *= rng.uniform(0.4, 0.85)
    if rng.random() < 0.3:  # rolling hum bars
        yy = np.arange(h, dtype=np.float32)[:, None, None]
        img *= 1 - rng.uniform(0.2, 0.6) * (
            0.5 + 0.5 * np.sin(2 * np.pi * (yy / h * rng.uniform(0.5, 3) + rng.random()))
        )
    if rng.random() < 0.15:  # faint ghost of a picture under the snow
        a = rng.uniform(0.1, 0.25)
        img = img * (1 - a) + photo(rng, h, w).astype(np.float32) * a
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:  # a 4:3 receiver picture pillarboxed (or letterboxed) in black
        if rng.random() < 0.7:
            b = int(w * rng.uniform(0.05, 0.125))
            out[:, :b], out[:, w - b :] = 0, 0
        else:
            b = int(h * rng.uniform(0.05, 0.12))
            out[:b], out[h - b :] = 0, 0
    if rng.random() < 0.4:  # the receiver's own graphics drawn crisply over the snow
        osd(out, rng)
    return out


MAKERS: dict[str, Callable[[Rng, int, int], Image]] = {
    "program": make_program,
    "black": make_black,
    "color_bars": make_color_bars,
    "static": make_static,
}


def _pick(
    rng: Rng, table: Sequence[tuple[float, Callable[[Rng, int, int], Image]]]
) -> Callable[[Rng, int, int], Image]:
    weights = np.array([w for w, _ in table])
    return table[int(rng.choice(len(table), p=weights / weights.sum()))][1]


# --------------------------------------------------------------------------- degradations

_INTERPS = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_NEAREST, cv2.INTER_CUBIC, cv2.INTER_AREA)


def jpeg(img: Image, quality: int) -> Image:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert ok and decoded is not None
    return np.ascontiguousarray(decoded[..., ::-1])


def finish(img: Image, label: str, rng: Rng, size: int) -> Image:
    """Apply the broadcast chain and return a ``size`` x ``size`` RGB uint8 frame."""
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    if label in ("program", "color_bars") and rng.random() < 0.2:  # letterbox / pillarbox
        if rng.random() < 0.5:
            b = int(h * rng.uniform(0.05, 0.15))
            f[:b], f[h - b :] = 0, 0
        else:
            b = int(w * rng.uniform(0.05, 0.15))
            f[:, :b], f[:, w - b :] = 0, 0
    if label == "program":
        f = f * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * rng.uniform(0.4, 1.5)
        f *= rng.uniform(0.85, 1.15, size=3)
    elif label == "color_bars":
        f = f * rng.uniform(0.85, 1.1) + rng.uniform(-12, 12)
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * rng.uniform(0.75, 1.15)
    elif label == "static":
        m = f.mean()
        f = m + (f - m) * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25)
    elif label == "black":
        f = f * rng.uniform(0.8, 1.1)
    f = np.clip(f, 0, 255)
    if rng.random() < 0.3:
        gamma = rng.uniform(0.75, 1.3)
        f = (255 * (f / 255) ** gamma).astype(np.float32)
    img = f.astype(np.uint8)
    blur_max = {"static": 0.6, "black": 1.0}.get(label, 1.8)
    if rng.random() < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, blur_max))
    if rng.random() < 0.25:  # a low-resolution source scaled up by the chain
        k = rng.uniform(1.5, 3.0)
        small = cv2.resize(
            img, (max(16, int(w / k)), max(16, int(h / k))), interpolation=cv2.INTER_AREA
        )
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    r = rng.random()
    if r < 0.15:  # a low-bitrate, low-resolution stream: tiny frame, heavy JPEG, scaled back up
        sw = int(rng.integers(96, 260))
        small = cv2.resize(img, (sw, max(16, sw * h // w)), interpolation=cv2.INTER_AREA)
        small = jpeg(small, int(rng.integers(8, 50)))
        img = cv2.resize(small, (w, h), interpolation=int(rng.choice(_INTERPS[:4])))
    elif r < 0.3:  # macroblocking: a starved encoder at full size
        img = jpeg(img, int(rng.integers(3, 15)))
    elif r < 0.8:
        img = jpeg(img, int(rng.integers(15, 96)))
    if rng.random() < 0.3:  # the camera side often scales to 640x360 before sending
        img = cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)
    out = cv2.resize(img, (size, size), interpolation=int(rng.choice(_INTERPS)))
    if rng.random() < 0.25:
        out = jpeg(out, int(rng.integers(10, 96)))
    return out


def plausible(label: str, frame: Image) -> bool:
    """Reject draws whose degradations pushed them into another class (e.g. snow blurred to mush)."""
    grey = frame.astype(np.float32).mean(axis=2)
    mean, bright = float(grey.mean()), float((grey > 60).mean())
    # Share of the picture clearly above its own black level: content, not a logo or a timecode.
    lifted = float((grey > np.median(grey) + 16).mean())
    # The black/program rule of the model card: a picture whose every channel stays <= ~28/255
    # (small overlays aside) is black; a flat-ish one needs its brightest channel >= ~40 to be
    # program. The gap between the two is left out of training (and of the evaluation).
    brightest = float(frame.reshape(-1, 3).mean(axis=0).max())
    if label == "black":
        return mean < 30 and bright < 0.06 and lifted < 0.05 and brightest <= 30
    if label == "static":
        # Snow scaled down with area averaging is faint but structureless: still static.
        high_pass = float((grey - cv2.GaussianBlur(grey, (0, 0), 1.5)).std())
        return (high_pass >= 8 and mean >= 15) or (high_pass >= 3 and mean >= 35)
    if (mean < 25 or brightest < 40) and bright < 0.1 and lifted < 0.08:
        return False
    # Structureless grain strong enough to read as snow is not a fair program example.
    high_pass = float((grey - cv2.GaussianBlur(grey, (0, 0), 1.5)).std())
    return not (high_pass >= 3 and float(cv2.GaussianBlur(grey, (0, 0), 3).std()) < 3)


def sample(
    label: str, rng: Rng, size: int, maker: Callable[[Rng, int, int], Image] | None = None
) -> Image:
    """One model-sized training frame of ``label`` (drawn by ``maker`` if given)."""
    while True:
        # Snow from HD sources matters: area-downscaling 1920 px of noise leaves only faint grain.
        h, w = frame_size(rng, 1920 if label == "static" and rng.random() < 0.35 else 960)
        out = finish((maker or MAKERS[label])(rng, h, w), label, rng, size)
        if plausible(label, out):
            return out
