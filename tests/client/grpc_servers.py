"""Real grpc.aio test servers for connection tests: TLS, a token-checking interceptor.

Shared by the client's connection tests and the watch command's (``tests/camera_tools``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from tests.tls_material import TlsMaterial

from .flavours import LoopThread


class AnsweringServicer(pb_grpc.StreamClassifierServicer):
    """Answers every frame with label "ok": enough to see frames cross a TLS channel."""

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        return pb.ModelInfo(labels=["ok"], input_width=8, input_height=8, input_channels=3)

    async def Classify(
        self,
        request_iterator: AsyncIterator[pb.ClassifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ClassifyResponse]:
        async for request in request_iterator:
            if request.HasField("frame"):
                yield pb.ClassifyResponse(
                    seq=request.frame.seq, label="ok", score=1.0, frame_label="ok", window_frames=1
                )


async def _deny_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing token")


async def _deny_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing token")
    yield  # pragma: no cover - makes this an async generator, as a streaming handler must be


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Records each call's ``authorization`` metadata; refuses calls without ``required``."""

    def __init__(self, required: str | None = None) -> None:
        self.required = required
        self.seen: list[tuple[str, str | None]] = []

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = dict(handler_call_details.invocation_metadata or ())
        authorization = metadata.get("authorization")
        self.seen.append((handler_call_details.method.rsplit("/", 1)[-1], authorization))
        handler = await continuation(handler_call_details)
        if self.required is None or authorization == f"Bearer {self.required}":
            return handler
        if handler.request_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny_stream)
        return grpc.unary_unary_rpc_method_handler(_deny_unary)


@contextmanager
def aio_server(
    *,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (),
) -> Iterator[str]:
    """A real grpc.aio server on 127.0.0.1:0 in a thread of its own; yields its address."""
    loop = LoopThread()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(interceptors=interceptors)
        pb_grpc.add_StreamClassifierServicer_to_server(AnsweringServicer(), server)
        if credentials is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        return server, port

    server, port = loop.run(start())
    try:
        yield f"127.0.0.1:{port}"
    finally:
        loop.run(server.stop(0))
        loop.stop()


def server_credentials(tls: TlsMaterial, *, mutual: bool) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(tls.server.key.read_bytes(), tls.server.cert.read_bytes())],
        root_certificates=tls.ca.read_bytes() if mutual else None,
        require_client_auth=mutual,
    )
