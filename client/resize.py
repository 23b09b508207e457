"""One resize rule for frames on their way to a model, shared by the client and the server.

Shrinking by 2× or more averages (``INTER_AREA``): bilinear would skip pixels and alias. Below
2× (what a reduced-scale JPEG decode leaves, e.g. 320×240 → 224×224) every pixel already
reaches a bilinear output, and ``INTER_AREA``'s general path costs 6–10× as much (0.8–1.6 ms
against 0.13 ms per frame on the bench machine, BENCHMARKS.md session 7): bilinear. Enlarging
is bilinear.
"""

from __future__ import annotations

import cv2
import numpy as np


def interpolation_for(shape: tuple[int, ...], width: int, height: int) -> int:
    """The OpenCV interpolation that brings an image of ``shape`` (h, w, ...) to ``width`` x ``height``.

    Example:
        >>> interpolation_for((480, 640, 3), 224, 224) == cv2.INTER_AREA
        True
        >>> interpolation_for((240, 320, 3), 224, 224) == cv2.INTER_LINEAR
        True
    """
    if shape[1] >= 2 * width or shape[0] >= 2 * height:
        return cv2.INTER_AREA
    return cv2.INTER_LINEAR


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (h, w, c) at ``width`` x ``height``, channel axis kept; the same array if it fits."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    resized = cv2.resize(
        image, (width, height), interpolation=interpolation_for(image.shape, width, height)
    )
    return resized[:, :, None] if resized.ndim == 2 else resized
