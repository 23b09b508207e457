"""Reduced-scale JPEG decoding, shared by the client (``classify``) and the server.

libjpeg can decode a JPEG at 1/2, 1/4 or 1/8 of its size while decoding (DCT scaling): less
work and memory when the image is about to be shrunk to a model's input anyway.

Example:
    >>> reduction_for(1920, 1080, (224, 224))
    4
    >>> reduction_for(300, 300, (224, 224))
    1
"""

from __future__ import annotations

import cv2
import numpy as np

# (factor, colour flag, grey flag), largest reduction first.
_SCALED = (
    (8, cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
    (1, cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE),
)


def reduction_for(width: int, height: int, target_size: tuple[int, int]) -> int:
    """The largest reduction (1, 2, 4 or 8) of a ``width x height`` JPEG that still covers
    ``target_size`` (width, height) in both directions: PIL's ``draft`` rule."""
    target_width, target_height = target_size
    for factor, _, _ in _SCALED:
        if width // factor >= target_width and height // factor >= target_height:
            return factor
    return 1


def decode_scaled(
    data: bytes | memoryview, factor: int = 1, *, grey: bool = False, keep_orientation: bool = True
) -> np.ndarray | None:
    """Decode an image with OpenCV, a JPEG at ``1/factor`` of its size (other formats in full).

    Args:
        factor: 1, 2, 4 or 8 (see ``reduction_for``).
        grey: decode to one channel (``height x width``) instead of BGR (``height x width x 3``).
        keep_orientation: apply the EXIF orientation (OpenCV's default); ``False`` ignores it.

    Returns:
        The pixels, or ``None`` when OpenCV cannot decode the data.

    Raises:
        ValueError: ``factor`` is not 1, 2, 4 or 8.
        cv2.error: OpenCV refused the data outright.
    """
    for scale, colour_flag, grey_flag in _SCALED:
        if scale == factor:
            flags = grey_flag if grey else colour_flag
            if not keep_orientation:
                flags |= cv2.IMREAD_IGNORE_ORIENTATION
            return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    raise ValueError(f"a JPEG decodes at 1/1, 1/2, 1/4 or 1/8 of its size, not 1/{factor}")
