"""Plain values passed between the services, the batcher and the model (no protobuf types)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Delivery(enum.IntEnum):
    """How a stream behaves when the server is slower than its frames (wire values)."""

    LIVE = 0
    LOSSLESS = 1


class ProbabilityFormat(enum.IntEnum):
    """How an answer carries the window-averaged probability vector (wire values)."""

    REPEATED = 0  # ClassifyResponse.probabilities, one float per label (the original format)
    PACKED = 1  # ClassifyResponse.probabilities_f32, little-endian float32 bytes
    NONE = 2  # no vector


class Encoding(enum.IntEnum):
    """Frame payload encodings (wire values)."""

    RAW_RGB = 0
    RAW_BGR = 1
    JPEG = 2
    PNG = 3


class StatusCode(enum.IntEnum):
    """The google.rpc codes carried in per-frame errors."""

    INVALID_ARGUMENT = 3
    INTERNAL = 13


@dataclass(frozen=True)
class StreamSettings:
    """A stream's configuration with server defaults already applied."""

    client_id: str
    source: str
    window: int
    delivery: Delivery
    top_k: int
    probabilities: ProbabilityFormat = ProbabilityFormat.REPEATED

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


# The settings of a batcher stream that holds room in the byte budget before it has its own: a
# stream whose StreamConfig is still to be read, an old-API request being read.
UNCONFIGURED = StreamSettings(
    client_id="", source="", window=1, delivery=Delivery.LOSSLESS, top_k=1
)


@dataclass(frozen=True)
class FrameData:
    """One frame as received; decoded and validated later, in a worker thread."""

    seq: int
    encoding: int
    width: int
    height: int
    channels: int
    data: bytes | memoryview
    capture_time_us: int = 0


@dataclass(frozen=True)
class FrameErrorInfo:
    code: StatusCode
    message: str


@dataclass(frozen=True)
class FrameResult:
    """The answer to one frame: the window mean over the stream's recent frames and this frame alone."""

    seq: int
    capture_time_us: int
    dropped_frames: int
    batch_size: int = 0
    queue_us: int = 0
    inference_us: int = 0
    label: str = ""
    score: float = 0.0
    probabilities: np.ndarray | None = field(default=None, compare=False)
    frame_label: str = ""
    frame_score: float = 0.0
    top_k: tuple[tuple[str, float], ...] = ()
    window_frames: int = 0
    error: FrameErrorInfo | None = None
    model_version: str = ""  # the model version that answered (ModelSlot, per batch)


@dataclass(frozen=True)
class ModelDescription:
    """What clients learn from GetModelInfo."""

    labels: tuple[str, ...]
    input_width: int
    input_height: int
    input_channels: int
    model_name: str
    device: str
