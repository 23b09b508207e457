"""Public values of the client: plain frozen dataclasses and enums, no protobuf types."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ChannelOrder = Literal["rgb", "bgr"]
"""Channel order of 3-channel numpy frames: ``"bgr"`` for OpenCV frames, ``"rgb"`` for PIL/imageio."""

WireFormat = Literal["raw", "jpeg"]
"""How frames travel: ``"raw"`` pixels (cheap CPU, more bytes) or ``"jpeg"`` (fewer bytes)."""


class Delivery(enum.IntEnum):
    """What the server does when a stream sends faster than it can be classified.

    ``LIVE`` keeps only the newest pending frame and drops older ones (no answer is sent for a
    dropped frame; ``Prediction.dropped_frames`` counts them). ``LOSSLESS`` answers every frame in
    order and slows the sender down through flow control.
    """

    LIVE = 0
    LOSSLESS = 1


class Encoding(enum.IntEnum):
    """Payload encoding of a frame on the wire."""

    RAW_RGB = 0
    RAW_BGR = 1
    JPEG = 2
    PNG = 3


@dataclass(frozen=True)
class ModelInfo:
    """What the server's model expects and returns (from ``GetModelInfo``).

    Example:
        >>> info = ModelInfo(labels=("cat", "dog"), input_width=64, input_height=48)
        >>> info.input_size
        (64, 48)
    """

    labels: tuple[str, ...]
    input_width: int
    input_height: int
    input_channels: int = 3
    default_window: int = 0
    max_batch: int = 0
    model_name: str = ""
    device: str = ""
    # The version served when this was asked, and the versions the server could serve
    # (``serve --model-dir``); empty from servers older than model versions.
    model_version: str = ""
    model_versions_available: tuple[str, ...] = ()

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` the model classifies; frames are resized to it by default."""
        return (self.input_width, self.input_height)


@dataclass(frozen=True)
class ScoredLabel:
    """One label with its probability."""

    label: str
    score: float


@dataclass(frozen=True)
class FrameError:
    """Why one frame got no prediction (a value carried in a :class:`Prediction`, not an exception).

    Attributes:
        code: a google.rpc code: 3 (INVALID_ARGUMENT) for a bad frame, 13 (INTERNAL) for a failed
            model call.
        message: the server's explanation.
    """

    code: int
    message: str


NO_PROBABILITIES = np.zeros(0, np.float32)
NO_PROBABILITIES.flags.writeable = False


@dataclass(frozen=True)
class Prediction:
    """The server's answer to one frame.

    Attributes:
        seq: the frame's sequence number, as returned by ``send``.
        label, score: the prediction averaged over the stream's last ``window_frames`` frames.
        probabilities: the window-averaged probabilities, in ``ModelInfo.labels`` order, as a
            read-only float32 numpy array; empty when the stream was opened with
            ``probabilities=False`` or the frame has an error. Not part of ``==`` or ``hash``.
        frame_label, frame_score: this frame alone.
        top_k: the best window-averaged labels, best first.
        window_frames: frames in the average (fewer than the window at a stream's start).
        dropped_frames: frames of this stream dropped so far (LIVE delivery only).
        batch_size, queue_us, inference_us: how the server served the frame.
        capture_time_us: echoed from the frame.
        error: set when the frame could not be classified; the other fields are then empty.
        model_version: the server's model version that computed this answer (it changes
            when the server swaps in a new version; ``""`` from older servers).

    Example:
        >>> p = Prediction(seq=0, label="cat", score=0.9)
        >>> p.ok
        True
    """

    seq: int
    label: str = ""
    score: float = 0.0
    # An array, not a tuple: 1,000 Python floats per answer cost more CPU than the rest of it.
    probabilities: np.ndarray = field(default_factory=lambda: NO_PROBABILITIES, compare=False)
    frame_label: str = ""
    frame_score: float = 0.0
    top_k: tuple[ScoredLabel, ...] = ()
    window_frames: int = 0
    dropped_frames: int = 0
    batch_size: int = 0
    queue_us: int = 0
    inference_us: int = 0
    capture_time_us: int = 0
    error: FrameError | None = None
    model_version: str = ""

    @property
    def ok(self) -> bool:
        """True when the frame was classified."""
        return self.error is None


@dataclass(frozen=True)
class EncodedFrame:
    """A frame ready for the wire: see :func:`client.encode_frame`.

    Attributes:
        encoding: the payload encoding.
        data: the payload; for RAW encodings ``height x width x channels`` uint8 pixels.
        width, height, channels: the RAW dimensions (0 for JPEG/PNG, the server decodes them).
    """

    encoding: Encoding
    data: bytes
    width: int = 0
    height: int = 0
    channels: int = 0

    def __post_init__(self) -> None:
        if self.encoding in (Encoding.RAW_RGB, Encoding.RAW_BGR):
            if self.channels not in (1, 3):
                raise ValueError(f"RAW frames need 1 or 3 channels, got {self.channels}")
            if len(self.data) != self.width * self.height * self.channels:
                raise ValueError(
                    f"RAW data is {len(self.data)} bytes, {self.height}x{self.width}x{self.channels} needs "
                    f"{self.width * self.height * self.channels}"
                )
        elif not self.data:
            raise ValueError(f"empty {self.encoding.name} frame")


@dataclass(frozen=True)
class StreamOptions:
    """How a stream is opened; the server applies its defaults to zero values.

    Attributes:
        source: a name for the video source, e.g. ``"cam0"`` (shown in server logs).
        window: frames averaged per prediction; 0 means the server default.
        delivery: LIVE (drop stale frames) or LOSSLESS (answer every frame).
        top_k: labels in ``Prediction.top_k``; 0 means the server default.
        client_id: identifies this client to the server.
        probabilities: ask for the probability vector (``Prediction.probabilities``); without it
            answers are smaller and cheaper for both sides.
    """

    source: str = ""
    window: int = 0
    delivery: Delivery = Delivery.LOSSLESS
    top_k: int = 0
    client_id: str = ""
    probabilities: bool = True

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ValueError(f"window must be >= 0 (0 = server default), got {self.window}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = server default), got {self.top_k}")
        if not isinstance(self.delivery, Delivery):
            object.__setattr__(self, "delivery", Delivery(self.delivery))
