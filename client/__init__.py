"""Client library for the Stream Classification server (``streamclassify.v1.StreamClassifier``).

:class:`StreamClient` is blocking (scripts, threads); :class:`AsyncStreamClient` is its
``grpc.aio`` mirror. Both return plain frozen dataclasses and raise one exception,
:class:`ClassifierClientError`. Old code using ``inference_client.sc_client`` switches with
``from client.inference_client import *``. :func:`channel_credentials` builds TLS credentials;
:func:`add_connection_arguments` / :func:`connection_from_args` give every CLI the same TLS, token
and load-balancing flags.

The package imports nothing from the server (``streaming``) or the camera tools.

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
from client._tls import channel_credentials
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
from client.connection_args import (
    ConnectionArguments,
    add_connection_arguments,
    connection_from_args,
)

__all__ = [
    "AsyncStream",
    "AsyncStreamClient",
    "ChannelOrder",
    "ClassifierClientError",
    "ConnectionArguments",
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
    "add_connection_arguments",
    "channel_credentials",
    "connection_from_args",
    "status_from_code",
    "encode_frame",
]
