from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProbabilityFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBABILITIES_REPEATED: _ClassVar[ProbabilityFormat]
    PROBABILITIES_PACKED: _ClassVar[ProbabilityFormat]
    PROBABILITIES_NONE: _ClassVar[ProbabilityFormat]

class DeliveryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_MODE_LIVE: _ClassVar[DeliveryMode]
    DELIVERY_MODE_LOSSLESS: _ClassVar[DeliveryMode]

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_RAW_RGB: _ClassVar[Encoding]
    ENCODING_RAW_BGR: _ClassVar[Encoding]
    ENCODING_JPEG: _ClassVar[Encoding]
    ENCODING_PNG: _ClassVar[Encoding]
PROBABILITIES_REPEATED: ProbabilityFormat
PROBABILITIES_PACKED: ProbabilityFormat
PROBABILITIES_NONE: ProbabilityFormat
DELIVERY_MODE_LIVE: DeliveryMode
DELIVERY_MODE_LOSSLESS: DeliveryMode
ENCODING_RAW_RGB: Encoding
ENCODING_RAW_BGR: Encoding
ENCODING_JPEG: Encoding
ENCODING_PNG: Encoding

class ClassifyRequest(_message.Message):
    __slots__ = ("config", "frame")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    frame: Frame
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("client_id", "source", "window", "delivery", "top_k", "probabilities")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    source: str
    window: int
    delivery: DeliveryMode
    top_k: int
    probabilities: ProbabilityFormat
    def __init__(self, client_id: _Optional[str] = ..., source: _Optional[str] = ..., window: _Optional[int] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ..., top_k: _Optional[int] = ..., probabilities: _Optional[_Union[ProbabilityFormat, str]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("seq", "encoding", "width", "height", "channels", "data", "capture_time_us")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    seq: int
    encoding: Encoding
    width: int
    height: int
    channels: int
    data: bytes
    capture_time_us: int
    def __init__(self, seq: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., data: _Optional[bytes] = ..., capture_time_us: _Optional[int] = ...) -> None: ...

class ScoredLabel(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("seq", "label", "score", "probabilities", "frame_label", "frame_score", "top_k", "window_frames", "dropped_frames", "batch_size", "queue_us", "inference_us", "capture_time_us", "error", "probabilities_f32", "model_version")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    FRAME_LABEL_FIELD_NUMBER: _ClassVar[int]
    FRAME_SCORE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FRAMES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_US_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_F32_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    seq: int
    label: str
    score: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    frame_label: str
    frame_score: float
    top_k: _containers.RepeatedCompositeFieldContainer[ScoredLabel]
    window_frames: int
    dropped_frames: int
    batch_size: int
    queue_us: int
    inference_us: int
    capture_time_us: int
    error: FrameError
    probabilities_f32: bytes
    model_version: str
    def __init__(self, seq: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ..., frame_label: _Optional[str] = ..., frame_score: _Optional[float] = ..., top_k: _Optional[_Iterable[_Union[ScoredLabel, _Mapping]]] = ..., window_frames: _Optional[int] = ..., dropped_frames: _Optional[int] = ..., batch_size: _Optional[int] = ..., queue_us: _Optional[int] = ..., inference_us: _Optional[int] = ..., capture_time_us: _Optional[int] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., probabilities_f32: _Optional[bytes] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("labels", "input_width", "input_height", "input_channels", "default_window", "max_batch", "model_name", "device", "model_version", "model_versions_available")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    input_width: int
    input_height: int
    input_channels: int
    default_window: int
    max_batch: int
    model_name: str
    device: str
    model_version: str
    model_versions_available: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., input_width: _Optional[int] = ..., input_height: _Optional[int] = ..., input_channels: _Optional[int] = ..., default_window: _Optional[int] = ..., max_batch: _Optional[int] = ..., model_name: _Optional[str] = ..., device: _Optional[str] = ..., model_version: _Optional[str] = ..., model_versions_available: _Optional[_Iterable[str]] = ...) -> None: ...
