"""The one place where protobuf messages become client values and back."""

from __future__ import annotations

from client._types import (
    EncodedFrame,
    FrameError,
    ModelInfo,
    Prediction,
    ScoredLabel,
    StreamOptions,
)
from streaming.api.v1 import stream_classifier_pb2 as pb


def model_info_from_pb(message: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(
        labels=tuple(message.labels),
        input_width=message.input_width,
        input_height=message.input_height,
        input_channels=message.input_channels or 3,
        default_window=message.default_window,
        max_batch=message.max_batch,
        model_name=message.model_name,
        device=message.device,
    )


def config_request(options: StreamOptions) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(
        config=pb.StreamConfig(
            client_id=options.client_id,
            source=options.source,
            window=options.window,
            delivery=pb.DeliveryMode.ValueType(options.delivery),
            top_k=options.top_k,
        )
    )


def frame_request(seq: int, frame: EncodedFrame, capture_time_us: int) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(
        frame=pb.Frame(
            seq=seq,
            encoding=pb.Encoding.ValueType(frame.encoding),
            width=frame.width,
            height=frame.height,
            channels=frame.channels,
            data=frame.data,
            capture_time_us=capture_time_us,
        )
    )


def prediction_from_pb(message: pb.ClassifyResponse) -> Prediction:
    error = None
    if message.HasField("error") and message.error.code != 0:
        error = FrameError(code=message.error.code, message=message.error.message)
    return Prediction(
        seq=message.seq,
        label=message.label,
        score=message.score,
        probabilities=tuple(message.probabilities),
        frame_label=message.frame_label,
        frame_score=message.frame_score,
        top_k=tuple(ScoredLabel(item.label, item.score) for item in message.top_k),
        window_frames=message.window_frames,
        dropped_frames=message.dropped_frames,
        batch_size=message.batch_size,
        queue_us=message.queue_us,
        inference_us=message.inference_us,
        capture_time_us=message.capture_time_us,
        error=error,
    )
