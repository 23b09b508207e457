"""Client library for the Stream Classification server (``streamclassify.v1.StreamClassifier``).

:class:`StreamClient` is blocking (scripts, threads); :class:`AsyncStreamClient` is its
``grpc.aio`` mirror. Both return plain frozen dataclasses and raise one exception,
:class:`ClassifierClientError`. Old code using ``inference_client.sc_client`` switches with
``from client.inference_client import *``.

Example:
    >>> from client import StreamClient
    >>> with StreamClient("127.0.0.1:1234") as client:  # doctest: +SKIP
    ...     print(client.classify([Image.open("cat.jpg")])[0].label)
"""

from __future__ import annotations

from client._aio import AsyncStream, AsyncStreamClient
from client._errors import ClassifierClientError, status_from_code
from client._frames import ImageLike, encode_frame
from client._sync import Stream, StreamClient
from client._types import (
    ChannelOrder,
    Delivery,
    EncodedFrame,
    Encoding,
    FrameError,
    ModelInfo,
    Prediction,
    ScoredLabel,
    StreamOptions,
    WireFormat,
)

__all__ = [
    "AsyncStream",
    "AsyncStreamClient",
    "ChannelOrder",
    "ClassifierClientError",
    "Delivery",
    "EncodedFrame",
    "Encoding",
    "FrameError",
    "ImageLike",
    "ModelInfo",
    "Prediction",
    "ScoredLabel",
    "Stream",
    "StreamClient",
    "StreamOptions",
    "WireFormat",
    "status_from_code",
    "encode_frame",
]
