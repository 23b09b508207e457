"""Frame validation and decoding to RGB uint8 arrays. Runs in worker threads (OpenCV releases the GIL).

JPEG and PNG headers are read before anything is decoded: a 100 KB PNG can declare a
30000×30000 image, and decoding it first would cost gigabytes before any size check.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from client import jpeg
from streaming.server.serve_config import DEFAULT_MAX_FRAME_PIXELS
from streaming.server.server_errors import FrameRejected
from streaming.server.server_values import Encoding, FrameData

_RAW = (Encoding.RAW_RGB, Encoding.RAW_BGR)
_ENCODED = (Encoding.JPEG, Encoding.PNG)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


@dataclass(frozen=True)
class ImageHeader:
    """What a JPEG or PNG declares about itself, read without decoding it."""

    encoding: Encoding
    width: int
    height: int


def read_header(data: bytes | memoryview) -> ImageHeader:
    """The format and declared size of JPEG or PNG ``data``, judged by its content.

    Raises:
        FrameRejected: the data is neither a JPEG nor a PNG, or its header is cut short.
    """
    head = bytes(data[:8])
    if head.startswith(_PNG_SIGNATURE):
        # The IHDR chunk must come first: length, type, then width and height (big-endian).
        if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
            raise FrameRejected("PNG data without an IHDR header")
        width, height = struct.unpack(">II", bytes(data[16:24]))
        return ImageHeader(Encoding.PNG, width, height)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_header(data)
    raise FrameRejected("the data is neither a JPEG nor a PNG image")


def _jpeg_header(data: bytes | memoryview) -> ImageHeader:
    view = memoryview(data)
    size = len(view)
    position = 2
    while position + 4 <= size:
        if view[position] != 0xFF:
            raise FrameRejected(f"JPEG data is corrupt at byte {position} (no marker)")
        marker = view[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        length = (view[position + 2] << 8) | view[position + 3]
        if marker in _JPEG_SOF:
            if position + 9 > size:
                break
            height = (view[position + 5] << 8) | view[position + 6]
            width = (view[position + 7] << 8) | view[position + 8]
            return ImageHeader(Encoding.JPEG, width, height)
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        position += 2 + length
    raise FrameRejected("JPEG data without a frame header (SOF)")


def _check_size(seq: int, width: int, height: int, max_side: int, max_pixels: int) -> None:
    if width == 0 or height == 0:
        raise FrameRejected(f"frame {seq}: width and height must be > 0, got {width}x{height}")
    if width > max_side or height > max_side:
        raise FrameRejected(
            f"frame {seq}: {width}x{height} exceeds the largest side of {max_side} pixels"
        )
    if width * height > max_pixels:
        raise FrameRejected(
            f"frame {seq}: {width}x{height} exceeds the largest frame of {max_pixels} pixels"
        )


def check_frame(
    frame: FrameData, max_side: int, max_pixels: int = DEFAULT_MAX_FRAME_PIXELS
) -> ImageHeader | None:
    """Cheap checks that need no decoding: sizes, and for JPEG/PNG the declared size.

    Returns:
        The JPEG/PNG header (``None`` for RAW frames), for ``decode_frame`` to reuse.

    Raises:
        FrameRejected: with a message naming the problem; the frame is never decoded.
    """
    if frame.encoding in _RAW:
        _check_size(frame.seq, frame.width, frame.height, max_side, max_pixels)
        if frame.channels not in (1, 3):
            raise FrameRejected(
                f"frame {frame.seq}: unsupported channel count {frame.channels} (RAW frames need 1 or 3)"
            )
        expected = frame.width * frame.height * frame.channels
        if len(frame.data) != expected:
            raise FrameRejected(
                f"frame {frame.seq}: data is {len(frame.data)} bytes but {frame.height}x{frame.width}x"
                f"{frame.channels} needs {expected}"
            )
        return None
    if frame.encoding not in _ENCODED:
        raise FrameRejected(f"frame {frame.seq}: unsupported encoding {frame.encoding}")
    name = Encoding(frame.encoding).name
    if not frame.data:
        raise FrameRejected(f"frame {frame.seq}: empty {name} data")
    try:
        header = read_header(frame.data)
    except FrameRejected as exc:
        raise FrameRejected(f"frame {frame.seq}: cannot decode {name} data: {exc}") from None
    if header.encoding != frame.encoding:
        # OpenCV would decode any format it knows; only the declared one is accepted.
        raise FrameRejected(
            f"frame {frame.seq}: declared {name} but the data is {header.encoding.name}"
        )
    _check_size(frame.seq, header.width, header.height, max_side, max_pixels)
    return header


def reduction_for(header: ImageHeader, target_size: tuple[int, int] | None) -> int:
    """The largest JPEG DCT reduction (1, 2, 4 or 8) that still covers ``target_size`` (w, h).

    Example:
        >>> reduction_for(ImageHeader(Encoding.JPEG, 1920, 1080), (224, 224))
        4
    """
    if target_size is None or header.encoding != Encoding.JPEG:
        return 1
    return jpeg.reduction_for(header.width, header.height, target_size)


def decode_frame(
    frame: FrameData,
    channels: int,
    max_side: int,
    *,
    max_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    target_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode a frame to ``height x width x channels`` uint8 RGB (or grey for 1 channel).

    The frame is checked first (``check_frame``), so nothing over the limits is decoded.
    A JPEG larger than ``target_size`` (the model input, width x height) is decoded at a
    reduced DCT scale that still covers it: less work and memory, and the model resizes anyway.

    Raises:
        FrameRejected: the data cannot be decoded or is too large.
    """
    header = check_frame(frame, max_side, max_pixels)
    if header is None:
        image = np.frombuffer(frame.data, dtype=np.uint8).reshape(
            frame.height, frame.width, frame.channels
        )
        if frame.channels == 1:
            return image if channels == 1 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if frame.encoding == Encoding.RAW_BGR:
            if channels == 1:
                return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return image if channels == 3 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]

    name = header.encoding.name
    try:
        # The reduced-scale decoder is the client's (one implementation); the checks are here.
        decoded = jpeg.decode_scaled(
            frame.data, reduction_for(header, target_size), grey=channels == 1
        )
    except cv2.error as exc:
        raise FrameRejected(
            f"frame {frame.seq}: cannot decode {name} data: {exc.msg.strip()}"
        ) from exc
    if decoded is None:
        raise FrameRejected(
            f"frame {frame.seq}: cannot decode {name} data ({len(frame.data)} bytes)"
        )
    height, width = decoded.shape[:2]
    # The decoder may disagree with the header it was given (a crafted file): check again.
    if width > max_side or height > max_side or width * height > max_pixels:
        raise FrameRejected(f"frame {frame.seq}: decoded {width}x{height} exceeds the frame limits")
    if channels == 1:
        return decoded[:, :, None]
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
