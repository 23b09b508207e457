"""Frame validation and decoding to RGB uint8 arrays. Runs in worker threads (OpenCV releases the GIL)."""

from __future__ import annotations

import cv2
import numpy as np

from streaming.errors import FrameError
from streaming.values import Encoding, FrameData

_RAW = (Encoding.RAW_RGB, Encoding.RAW_BGR)
_ENCODED = (Encoding.JPEG, Encoding.PNG)


def check_frame(frame: FrameData, max_side: int) -> None:
    """Cheap checks that need no decoding, done when the frame arrives.

    Raises:
        FrameError: with a message naming the problem.
    """
    if frame.encoding in _RAW:
        if frame.width == 0 or frame.height == 0:
            raise FrameError(
                f"frame {frame.seq}: width and height must be > 0, got {frame.width}x{frame.height}"
            )
        if frame.width > max_side or frame.height > max_side:
            raise FrameError(
                f"frame {frame.seq}: {frame.width}x{frame.height} exceeds the largest side of {max_side} pixels"
            )
        if frame.channels not in (1, 3):
            raise FrameError(
                f"frame {frame.seq}: unsupported channel count {frame.channels} (RAW frames need 1 or 3)"
            )
        expected = frame.width * frame.height * frame.channels
        if len(frame.data) != expected:
            raise FrameError(
                f"frame {frame.seq}: data is {len(frame.data)} bytes but {frame.height}x{frame.width}x"
                f"{frame.channels} needs {expected}"
            )
    elif frame.encoding in _ENCODED:
        if not frame.data:
            raise FrameError(f"frame {frame.seq}: empty {Encoding(frame.encoding).name} data")
    else:
        raise FrameError(f"frame {frame.seq}: unsupported encoding {frame.encoding}")


def decode_frame(frame: FrameData, channels: int, max_side: int) -> np.ndarray:
    """Decode a checked frame to ``height x width x channels`` uint8 RGB (or grey for 1 channel).

    Raises:
        FrameError: the data cannot be decoded or is too large.
    """
    if frame.encoding in _RAW:
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

    buffer = np.frombuffer(frame.data, dtype=np.uint8)
    name = Encoding(frame.encoding).name
    try:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise FrameError(
            f"frame {frame.seq}: cannot decode {name} data: {exc.msg.strip()}"
        ) from exc
    if decoded is None:
        raise FrameError(f"frame {frame.seq}: cannot decode {name} data ({len(frame.data)} bytes)")
    height, width = decoded.shape[:2]
    if width > max_side or height > max_side:
        raise FrameError(
            f"frame {frame.seq}: decoded {width}x{height} exceeds the largest side of {max_side} pixels"
        )
    if channels == 1:
        return decoded[:, :, None]
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
