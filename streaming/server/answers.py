"""Building a batch's answers: each stream's window advanced, top-k, or the frame's error."""

from __future__ import annotations

import logging

import numpy as np

from streaming.server.batch_runner import ModelFailure, ModelOutcome, PreparedBatch
from streaming.server.batch_stats import BatcherStats
from streaming.server.server_values import FrameErrorInfo, FrameResult, StatusCode
from streaming.server.stream_state import QueuedFrame, StreamState

logger = logging.getLogger(__name__)

Answers = list[tuple[StreamState, FrameResult]]


class AnswerAssembler:
    """Turns a model outcome into one answer per frame of the batch, in batch order."""

    def __init__(self, labels: tuple[str, ...], stats: BatcherStats) -> None:
        self._labels = labels
        self._stats = stats

    def assemble(self, prepared: PreparedBatch, outcome: ModelOutcome) -> Answers:
        """Every frame's answer; never raises (a failure answers every frame INTERNAL)."""
        try:
            if isinstance(outcome, ModelFailure):
                return self._fail_all(prepared, outcome.message, prepared.n_rows)
            return self._answers(prepared, outcome.probs, outcome.inference_us)
        except Exception:
            logger.exception(
                "unexpected failure answering a batch of %d frames", len(prepared.batch.items)
            )
            return self._fail_all(prepared, "internal error while answering the batch", 0)

    def _answers(self, prepared: PreparedBatch, probs: np.ndarray, inference_us: int) -> Answers:
        """Every frame's answer, its stream's window advanced (in batch order)."""
        n_rows = len(probs)
        labels = self._labels
        taken_ns = prepared.batch.taken_ns
        frame_top = probs.argmax(axis=1)
        answers: Answers = []
        for index, item in enumerate(prepared.batch.items):
            stream, frame = item.stream, item.frame
            queue_us = (taken_ns - item.arrived_ns) // 1000
            row = prepared.rows[index]
            if row < 0:
                self._stats.frame_errors += 1
                error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, prepared.errors[index])
                answers.append((stream, _error_result(item, error, n_rows, queue_us, inference_us)))
                continue
            if stream.closed:
                continue
            mean = stream.window.add(probs[row])
            order = np.argsort(-mean)[: stream.settings.top_k]
            best = int(order[0])
            frame_best = int(frame_top[row])
            answers.append(
                (
                    stream,
                    FrameResult(
                        seq=frame.seq,
                        capture_time_us=frame.capture_time_us,
                        dropped_frames=stream.dropped,
                        batch_size=n_rows,
                        queue_us=queue_us,
                        inference_us=inference_us,
                        label=labels[best],
                        score=float(mean[best]),
                        probabilities=mean,
                        frame_label=labels[frame_best],
                        frame_score=float(probs[row, frame_best]),
                        top_k=tuple((labels[int(i)], float(mean[i])) for i in order),
                        window_frames=len(stream.window),
                    ),
                )
            )
        return answers

    def _fail_all(self, prepared: PreparedBatch, message: str, n_rows: int) -> Answers:
        answers: Answers = []
        taken_ns = prepared.batch.taken_ns
        for index, item in enumerate(prepared.batch.items):
            if index in prepared.errors:
                error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, prepared.errors[index])
            else:
                error = FrameErrorInfo(StatusCode.INTERNAL, message)
            queue_us = (taken_ns - item.arrived_ns) // 1000
            answers.append((item.stream, _error_result(item, error, n_rows, queue_us, 0)))
        return answers


def _error_result(
    item: QueuedFrame, error: FrameErrorInfo, batch_size: int, queue_us: int, inference_us: int
) -> FrameResult:
    return FrameResult(
        seq=item.frame.seq,
        capture_time_us=item.frame.capture_time_us,
        dropped_frames=item.stream.dropped,
        batch_size=batch_size,
        queue_us=queue_us,
        inference_us=inference_us,
        window_frames=len(item.stream.window),
        error=error,
    )
