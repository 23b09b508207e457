"""Helpers for tests that look at screenshots of the web view."""

from __future__ import annotations

import cv2
import numpy as np


def png_image(data: bytes) -> np.ndarray:
    """A PNG (e.g. ``element.screenshot_as_png``) as a BGR array."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image
