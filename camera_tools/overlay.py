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
import datetime as dt
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
_FONT_PIXELS = 22  # cap height of _FONT at scale 1.0, in pixels

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
    y = margin
    if label is not None:
        badge_text = f"{label} {score * 100:.0f}%" if score is not None else label
        y = _draw_box_text(
            out, badge_text, (margin, y), scale, label_color(label), thickness_factor=2.2
        )
        y += margin
    details = [short_source_name(source)] if source else []
    if timestamp is not None:
        details.append(dt.datetime.fromtimestamp(timestamp).strftime("%H:%M:%S"))
    if fps is not None:
        details.append(f"{fps:.1f} fps")
    details.extend(extra)
    if details:
        _draw_box_text(out, "  ".join(details), (margin, y), max(0.35, scale * 0.55), None)
    if strip:
        _draw_strip(out, strip)
    return out


def _draw_box_text(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    scale: float,
    background: BGR | None,
    *,
    thickness_factor: float = 1.6,
) -> int:
    """Write ``text`` on a filled box (or a darkened one when ``background`` is None).

    Returns the y just below the box.
    """
    height, width = image.shape[:2]
    thickness = max(1, round(scale * thickness_factor))
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(text_h * 0.35))
    x0, y0 = origin
    x1 = min(width, x0 + text_w + 2 * pad)
    y1 = min(height, y0 + text_h + baseline + 2 * pad)
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
    cv2.putText(
        image, text, (x0 + pad, y0 + pad + text_h), _FONT, scale, color, thickness, cv2.LINE_AA
    )
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
