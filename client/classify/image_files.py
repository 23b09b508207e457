"""Read image files into frames ready to send: oriented, scaled at decode time, resized."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps

from client._frames import encode_frame
from client._types import EncodedFrame, WireFormat
from client.jpeg import decode_scaled, reduction_for

_JPEG_END = b"\xff\xd9"


def load_image(
    path: Path, size: tuple[int, int], wire_format: WireFormat = "raw", jpeg_quality: int = 90
) -> EncodedFrame:
    """Read, orient and resize one image file, ready to send. Raises on unreadable files.

    Large JPEGs are decoded at a reduced scale (libjpeg's DCT scaling, PIL's ``draft``): the
    largest of 1/8, 1/4, 1/2 that still covers ``size``. Common JPEGs skip PIL's decode path
    (see :func:`_decode_plain_jpeg`) and give the very same pixels for less CPU.

    Raises:
        OSError: the file cannot be read or decoded (see :func:`describe_failure`).
    """
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:  # parses the headers only
        rgb = _decode_plain_jpeg(image, data, size)
        if rgb is None:
            if image.format == "JPEG":
                image.draft(image.mode, size)
            image.load()
            # In place: the default copies every image, turned or not.
            ImageOps.exif_transpose(image, in_place=True)
            return encode_frame(
                image, size=size, wire_format=wire_format, jpeg_quality=jpeg_quality
            )
    return encode_frame(rgb, size=size, wire_format=wire_format, jpeg_quality=jpeg_quality)


def describe_failure(exc: BaseException) -> str:
    """Why a file could not be loaded, in words for the user."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a readable image (unknown or corrupt format)"
    if isinstance(exc, OSError):
        # strerror is set for file-system problems (permission denied, ...); else PIL's decode error
        return exc.strerror.lower() if exc.strerror else f"corrupt image ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _decode_plain_jpeg(image: Image.Image, data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """Decode an ordinary colour JPEG with OpenCV, or return None to leave it to PIL.

    Both run libjpeg-turbo at the same scale, so the pixels are identical; OpenCV does it in one
    C++ call, without PIL's Python-level load loop and its RGBX-to-RGB repacking, so it takes
    less client CPU per image. Anything unusual keeps PIL's
    exact behaviour: grey or CMYK, an EXIF/XMP orientation to apply, or a file that does not end
    with the JPEG end marker (PIL reports a truncated file, OpenCV would decode it anyway).
    """
    if image.format != "JPEG" or image.mode != "RGB" or not data.endswith(_JPEG_END):
        return None
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        return None
    # PIL's draft rule: the largest scale whose result still covers `size` in both directions.
    scale = reduction_for(image.width, image.height, size)
    bgr = decode_scaled(data, scale, keep_orientation=False)
    expected = (-(-image.height // scale), -(-image.width // scale), 3)
    if bgr is None or bgr.dtype != np.uint8 or bgr.shape != expected:
        return None  # PIL decodes it, or raises the error the user sees
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
