"""The thread pipeline that runs taken batches: prepare thread -> model thread -> answer thread.

Each stage is one thread, so batches stay in order end to end. The threads hand batches to
each other directly, so the model starts the next batch the moment it finishes one, without a
round trip through the event loop; answers (windows, top-k) are built beside the next model
call. Only two things go back to the event loop: "the model finished this batch" (room for the
next one) and the batch's answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from streaming.server.answers import AnswerAssembler, Answers
from streaming.server.batch_runner import BatchRunner, ModelOutcome, PreparedBatch
from streaming.server.model import Classifier
from streaming.server.scheduler import Scheduler, TakenBatch

logger = logging.getLogger(__name__)


class BatchPipeline:
    """Runs every batch the scheduler takes through its three threads, in order."""

    def __init__(
        self,
        scheduler: Scheduler,
        runner: BatchRunner,
        assembler: AnswerAssembler,
        on_model_done: Callable[[TakenBatch], None],
        on_answers: Callable[[TakenBatch, Answers], None],
    ) -> None:
        self._scheduler = scheduler
        self._runner = runner
        self._assembler = assembler
        self._on_model_done = on_model_done
        self._on_answers = on_answers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-prepare")
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-model")
        self._answer_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-answer")

    async def start(self, classifier: Classifier, max_batch: int) -> None:
        """Bind to the running loop and warm the model up on the thread that will call it."""
        self._loop = loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._model_thread, classifier.warm_up, max_batch)

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
        scheduler = self._scheduler
        scheduler.model_started(prepared.batch)
        try:
            outcome = self._runner.predict(prepared)
        finally:
            scheduler.model_stopped()
            self._call_loop(self._on_model_done, prepared.batch)
        self._submit(self._answer_thread, self._answer_step, prepared, outcome)

    def _answer_step(self, prepared: PreparedBatch, outcome: ModelOutcome) -> None:
        """Answer thread: windows and top-k for every frame, then back to the event loop."""
        answers = self._assembler.assemble(prepared, outcome)
        self._call_loop(self._on_answers, prepared.batch, answers)

    def _submit(self, pool: ThreadPoolExecutor, step: Callable[..., None], *args: object) -> None:
        try:
            pool.submit(step, *args)
        except RuntimeError:  # shut down: the server is stopping
            logger.debug("pipeline stopped; dropping a batch")

    def _call_loop(self, callback: Callable[..., None], *args: object) -> None:
        if self._loop is None:  # pragma: no cover - start() binds the loop before any batch
            raise RuntimeError("the pipeline was not started")
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed: the server is gone
            logger.debug("event loop closed; dropping %s", getattr(callback, "__name__", callback))
