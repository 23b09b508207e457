"""Draw the classification result onto a frame, for any sink that shows or records images."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def overlay_lines(
    *,
    label: str | None,
    score: float | None,
    source: str | None = None,
    timestamp: float | None = None,
    fps: float | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The text lines :func:`draw_overlay` writes, in order (useful for logs and tests)."""
    lines: list[str] = []
    if label is not None:
        lines.append(f"{label} {score:.2f}" if score is not None else label)
    if source:
        lines.append(source)
    details = []
    if timestamp is not None:
        details.append(dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    if fps is not None:
        details.append(f"{fps:.1f} fps")
    if details:
        lines.append("  ".join(details))
    lines.extend(extra)
    return lines


def draw_overlay(
    image: np.ndarray,
    *,
    label: str | None,
    score: float | None = None,
    source: str | None = None,
    timestamp: float | None = None,
    fps: float | None = None,
    extra: Sequence[str] = (),
    corner: str = "top-left",
    color: tuple[int, int, int] = (255, 255, 255),
    box_alpha: float = 0.6,
    in_place: bool = False,
) -> np.ndarray:
    """Write label, score and stream details on a frame over a dark translucent box.

    Text size follows the image height, so the result stays readable from
    160x120 thumbnails to 4K frames.

    Args:
        image: BGR ``uint8`` image (H, W, 3).
        label: Label to show first (largest information); ``None`` shows none.
        score: Score shown next to the label, formatted with 2 decimals.
        source: Source name (pass a redacted one).
        timestamp: Wall-clock time (``time.time()``) shown as local date and time.
        fps: Measured frame rate.
        extra: More lines to show below.
        corner: ``top-left``, ``top-right``, ``bottom-left`` or ``bottom-right``.
        color: BGR text colour.
        box_alpha: Opacity of the dark box, 0 (none) to 1 (black).
        in_place: Draw on ``image`` itself instead of a copy.

    Returns:
        The image with the overlay: a new array unless ``in_place``.

    Raises:
        ValueError: On a non-BGR image, an unknown corner or an alpha outside [0, 1].

    Example:
        >>> shown = draw_overlay(frame.image, label="cat", score=0.93, source="cam1")  # doctest: +SKIP
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be a BGR uint8 array (H, W, 3), got {image.dtype} {image.shape}"
        )
    if corner not in _CORNERS:
        raise ValueError(f"corner must be one of {_CORNERS}, got {corner!r}")
    if not 0.0 <= box_alpha <= 1.0:
        raise ValueError(f"box_alpha must be within [0, 1], got {box_alpha}")
    out = image if in_place else image.copy()
    lines = overlay_lines(
        label=label, score=score, source=source, timestamp=timestamp, fps=fps, extra=extra
    )
    if not lines:
        return out

    height, width = out.shape[:2]
    scale = max(0.35, height / 720.0)
    thickness = max(1, round(scale * 1.5))
    margin = max(3, round(8 * scale))
    sizes = [cv2.getTextSize(line, _FONT, scale, thickness) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + margin
    box_w = min(width, max(w for (w, _), _ in sizes) + 2 * margin)
    box_h = min(height, line_h * len(lines) + margin)
    x0 = 0 if corner.endswith("left") else width - box_w
    y0 = 0 if corner.startswith("top") else height - box_h

    if box_alpha > 0:
        region = out[y0 : y0 + box_h, x0 : x0 + box_w]
        # Darken instead of painting black so the scene stays visible behind the text.
        region[:] = (region.astype(np.float32) * (1.0 - box_alpha)).astype(np.uint8)
    for i, (line, ((_, text_h), _)) in enumerate(zip(lines, sizes, strict=True)):
        baseline_y = y0 + margin + i * line_h + text_h
        cv2.putText(
            out, line, (x0 + margin, baseline_y), _FONT, scale, color, thickness, cv2.LINE_AA
        )
    return out
