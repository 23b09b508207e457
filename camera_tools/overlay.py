"""Draw the classification result onto a frame, for every place video is shown.

Recording, ``--display``, the web view and the RTSP re-stream all show the same picture: a badge
in the label's colour (readable in a 3x3 wall of tiles: its size follows the frame), the score,
the source's short name (never a full path or credentials) and a thin strip along the bottom
with the labels of the last seconds.

Label colours are stable across runs and processes (a hash of the label name, not Python's
salted ``hash``), so the web page, the report and the video agree on what colour means what.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import functools
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import PurePath
from urllib.parse import urlsplit

import cv2
import numpy as np

from camera_tools.redact import redact_url

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_PIXELS = 22  # cap height of _FONT at scale 1.0, in pixels (drawn: 22 on OpenCV 4, 21 on 5)
# Glyphs that reach highest and lowest, for a box whose height does not depend on its text.
_REFERENCE_TEXT = "Hbdfhkl0123456789%gjpqy_"
_MIN_BADGE_SCALE = 0.1  # the badge's colour says the label even where its text is too small to read
_MIN_DETAILS_SCALE = 0.25  # below this the details line is unreadable: left out instead

BGR = tuple[int, int, int]

# Well-separated colours (BGR), picked by a stable hash of the label name.
_PALETTE: tuple[BGR, ...] = (
    (60, 76, 231),  # red
    (113, 204, 46),  # green
    (219, 152, 52),  # blue
    (15, 196, 241),  # yellow
    (182, 89, 155),  # purple
    (34, 126, 230),  # orange
    (156, 188, 26),  # teal
    (180, 105, 255),  # pink
    (141, 140, 127),  # grey
    (0, 128, 128),  # olive
    (128, 0, 0),  # navy
    (200, 200, 0),  # cyan
)
# Labels every broadcast monitor shows get colours that mean something at a glance.
_KNOWN: dict[str, BGR] = {
    "program": (113, 204, 46),  # green: all is well
    "black": (60, 60, 60),  # dark grey: black frames (dark enough to read, not the scene)
    "color_bars": (219, 152, 52),  # blue
    "static": (15, 196, 241),  # yellow: noise
}
_UNKNOWN_SLOT: BGR = (30, 30, 30)  # strip slots before the first label


def label_color(label: str) -> BGR:
    """The BGR colour of ``label``: the same in every process and run.

    Example:
        >>> label_color("program")
        (113, 204, 46)
        >>> label_color("cat") == label_color("cat")
        True
    """
    known = _KNOWN.get(label)
    if known is not None:
        return known
    digest = hashlib.md5(label.encode("utf-8"), usedforsecurity=False).digest()
    return _PALETTE[digest[0] % len(_PALETTE)]


def label_color_hex(label: str) -> str:
    """The colour of ``label`` as CSS ``#rrggbb``.

    Example:
        >>> label_color_hex("program")
        '#2ecc71'
    """
    b, g, r = label_color(label)
    return f"#{r:02x}{g:02x}{b:02x}"


def text_color_on(background: BGR) -> BGR:
    """Black or white, whichever reads better on ``background`` (relative luminance)."""
    b, g, r = background
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def short_source_name(source: str, *, max_length: int = 32) -> str:
    """A short, credential-free name for a source id, for tiles and badges.

    Local files and folders give their file name; URLs give host and last path part.

    Example:
        >>> short_source_name("rtsp://admin:pw@cam.local:554/stream/ch1?token=x")
        'cam.local:554/ch1'
        >>> short_source_name("/data/feeds/studio-a.mp4")
        'studio-a.mp4'
    """
    safe = redact_url(source)
    if "://" in safe:
        try:
            parts = urlsplit(safe)
            host = parts.netloc.rsplit("@", 1)[-1]
        except ValueError:
            host, parts = "", None
        last = PurePath(parts.path).name if parts is not None else ""
        name = f"{host}/{last}" if host and last else (host or last or safe)
    else:
        suffix = ""
        if "#" in safe:  # repeated specs are told apart as "spec#2"
            safe, _, n = safe.rpartition("#")
            suffix = f"#{n}"
        name = (PurePath(safe).name or safe) + suffix
    if len(name) > max_length:
        name = "…" + name[-(max_length - 1) :]
    return name


class LabelHistory:
    """The labels of one source over the last seconds, for the strip along the bottom.

    Args:
        seconds: How far back the strip reaches.

    Example:
        >>> history = LabelHistory(seconds=4.0)
        >>> for t, label in [(0.0, "a"), (2.0, "b")]:
        ...     history.add(t, label)
        >>> history.slots(now=4.0, count=4)
        ['a', 'a', 'b', 'b']
    """

    def __init__(self, seconds: float = 10.0) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        self.seconds = seconds
        self._times: collections.deque[float] = collections.deque()
        self._labels: collections.deque[str] = collections.deque()

    def add(self, at: float, label: str) -> None:
        """Record ``label`` from time ``at`` on (times must not go backwards)."""
        if self._times and at < self._times[-1]:
            at = self._times[-1]  # a clock step back must not reorder the strip
        self._times.append(at)
        self._labels.append(label)
        # Keep one entry older than the window: it is the label in effect at its start.
        while len(self._times) > 1 and self._times[1] <= at - self.seconds:
            self._times.popleft()
            self._labels.popleft()

    def slots(self, now: float, count: int = 64) -> list[str | None]:
        """The label in effect at ``count`` evenly spaced times ending at ``now``, oldest first."""
        times = list(self._times)
        out: list[str | None] = []
        for i in range(count):
            at = now - self.seconds * (count - 1 - i) / max(1, count - 1)
            index = bisect.bisect_right(times, at) - 1
            out.append(self._labels[index] if index >= 0 else None)
        return out


def _text_scale(height: int) -> float:
    # The label's capitals are ~6% of the frame height: readable when a 1080p frame is shown
    # as one tile of a 3x3 wall, not overwhelming on a full-size monitor.
    return max(0.4, 0.06 * height / _FONT_PIXELS)


def draw_overlay(
    image: np.ndarray,
    *,
    label: str | None,
    score: float | None = None,
    source: str | None = None,
    timestamp: float | None = None,
    fps: float | None = None,
    extra: Sequence[str] = (),
    strip: Sequence[str | None] = (),
    in_place: bool = False,
) -> np.ndarray:
    """Draw the label badge, the source's short name, details and the label strip on a frame.

    Args:
        image: BGR ``uint8`` image (H, W, 3).
        label: Label for the badge; ``None`` draws no badge.
        score: Score shown in the badge, as a percentage.
        source: Source id; only its short, redacted name is shown
            (see :func:`short_source_name`).
        timestamp: Wall-clock time (``time.time()``) shown as local time.
        fps: Measured frame rate.
        extra: More short details, shown after the time and fps.
        strip: Labels of the last seconds, oldest first (``None`` = unknown), drawn as a thin
            coloured strip along the bottom edge (see :class:`LabelHistory`).
        in_place: Draw on ``image`` itself instead of a copy.

    Returns:
        The image with the overlay: a new array unless ``in_place``.

    Raises:
        ValueError: On an image that is not BGR ``uint8``.

    Example:
        >>> shown = draw_overlay(frame, label="black", score=0.93, source="cam1")  # doctest: +SKIP
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be a BGR uint8 array (H, W, 3), got {image.dtype} {image.shape}"
        )
    out = image if in_place else image.copy()
    height, width = out.shape[:2]
    scale = _text_scale(height)
    margin = max(2, round(0.012 * height))
    # Text stays in the frame's top half, the badge also within its width: on a thumbnail it
    # shrinks (and the details line goes) rather than cover the picture. The details, most
    # telling first, may run off the right edge.
    text_bottom = height // 2
    text_width = width - 2 * margin
    y = margin
    if label is not None:
        badge_text = f"{label} {score * 100:.0f}%" if score is not None else label
        badge = _fit_box(
            badge_text, scale, 2.2, text_width, text_bottom - y, _MIN_BADGE_SCALE
        ) or _box(badge_text, _MIN_BADGE_SCALE, 2.2)
        y = _draw_box_text(out, badge, (margin, y), label_color(label)) + margin
    details = [short_source_name(source)] if source else []
    if timestamp is not None:
        details.append(dt.datetime.fromtimestamp(timestamp).strftime("%H:%M:%S"))
    if fps is not None:
        details.append(f"{fps:.1f} fps")
    details.extend(extra)
    if details:
        box = _fit_box(
            "  ".join(details),
            max(0.35, scale * 0.55),
            1.6,
            None,
            text_bottom - y,
            _MIN_DETAILS_SCALE,
        )
        if box is not None:
            _draw_box_text(out, box, (margin, y), None)
    if strip:
        _draw_strip(out, strip)
    return out


