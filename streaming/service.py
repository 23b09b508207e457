"""gRPC servicers: the streaming API and the old unary ``sc_service`` API, both over one batcher."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.batcher import Batcher, ServerDraining, TooManyStreams
from streaming.config import ServerConfig
from streaming.convert import frame_from_pb, model_info_to_pb, result_to_pb, settings_from_pb
from streaming.errors import FrameError
from streaming.metrics import ServerMetrics
from streaming.stream_state import StreamState
from streaming.values import (
    Delivery,
    Encoding,
    FrameData,
    ModelDescription,
    StatusCode,
    StreamSettings,
)

logger = logging.getLogger(__name__)


async def _open(
    batcher: Batcher, settings: StreamSettings, context: grpc.aio.ServicerContext
) -> StreamState:
    try:
        return batcher.open_stream(settings)
    except ServerDraining as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    except TooManyStreams as exc:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    raise AssertionError("unreachable: abort raises")


class StreamClassifierService(pb_grpc.StreamClassifierServicer):
    """``streamclassify.v1.StreamClassifier``: one bidi stream per video source."""

    def __init__(
        self,
        batcher: Batcher,
        description: ModelDescription,
        config: ServerConfig,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._batcher = batcher
        self._config = config
        self._metrics = metrics or ServerMetrics()
        self._num_labels = len(description.labels)
        self._info = model_info_to_pb(
            description, default_window=config.window, max_batch=config.max_batch
        )
        self._readers: dict[StreamState, asyncio.Task[str | None]] = {}

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        return self._info

    async def Classify(
        self, request_iterator: AsyncIterator[pb.ClassifyRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "config":
            got = "a Frame" if first.HasField("frame") else "an empty request"
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first message of a Classify stream must be a StreamConfig, got {got}",
            )
        try:
            settings = settings_from_pb(
                first.config,
                default_window=self._config.window,
                default_top_k=self._config.top_k,
                num_labels=self._num_labels,
            )
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad StreamConfig: {exc}")
        stream = await _open(self._batcher, settings, context)
        self._metrics.stream_opened()
        logger.info(
            "stream %d opened: client=%r source=%r window=%d delivery=%s probabilities=%s",
            stream.id,
            settings.client_id,
            settings.source,
            settings.window,
            settings.delivery.name,
            settings.probabilities.name,
        )
        reader = asyncio.create_task(
            self._read(request_iterator, stream), name=f"sc-reader-{stream.id}"
        )
        self._readers[stream] = reader
        answered = 0
        try:
            while (result := await stream.next_result()) is not None:
                yield result_to_pb(result, settings.probabilities)
                answered += 1
            violation = reader.result() if reader.done() and not reader.cancelled() else None
            if violation:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, violation)
        finally:
            reader.cancel()
            self._readers.pop(stream, None)
            self._batcher.close_stream(stream)
            self._metrics.stream_closed()
            logger.info(
                "stream %d closed: %d answered, %d dropped", stream.id, answered, stream.dropped
            )

    async def _read(
        self, requests: AsyncIterator[pb.ClassifyRequest], stream: StreamState
    ) -> str | None:
        """Feed frames to the batcher; returns a protocol violation message, if any."""
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind != "frame":
                    message = (
                        "a stream takes exactly one StreamConfig, as its first message; got a second one"
                        if kind == "config"
                        else "a request must carry a StreamConfig or a Frame; got an empty one"
                    )
                    self._batcher.close_stream(stream)
                    return message
                await self._batcher.submit(stream, frame_from_pb(request.frame))
        finally:
            stream.finish_input()
        return None

    def drain(self) -> None:
        """Stop reading every stream; the frames already received are still answered."""
        for reader in self._readers.values():
            reader.cancel()


@dataclass
class _LegacyClient:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    windows: list[StreamState] = field(default_factory=list)
    last_used: float = 0.0
    seq: int = 0


class LegacyInferenceService(sc_service_pb2_grpc.sc_serviceServicer):
    """The old unary API: a batch of RGB images per call, one window per (client id, position)."""

    def __init__(self, batcher: Batcher, config: ServerConfig) -> None:
        self._batcher = batcher
        self._config = config
        self._clients: dict[str, _LegacyClient] = {}

    async def inference(
        self, request: sc_service_pb2.server_input, context: grpc.aio.ServicerContext
    ) -> sc_service_pb2.server_output:
        try:
            images = legacy_images(request, self._config.max_frame_side)
        except FrameError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._forget_idle()
        client = self._clients.setdefault(request.client_id, _LegacyClient())
        async with client.lock:
            client.last_used = time.monotonic()
            try:
                while len(client.windows) < len(images):
                    settings = StreamSettings(
                        client_id=request.client_id,
                        source=f"legacy:{len(client.windows)}",
                        window=self._config.window,
                        delivery=Delivery.LOSSLESS,
                        top_k=1,
                    )
                    client.windows.append(self._batcher.open_stream(settings))
            except ServerDraining as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except TooManyStreams as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            client.seq += 1
            windows = client.windows[: len(images)]
            for stream, image in zip(windows, images, strict=True):
                height, width, channels = image.shape
                frame = FrameData(
                    client.seq, Encoding.RAW_RGB, width, height, channels, image.reshape(-1).data
                )
                await self._batcher.submit(stream, frame)
            results = [await stream.next_result() for stream in windows]
        labels: list[str] = []
        scores: list[float] = []
        for position, result in enumerate(results):
            if result is None:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "the server stopped before answering"
                )
                return sc_service_pb2.server_output()  # not reached: abort raises
            if result.error is not None:
                code = (
                    grpc.StatusCode.INVALID_ARGUMENT
                    if result.error.code == StatusCode.INVALID_ARGUMENT
                    else grpc.StatusCode.INTERNAL
                )
                await context.abort(code, f"image {position}: {result.error.message}")
            labels.append(result.label)
            scores.append(result.score)
        # The old client decodes labels as '<U1' characters and scores with the sent dtype.
        probabilities = np.asarray(scores, dtype=np.float32).reshape(-1, 1)
        return sc_service_pb2.server_output(
            stream_classification=np.asarray(
                labels, dtype=f"<U{max(1, *map(len, labels))}"
            ).tobytes(),
            probabilities=probabilities.tobytes(),
            data_type="float32",
        )

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - self._config.legacy_idle_s
        for client_id in [
            k for k, c in self._clients.items() if c.last_used < cutoff and not c.lock.locked()
        ]:
            for stream in self._clients.pop(client_id).windows:
                self._batcher.close_stream(stream)

    def close(self) -> None:
        for client in self._clients.values():
            for stream in client.windows:
                self._batcher.close_stream(stream)
        self._clients.clear()


def legacy_images(request: sc_service_pb2.server_input, max_side: int) -> list[np.ndarray]:
    """Rebuild the old client's ``np.stack`` of RGB images (shape batch, width, height, channel).

    The old client put the array's shape in that order, so "width" carries the rows.
    """
    dims = (request.batch, request.width, request.height, request.channel)
    if min(dims) <= 0:
        raise FrameError(f"batch, width, height and channel must be > 0, got {dims}")
    if max(request.width, request.height) > max_side:
        raise FrameError(
            f"images of {request.width}x{request.height} exceed the largest side of {max_side} pixels"
        )
    if request.channel not in (1, 3, 4):
        raise FrameError(f"unsupported channel count {request.channel} (1, 3 or 4)")
    try:
        dtype = np.dtype(request.data_type or "uint8")
    except TypeError as exc:
        raise FrameError(f"unknown data_type {request.data_type!r}") from exc
    if dtype.kind not in "uif":
        raise FrameError(f"data_type {request.data_type!r} is not numeric")
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(request.imgs) != expected:
        raise FrameError(
            f"imgs is {len(request.imgs)} bytes but {dims} of {dtype.name} needs {expected}"
        )
    array = np.frombuffer(request.imgs, dtype=dtype).reshape(dims)
    if dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if request.channel == 4:
        array = array[..., :3]
    return [np.ascontiguousarray(image) for image in array]
