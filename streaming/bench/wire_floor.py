"""Row 2's third line: the real wire answered at once, the floor under row 3.

A ``StreamClassifier`` that does only what any server of this protocol must do for a frame:
the server's own parser reads the request (``wire.classify_request_parser``) and the server's
own ``result_to_pb`` builds its answer, sent straight back. No batching, no model, no memory
budget, no scheduling, no metrics; the server's gRPC options (its fixed receive window among
them). The load generator is row 3's (the project's ``AsyncStreamClient``), so

* row 2 (bare echo) against this line is what the protocol and the client library cost, and
* this line against row 3 is what the server does beyond reading and answering each frame.

``python -m streaming.bench.wire_floor PORT NUM_CLASSES WIDTHxHEIGHT`` serves until SIGTERM
(prints ``ready`` when listening).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import numpy as np

from client.api.v1 import stream_classifier_pb2 as pb
from streaming.bench.echo import serve_until_signalled
from streaming.server.grpc_server import grpc_options
from streaming.server.serve_config import ServerConfig
from streaming.server.server_values import FrameData, FrameResult, ProbabilityFormat
from streaming.server.wire import classify_request_parser, result_to_pb

SERVICE = pb.DESCRIPTOR.services_by_name["StreamClassifier"].full_name


def _answer(frame: FrameData, label: str, probabilities: np.ndarray) -> pb.ClassifyResponse:
    score = float(probabilities[0])
    result = FrameResult(
        seq=frame.seq,
        capture_time_us=frame.capture_time_us,
        dropped_frames=0,
        batch_size=1,
        queue_us=0,
        inference_us=0,
        label=label,
        score=score,
        probabilities=probabilities,
        frame_label=label,
        frame_score=score,
        top_k=((label, score),),
        window_frames=1,
    )
    return result_to_pb(result, ProbabilityFormat.NONE)


async def serve(port: int, num_classes: int, size: tuple[int, int]) -> None:
    labels = [f"class_{i}" for i in range(num_classes)]
    probabilities = np.full(num_classes, 1.0 / num_classes, np.float32)
    info = pb.ModelInfo(
        labels=labels,
        input_width=size[0],
        input_height=size[1],
        input_channels=3,
        default_window=1,
        max_batch=1,
        model_name="wire-floor",
        device="none",
    )

    async def classify(
        requests: AsyncIterator[object], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyResponse]:
        async for request in requests:
            if isinstance(request, FrameData):  # the StreamConfig is read and ignored
                yield _answer(request, labels[0], probabilities)

    async def model_info(request: object, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        return info

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Classify": grpc.stream_stream_rpc_method_handler(
                classify,
                request_deserializer=classify_request_parser(),
                response_serializer=pb.ClassifyResponse.SerializeToString,
            ),
            "GetModelInfo": grpc.unary_unary_rpc_method_handler(
                model_info,
                request_deserializer=pb.GetModelInfoRequest.FromString,
                response_serializer=pb.ModelInfo.SerializeToString,
            ),
        },
    )
    server = grpc.aio.server(options=grpc_options(ServerConfig()))
    server.add_generic_rpc_handlers((handler,))
    await serve_until_signalled(server, port)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    width, height = (int(v) for v in args[2].split("x"))
    asyncio.run(serve(int(args[0]), int(args[1]), (width, height)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
