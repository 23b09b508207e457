"""Running one batch through the model: group its decoded frames by size, then one model call.

Frames arrive decoded and resized (``frame_intake``), or as RAW frames at the model's input
size, whose decoding is a reshape of the received bytes done here, at batch time, by the
intake's own ``decode_now`` (one decoder, one error handling).

Both steps are synchronous; the pipeline runs them on its prepare and model threads (the
scheduler tests run those threads' steps by hand, with a fake ``Classifier``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streaming.server.batch_stats import BatcherStats
from streaming.server.durations import DurationEstimates
from streaming.server.model import Classifier
from streaming.server.scheduler import Clock, TakenBatch
from streaming.server.server_errors import FrameRejected, InferenceError
from streaming.server.server_values import FrameData

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PreparedBatch:
    """A batch decoded and grouped by image size, ready for one model call."""

    batch: TakenBatch
    groups: list[np.ndarray]
    rows: list[int]  # for each frame, its row in the model output, or -1 with an error in `errors`
    errors: dict[int, str]

    @property
    def n_rows(self) -> int:
        return sum(len(group) for group in self.groups)


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """A model call's probabilities (one row per decoded frame) and its duration."""

    probs: np.ndarray
    inference_us: int


@dataclass(frozen=True, slots=True)
class ModelFailure:
    """Why a model call failed: every decoded frame of the batch is answered INTERNAL."""

    message: str


ModelOutcome = ModelOutput | ModelFailure


class BatchRunner:
    """Decodes a batch's frames and calls the model on them, keeping the duration estimates."""

    def __init__(
        self,
        classifier: Classifier,
        decode: Callable[[FrameData], np.ndarray | FrameRejected],
        durations: DurationEstimates,
        stats: BatcherStats,
        clock: Clock,
    ) -> None:
        self._classifier = classifier
        self._num_labels = len(classifier.description.labels)
        self._decode = decode
        self._durations = durations
        self._stats = stats
        self._clock = clock

    def prepare(self, batch: TakenBatch) -> PreparedBatch:
        """Decode and group the batch; never raises (a failure answers every frame with it)."""
        start = self._clock()
        items = batch.items
        try:
            prepared = self._prepare(batch)
        except Exception:  # never let one batch stop the pipeline
            logger.exception("unexpected failure preparing a batch of %d frames", len(items))
            message = "internal error while preparing the batch"
            prepared = PreparedBatch(
                batch, [], [-1] * len(items), dict.fromkeys(range(len(items)), message)
            )
        self._durations.prepared(len(items), self._clock() - start)
        return prepared

    def predict(self, prepared: PreparedBatch) -> ModelOutcome:
        """The model call: probabilities and its duration, or why it failed."""
        n_rows = prepared.n_rows
        start = self._clock()
        try:
            probs = (
                self._classifier.predict(prepared.groups)
                if n_rows
                else np.empty((0, self._num_labels))
            )
            if probs.shape != (n_rows, self._num_labels):
                raise InferenceError(
                    f"model returned {probs.shape} for {n_rows} frames and {self._num_labels} labels"
                )
        except Exception as exc:
            logger.error("model call for %d frames failed: %s", n_rows, exc)
            self._stats.failed_batches += 1
            return ModelFailure(f"model call failed: {exc}")
        elapsed = self._clock() - start
        if n_rows:
            self._durations.model_call(n_rows, elapsed)
        stats = self._stats
        stats.batches += 1
        stats.frames += n_rows
        stats.batch_sizes.append(n_rows)
        return ModelOutput(probs, elapsed // 1000)

    def _prepare(self, batch: TakenBatch) -> PreparedBatch:
        items = batch.items
        decode = self._decode
        outcomes = [
            item.error
            if item.error is not None
            else item.image
            if item.image is not None
            else decode(item.frame)
            for item in items
        ]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        errors: dict[int, str] = {}
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, FrameRejected):
                errors[index] = str(outcome)
            else:
                by_shape.setdefault(outcome.shape, []).append(index)
        rows = [-1] * len(items)
        groups: list[np.ndarray] = []
        row = 0
        for indices in by_shape.values():
            groups.append(np.stack([outcomes[i] for i in indices]))  # type: ignore[misc]  # only arrays here
            for index in indices:
                rows[index] = row
                row += 1
        return PreparedBatch(batch, groups, rows, errors)
