"""The client's one public exception, translated from ``grpc.RpcError`` at the boundary."""

from __future__ import annotations

import grpc


class ClassifierClientError(Exception):
    """A call to the classification server failed, or the server could not be reached.

    Per-frame problems (a corrupt image, a failed model call) are *not* raised: they come back as
    :class:`~client.Prediction` values with ``error`` set, and the stream goes on.

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.UNAVAILABLE``.
        details: the server's (or gRPC's) explanation.

    Example:
        >>> err = ClassifierClientError(grpc.StatusCode.UNAVAILABLE, "server is down")
        >>> str(err)
        'UNAVAILABLE: server is down'
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, context: str = "") -> ClassifierClientError:
        """Translate a gRPC error; ``context`` (e.g. the address) is prefixed to the details."""
        # Both grpc.Call (sync) and grpc.aio.AioRpcError provide code() and details().
        code_fn = getattr(error, "code", None)
        details_fn = getattr(error, "details", None)
        code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
        details = (details_fn() if callable(details_fn) else None) or str(error)
        if context:
            details = f"{context}: {details}"
        return cls(code or grpc.StatusCode.UNKNOWN, details)


_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


def status_from_code(code: int) -> grpc.StatusCode:
    """The gRPC status for an in-band error code (``FrameError.code``); unknown numbers: UNKNOWN.

    Example:
        >>> status_from_code(3)
        <StatusCode.INVALID_ARGUMENT: (3, 'invalid argument')>
    """
    return _STATUS_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