@dataclasses.dataclass(frozen=True)
class _TextBox:
    """One line of text laid out in a padded box (sizes in pixels)."""

    text: str
    scale: float
    thickness: int
    width: int
    height: int
    pad: int
    ascent: int  # from the box's inner top to the text's baseline


@functools.lru_cache(maxsize=256)
def _line_extent(scale: float, thickness: int) -> tuple[int, int]:
    """Rows of ink above and below the baseline of a line of text, measured by drawing.

    Not taken from ``cv2.getTextSize``: OpenCV 5 draws the Hershey font ids with its new
    TrueType-based renderer, whose reported height is the font's ascent (a quarter taller than
    the capitals) and whose baseline is the descent of the glyphs in that very string, so a box
    sized from it grows and shrinks with the label; OpenCV 4 reports the cap height and a fixed
    descent. Drawing the same reference glyphs gives a snug box of constant height on both.
    """
    (ref_w, ref_h), ref_base = cv2.getTextSize(_REFERENCE_TEXT, _FONT, scale, thickness)
    room = 2 * (ref_h + ref_base + thickness) + 4
    canvas = np.zeros((2 * room, ref_w + 2 * room), np.uint8)
    cv2.putText(canvas, _REFERENCE_TEXT, (room, room), _FONT, scale, 255, thickness, cv2.LINE_AA)
    rows = np.flatnonzero(canvas.any(axis=1))
    if rows.size == 0:
        return ref_h, ref_base
    return room - int(rows[0]), int(rows[-1]) - room + 1


