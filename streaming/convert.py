"""The one place where protobuf messages become values and back."""

from __future__ import annotations

from client.api.v1 import stream_classifier_pb2 as pb
from streaming.values import (
    Delivery,
    FrameData,
    FrameResult,
    ModelDescription,
    ProbabilityFormat,
    StreamSettings,
)

_PROBABILITY_FORMATS = frozenset(ProbabilityFormat)


def settings_from_pb(
    config: pb.StreamConfig, *, default_window: int, default_top_k: int, num_labels: int
) -> StreamSettings:
    """Apply server defaults (0 means default) and clamp top-k to the number of labels."""
    delivery = Delivery(config.delivery) if config.delivery in (0, 1) else None
    if delivery is None:
        raise ValueError(f"unknown delivery mode {config.delivery}")
    # proto3 enums are open: an unknown number arrives as-is rather than as an error.
    if config.probabilities not in _PROBABILITY_FORMATS:
        raise ValueError(
            f"unknown probabilities format {config.probabilities} "
            "(0 PROBABILITIES_REPEATED, 1 PROBABILITIES_PACKED, 2 PROBABILITIES_NONE)"
        )
    return StreamSettings(
        client_id=config.client_id,
        source=config.source,
        window=config.window or default_window,
        delivery=delivery,
        top_k=min(config.top_k or default_top_k, num_labels),
        probabilities=ProbabilityFormat(config.probabilities),
    )


def frame_from_pb(frame: pb.Frame) -> FrameData:
    return FrameData(
        seq=frame.seq,
        encoding=frame.encoding,
        width=frame.width,
        height=frame.height,
        channels=frame.channels,
        data=frame.data,
        capture_time_us=frame.capture_time_us,
    )


def result_to_pb(
    result: FrameResult, probabilities: ProbabilityFormat = ProbabilityFormat.REPEATED
) -> pb.ClassifyResponse:
    """The answer to one frame, with the probability vector in the format the stream asked for."""
    response = pb.ClassifyResponse(
        seq=result.seq,
        dropped_frames=result.dropped_frames,
        batch_size=result.batch_size,
        queue_us=min(result.queue_us, 0xFFFFFFFF),
        inference_us=min(result.inference_us, 0xFFFFFFFF),
        capture_time_us=result.capture_time_us,
        window_frames=result.window_frames,
    )
    if result.error is not None:
        response.error.code = int(result.error.code)
        response.error.message = result.error.message
        return response
    response.label = result.label
    response.score = result.score
    response.frame_label = result.frame_label
    response.frame_score = result.frame_score
    if result.probabilities is not None:
        if probabilities is ProbabilityFormat.PACKED:
            # One memcpy instead of a Python float per label (no copy when already float32 LE).
            response.probabilities_f32 = result.probabilities.astype("<f4", copy=False).tobytes()
        elif probabilities is ProbabilityFormat.REPEATED:
            response.probabilities.extend(result.probabilities.tolist())
    response.top_k.extend(pb.ScoredLabel(label=label, score=score) for label, score in result.top_k)
    return response


def model_info_to_pb(
    description: ModelDescription, *, default_window: int, max_batch: int
) -> pb.ModelInfo:
    return pb.ModelInfo(
        labels=list(description.labels),
        input_width=description.input_width,
        input_height=description.input_height,
        input_channels=description.input_channels,
        default_window=default_window,
        max_batch=max_batch,
        model_name=description.model_name,
        device=description.device,
    )
