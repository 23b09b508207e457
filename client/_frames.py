"""Turn numpy arrays, PIL images and encoded bytes into frames for the wire (no gRPC here)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from client._types import ChannelOrder, EncodedFrame, Encoding, WireFormat
from client.resize import resize_to

ImageLike = np.ndarray | Image.Image | bytes | bytearray | memoryview | EncodedFrame
"""Anything ``send`` accepts: a uint8 array (H×W, H×W×1, H×W×3, H×W×4), a PIL image of any
mode, JPEG/PNG bytes, or an :class:`EncodedFrame`."""

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GREY_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "F"})


def encode_frame(
    image: ImageLike,
    *,
    size: tuple[int, int] | None = None,
    channel_order: ChannelOrder = "rgb",
    wire_format: WireFormat = "raw",
    jpeg_quality: int = 90,
) -> EncodedFrame:
    """Prepare one image for sending: convert, resize and encode it.

    Args:
        image: a uint8 numpy array, a PIL image, JPEG/PNG bytes or an already encoded frame.
            Encoded bytes and :class:`EncodedFrame` pass through unchanged (the server decodes
            and resizes them).
        size: ``(width, height)`` to resize to (usually ``ModelInfo.input_size``); ``None``
            keeps the size.
        channel_order: the order of a 3- or 4-channel numpy array (PIL images are always RGB).
        wire_format: ``"raw"`` pixels or ``"jpeg"``.
        jpeg_quality: 1–100, for ``wire_format="jpeg"``.

    Returns:
        The frame, ready for ``Stream.send``.

    Raises:
        ValueError: the image is not something a frame can be made of.

    Example:
        >>> frame = encode_frame(np.zeros((480, 640, 3), np.uint8), size=(224, 224))
        >>> (frame.encoding.name, frame.width, frame.height, len(frame.data))
        ('RAW_RGB', 224, 224, 150528)
    """
    if isinstance(image, EncodedFrame):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _encoded_bytes(bytes(image))
    check_encoding_options(channel_order, wire_format, jpeg_quality)

    if isinstance(image, Image.Image):
        pixels, order = _from_pil(image), "rgb"
    elif isinstance(image, np.ndarray):
        pixels, order = _from_array(image), channel_order
    else:
        raise ValueError(
            f"cannot make a frame of {type(image).__name__}: pass a numpy array, a PIL image or bytes"
        )

    if size is not None:
        pixels = _resize(pixels, size)
    height, width, channels = pixels.shape
    if wire_format == "jpeg":
        bgr = (
            cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if channels == 3 and order == "rgb" else pixels
        )
        ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:  # pragma: no cover - OpenCV fails only on impossible shapes
            raise ValueError(f"OpenCV could not JPEG-encode a {width}x{height}x{channels} frame")
        return EncodedFrame(Encoding.JPEG, buffer.tobytes())
    encoding = Encoding.RAW_BGR if order == "bgr" and channels == 3 else Encoding.RAW_RGB
    return EncodedFrame(encoding, pixels.tobytes(), width, height, channels)


def check_encoding_options(
    channel_order: ChannelOrder, wire_format: WireFormat, jpeg_quality: int
) -> None:
    """Raise ``ValueError`` for an option :func:`encode_frame` cannot honour."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if wire_format not in ("raw", "jpeg"):
        raise ValueError(f"wire_format must be 'raw' or 'jpeg', got {wire_format!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")


def _encoded_bytes(data: bytes) -> EncodedFrame:
    if data.startswith(_JPEG_MAGIC):
        return EncodedFrame(Encoding.JPEG, data)
    if data.startswith(_PNG_MAGIC):
        return EncodedFrame(Encoding.PNG, data)
    raise ValueError(
        f"bytes are neither JPEG nor PNG (starting {data[:8]!r}); pass pixels as a numpy array"
    )


def _from_pil(image: Image.Image) -> np.ndarray:
    if image.mode in _GREY_MODES:
        grey = image if image.mode == "L" else image.convert("L")
        return np.asarray(grey, dtype=np.uint8)[:, :, None]
    if image.mode != "RGB":
        # P and PA may carry transparency that PIL only converts cleanly (and silently) via RGBA.
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ValueError(
            f"numpy frames must be uint8, got {array.dtype} (scale floats to 0..255 first)"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"numpy frames must be HxW or HxWxC with C in 1, 3, 4; got shape {array.shape}"
        )
    if min(array.shape[:2]) < 1:
        raise ValueError(f"empty frame of shape {array.shape}")
    if array.shape[2] == 4:
        array = array[:, :, :3]  # alpha is dropped; the order of the other three is kept
    return np.ascontiguousarray(array)


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"resize target must be positive, got {size}")
    return resize_to(pixels, width, height)