def _box(text: str, scale: float, thickness_factor: float) -> _TextBox:
    thickness = max(1, round(scale * thickness_factor))
    ascent, descent = _line_extent(scale, thickness)
    (text_w, _), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(ascent * 0.35))
    return _TextBox(
        text, scale, thickness, text_w + 2 * pad, ascent + descent + 2 * pad, pad, ascent
    )


def _fit_box(
    text: str,
    scale: float,
    thickness_factor: float,
    max_width: int | None,
    max_height: int,
    min_scale: float,
) -> _TextBox | None:
    """The box of ``text`` at ``scale``, or smaller until it fits; None if not even at min_scale.

    ``max_width`` None: any width (the frame's edge clips the text).
    """
    while True:
        box = _box(text, scale, thickness_factor)
        fits_width = max_width is None or box.width <= max_width
        if fits_width and box.height <= max_height:
            return box
        if scale <= min_scale:
            return None
        # Sizes are nearly proportional to the scale: jump close, then step down.
        shrink = max_height / box.height
        if max_width is not None:
            shrink = min(shrink, max_width / box.width)
        scale = max(min_scale, scale * min(0.9, shrink))


def _draw_box_text(
    image: np.ndarray,
    box: _TextBox,
    origin: tuple[int, int],
    background: BGR | None,
) -> int:
    """Write ``box``'s text on a filled box (or a darkened one when ``background`` is None).

    Returns the y just below the box.
    """
    height, width = image.shape[:2]
    x0, y0 = origin
    x1 = min(width, x0 + box.width)
    y1 = min(height, y0 + box.height)
    if x1 <= x0 or y1 <= y0:
        return y0
    if background is None:
        region = image[y0:y1, x0:x1]
        # Darken instead of painting black so the scene stays visible behind small text.
        region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)
        color: BGR = (255, 255, 255)
    else:
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), background, thickness=cv2.FILLED)
        color = text_color_on(background)
    baseline = (x0 + box.pad, y0 + box.pad + box.ascent)
    cv2.putText(image, box.text, baseline, _FONT, box.scale, color, box.thickness, cv2.LINE_AA)
    return y1


def _draw_strip(image: np.ndarray, strip: Sequence[str | None]) -> None:
    height, width = image.shape[:2]
    strip_h = max(3, round(0.025 * height))
    edges = np.linspace(0, width, len(strip) + 1).round().astype(int)
    for slot, label in enumerate(strip):
        color = _UNKNOWN_SLOT if label is None else label_color(label)
        image[height - strip_h :, edges[slot] : edges[slot + 1]] = color


class OverlayPainter:
    """Draws overlays for many sources, keeping each source's label history for the strip.

    Thread-safe: one thread may record labels (:meth:`observe`) while another draws; the
    lock covers only the label history, never the drawing.

    Args:
        strip_seconds: How far back the bottom strip reaches.
        strip_slots: Number of coloured slots in the strip.
        clock: Wall clock for the strip (``time.time``), injectable for tests.
    """

    def __init__(
        self,
        *,
        strip_seconds: float = 10.0,
        strip_slots: int = 80,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if strip_slots < 1:
            raise ValueError(f"strip_slots must be >= 1, got {strip_slots}")
        self._strip_seconds = strip_seconds
        self._slots = strip_slots
        self._clock = clock
        self._histories: dict[str, LabelHistory] = {}
        self._lock = threading.Lock()

    def observe(self, source: str, label: str, at: float | None = None) -> None:
        """Record a label without drawing (cheap: for frames nobody is watching)."""
        at = self._clock() if at is None else at
        with self._lock:
            history = self._histories.get(source)
            if history is None:
                history = self._histories[source] = LabelHistory(self._strip_seconds)
            history.add(at, label)

    def paint(
        self,
        image: np.ndarray,
        *,
        source: str,
        label: str | None,
        score: float | None,
        fps: float | None = None,
        extra: Sequence[str] = (),
        observe: bool = True,
        at: float | None = None,
        timestamp: float | None = None,
    ) -> np.ndarray:
        """Return a copy of ``image`` with the overlay (and record ``label`` when ``observe``).

        ``at`` places the frame on the strip's time axis (default: the clock): a recording of a
        file passes its position in the video, so the strip spans seconds of video, not of
        processing. ``timestamp`` is the wall-clock time shown (default: ``at``).
        """
        now = self._clock() if at is None else at
        if observe and label is not None:
            self.observe(source, label, now)
        return draw_overlay(
            image,
            label=label,
            score=score,
            source=source,
            timestamp=now if timestamp is None else timestamp,
            fps=fps,
            extra=extra,
            strip=self.strip(source, now),
        )

    def strip(self, source: str, now: float | None = None) -> list[str | None]:
        """The strip slots of ``source`` at ``now`` (empty before its first label)."""
        now = self._clock() if now is None else now
        with self._lock:
            history = self._histories.get(source)
            return [] if history is None else history.slots(now, self._slots)
