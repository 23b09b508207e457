from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class server_input(_message.Message):
    __slots__ = ("imgs", "batch", "width", "height", "channel", "data_type", "client_id")
    IMGS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    imgs: bytes
    batch: int
    width: int
    height: int
    channel: int
    data_type: str
    client_id: str
    def __init__(self, imgs: _Optional[bytes] = ..., batch: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channel: _Optional[int] = ..., data_type: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class server_output(_message.Message):
    __slots__ = ("stream_classification", "probabilities", "data_type")
    STREAM_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    stream_classification: bytes
    probabilities: bytes
    data_type: str
    def __init__(self, stream_classification: _Optional[bytes] = ..., probabilities: _Optional[bytes] = ..., data_type: _Optional[str] = ...) -> None: ...
