"""The thread pipeline that runs taken batches: prepare thread -> model thread -> answer thread.

Each stage is one thread, so batches stay in order end to end. The threads hand batches to
each other directly, so the model starts the next batch the moment it finishes one, without a
round trip through the event loop; answers (windows, top-k) are built beside the next model
call. Only two things go back to the event loop: "the model finished this batch" (room for the
next one) and the batch's answers. The pipeline never calls the scheduler: it reports to the
``Batcher`` through the callbacks it was given (on the model thread, the start and end of each
model call, for the scheduler's busy estimate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from streaming.server.answers import AnswerAssembler, Answers
from streaming.server.batch_runner import BatchRunner, ModelOutcome, PreparedBatch
from streaming.server.model import Classifier
from streaming.server.scheduler import TakenBatch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineCallbacks:
    """What the pipeline tells its owner (the ``Batcher``), and on which thread."""

    model_started: Callable[[TakenBatch], None]  # model thread, before the call
    model_stopped: Callable[[], None]  # model thread, after the call returned or raised
    model_done: Callable[[TakenBatch], None]  # event loop: room for another batch
    answers: Callable[[TakenBatch, Answers], None]  # event loop: the batch's answers


class BatchPipeline:
    """Runs every batch the scheduler takes through its three threads, in order."""

    def __init__(
        self,
        runner: BatchRunner,
        assembler: AnswerAssembler,
        callbacks: PipelineCallbacks,
        threads: tuple[Executor, Executor, Executor] | None = None,
    ) -> None:
        """``threads`` (prepare, model, answer) are single-thread pools unless given (tests
        run the steps inline, then ``call_soon`` must be set too, see ``start``)."""
        self._runner = runner
        self._assembler = assembler
        self._callbacks = callbacks
        self._call_soon: Callable[..., object] | None = None
        self._prepare_thread, self._model_thread, self._answer_thread = threads or (
            ThreadPoolExecutor(1, thread_name_prefix="sc-prepare"),
            ThreadPoolExecutor(1, thread_name_prefix="sc-model"),
            ThreadPoolExecutor(1, thread_name_prefix="sc-answer"),
        )

    async def start(self, classifier: Classifier, max_batch: int) -> None:
        """Bind to the running loop and warm the model up on the thread that will call it."""
        loop = asyncio.get_running_loop()
        self._call_soon = loop.call_soon_threadsafe
        await loop.run_in_executor(self._model_thread, classifier.warm_up, max_batch)

    def bind(self, call_soon: Callable[..., object]) -> None:
        """Send the event loop's callbacks through ``call_soon`` (tests: call them inline)."""
        self._call_soon = call_soon

    def dispatch(self, batch: TakenBatch) -> None:
        """Run a batch the scheduler just took (from the event loop)."""
        self._submit(self._prepare_thread, self._prepare_step, batch)

    def shutdown(self) -> None:
        for pool in (self._prepare_thread, self._model_thread, self._answer_thread):
            pool.shutdown(wait=False, cancel_futures=True)

    def _prepare_step(self, batch: TakenBatch) -> None:
        """Prepare thread: group the batch by image size (RAW frames decoded here), then queue it."""
        self._submit(self._model_thread, self._model_step, self._runner.prepare(batch))

    def _model_step(self, prepared: PreparedBatch) -> None:
        """Model thread: one model call, then hand the outcome to the answer thread."""
        callbacks = self._callbacks
        callbacks.model_started(prepared.batch)
        try:
            outcome = self._runner.predict(prepared)
        finally:
            callbacks.model_stopped()
            self._call_loop(callbacks.model_done, prepared.batch)
        self._submit(self._answer_thread, self._answer_step, prepared, outcome)

    def _answer_step(self, prepared: PreparedBatch, outcome: ModelOutcome) -> None:
        """Answer thread: windows and top-k for every frame, then back to the event loop."""
        answers = self._assembler.assemble(prepared, outcome)
        self._call_loop(self._callbacks.answers, prepared.batch, answers)

    def _submit(self, pool: Executor, step: Callable[..., None], *args: object) -> None:
        try:
            pool.submit(step, *args)
        except RuntimeError:  # shut down: the server is stopping
            logger.debug("pipeline stopped; dropping a batch")

    def _call_loop(self, callback: Callable[..., None], *args: object) -> None:
        if self._call_soon is None:  # pragma: no cover - start() binds the loop before any batch
            raise RuntimeError("the pipeline was not started")
        try:
            self._call_soon(callback, *args)
        except RuntimeError:  # the loop closed: the server is gone
            logger.debug("event loop closed; dropping %s", getattr(callback, "__name__", callback))
