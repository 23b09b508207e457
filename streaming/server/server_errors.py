"""Exceptions raised by the server package; services translate them to gRPC status codes."""

from __future__ import annotations


class StreamingError(Exception):
    """Base class of the server's errors."""


class ConfigError(StreamingError, ValueError):
    """The server configuration, model or labels are unusable."""


class ModelLoadError(ConfigError):
    """The model file could not be loaded or has an unsupported shape."""


class LabelsError(ConfigError):
    """The labels file is unreadable, unsafe, or does not match the model."""


class FrameRejected(StreamingError, ValueError):
    """The server's refusal of one frame (undecodable, over a limit): answered in-band with
    INVALID_ARGUMENT, and the stream goes on. The client's value for that answer is
    ``client.FrameError``."""


class InferenceError(StreamingError):
    """The model call for a batch failed; every frame of the batch is answered with INTERNAL."""
