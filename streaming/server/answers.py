"""Building a batch's answers: each stream's window advanced (after the temporal cue), top-k, or
the frame's error."""

from __future__ import annotations

import logging

import numpy as np

from streaming.server.batch_runner import ModelFailure, ModelOutcome, PreparedBatch
from streaming.server.batch_stats import BatcherStats
from streaming.server.model_versions import ServingModel
from streaming.server.server_values import FrameErrorInfo, FrameResult, StatusCode
from streaming.server.stream_state import QueuedFrame, StreamState
from streaming.server.temporal_cue import apply_cue, label_indices, signature

logger = logging.getLogger(__name__)

Answers = list[tuple[StreamState, FrameResult]]


class AnswerAssembler:
    """Turns a model outcome into one answer per frame of the batch, in batch order.

    ``still_labels`` are the temporal cue's (``temporal_cue.py``): a frame that repeats its
    stream's previous frame, or shows it moved by a shaking camera, does not get them; a frame that
    changed like snow gets their odds raised.
    """

    def __init__(self, stats: BatcherStats, still_labels: tuple[str, ...] = ()) -> None:
        self._stats = stats
        self._still_labels = still_labels
        self._still_indices: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())

    def assemble(self, prepared: PreparedBatch, outcome: ModelOutcome) -> Answers:
        """Every frame's answer; never raises (a failure answers every frame INTERNAL)."""
        try:
            if isinstance(outcome, ModelFailure):
                return self._fail_all(prepared, outcome.message, prepared.n_rows, outcome.model)
            return self._answers(prepared, outcome.probs, outcome.inference_us, outcome.model)
        except Exception:
            logger.exception(
                "unexpected failure answering a batch of %d frames", len(prepared.batch.items)
            )
            message = "internal error while answering the batch"
            return self._fail_all(prepared, message, 0, outcome.model)

    def _answers(
        self, prepared: PreparedBatch, probs: np.ndarray, inference_us: int, model: ServingModel
    ) -> Answers:
        """Every frame's answer, its stream's window advanced (in batch order)."""
        n_rows = len(probs)
        labels = model.labels
        version = model.version
        epoch = model.labels_epoch
        taken_ns = prepared.batch.taken_ns
        frame_top = probs.argmax(axis=1)
        still = self._indices(labels)
        inputs = [image for group in prepared.groups for image in group] if still else []
        answers: Answers = []
        for index, item in enumerate(prepared.batch.items):
            stream, frame = item.stream, item.frame
            queue_us = (taken_ns - item.arrived_ns) // 1000
            row = prepared.rows[index]
            if row < 0:
                self._stats.frame_errors += 1
                error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, prepared.errors[index])
                answers.append(
                    (stream, _error_result(item, error, n_rows, queue_us, inference_us, version))
                )
                continue
            if stream.closed:
                continue
            if stream.labels_epoch != epoch:  # the first answer since a swap changed the labels
                stream.restart_window(len(labels), epoch)
            frame_probs = probs[row]
            frame_best = int(frame_top[row])
            if still:
                current = signature(inputs[row])
                cued = apply_cue(frame_probs, still, stream.cue_signature, current)
                stream.cue_signature = current
                if cued is not None:  # it always changes the frame's best label
                    frame_probs, effect = cued
                    frame_best = int(frame_probs.argmax())
                    self._stats.cue_changes[effect] += 1
            mean = stream.window.add(frame_probs)
            order = top_indices(mean, stream.settings.top_k)
            best = int(order[0])
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
                        frame_score=float(frame_probs[frame_best]),
                        top_k=tuple((labels[int(i)], float(mean[i])) for i in order),
                        window_frames=len(stream.window),
                        model_version=version,
                    ),
                )
            )
        return answers

    def _indices(self, labels: tuple[str, ...]) -> tuple[int, ...]:
        """The cue's label positions for these labels (kept until a swap changes them)."""
        if self._still_indices[0] is not labels:
            self._still_indices = (labels, label_indices(labels, self._still_labels))
        return self._still_indices[1]

    def _fail_all(
        self, prepared: PreparedBatch, message: str, n_rows: int, model: ServingModel
    ) -> Answers:
        answers: Answers = []
        taken_ns = prepared.batch.taken_ns
        for index, item in enumerate(prepared.batch.items):
            if index in prepared.errors:
                error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, prepared.errors[index])
            else:
                error = FrameErrorInfo(StatusCode.INTERNAL, message)
            queue_us = (taken_ns - item.arrived_ns) // 1000
            answers.append(
                (item.stream, _error_result(item, error, n_rows, queue_us, 0, model.version))
            )
        return answers


def top_indices(values: np.ndarray, k: int) -> list[int]:
    """The indices of the ``k`` largest values, largest first (ties in no set order); NaN, a
    broken model's output, ranks last.

    A frame's top-k out of hundreds of classes: sorting them all cost a quarter of its answer
    (9 us of 40 at 1000 classes); ``argmax``, or a partition around the k-th, is enough.
    """
    if k == 1:
        best = int(values.argmax())  # the first NaN, if there is one
        if not np.isnan(values[best]):
            return [best]
    if k >= len(values):
        return [int(i) for i in np.argsort(-values)]
    few = np.argpartition(-values, k - 1)[:k]
    return [int(i) for i in few[np.argsort(-values[few])]]


def _error_result(
    item: QueuedFrame,
    error: FrameErrorInfo,
    batch_size: int,
    queue_us: int,
    inference_us: int,
    model_version: str,
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
        model_version=model_version,
    )
