"""The batcher the services use: open and close streams, queue frames, answer each stream in order.

A facade over three parts: the ``Scheduler`` (pure batching policy: round-robin, max batch and
delay, LIVE replacement, frame budget), the ``BatchPipeline`` (prepare -> model -> answer
threads) and the ``StreamState`` of each stream. This module owns what needs the event loop:
the scheduling task that sleeps until the next batch is due, and LOSSLESS back-pressure
(a sender waits here while the scheduler does not admit its frame).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from streaming.server.answers import AnswerAssembler, Answers
from streaming.server.batch_metrics import BatchMetrics
from streaming.server.batch_pipeline import BatchPipeline
from streaming.server.batch_runner import BatchRunner
from streaming.server.batch_stats import BatcherStats
from streaming.server.durations import DurationEstimates
from streaming.server.frame_intake import FrameIntake
from streaming.server.model import Classifier
from streaming.server.scheduler import Scheduler, SchedulingPolicy, TakenBatch
from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import FrameError, StreamingError
from streaming.server.server_metrics import ServerMetrics
from streaming.server.server_values import FrameData, StreamSettings
from streaming.server.stream_state import StreamState

logger = logging.getLogger(__name__)


class ServerDraining(StreamingError):
    """The server is shutting down and accepts no new streams."""


class TooManyStreams(StreamingError):
    """The server already serves ``max_streams`` streams."""


class Batcher:
    """Gathers frames of all streams into batches and answers each stream in order."""

    def __init__(
        self, classifier: Classifier, config: ServerConfig, metrics: ServerMetrics | None = None
    ) -> None:
        self._classifier = classifier
        self._config = config
        self._num_labels = len(classifier.description.labels)
        self.stats = BatcherStats()
        durations = DurationEstimates()
        clock = time.perf_counter_ns
        self._scheduler = Scheduler(
            SchedulingPolicy.from_config(config), clock, durations, self.stats
        )
        self._intake = FrameIntake(
            classifier.description, config.max_frame_side, config.max_frame_pixels, config.workers
        )
        runner = BatchRunner(classifier, config.max_frame_side, durations, self.stats, clock)
        self._pipeline = BatchPipeline(
            self._scheduler,
            runner,
            AnswerAssembler(classifier.description.labels, self.stats),
            self._model_done,
            self._answered,
        )
        self._metrics = (
            None
            if metrics is None
            else BatchMetrics(
                metrics,
                self._scheduler,
                self.stats,
                clock,
                frame_budget=config.effective_frame_budget,
                memory_budget=config.memory_budget_bytes,
            )
        )
        self._streams: dict[int, StreamState] = {}
        self._next_id = 0
        self._waiter: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._pipeline.start(self._classifier, self._config.max_batch)
        self._tasks = [asyncio.create_task(self._schedule(), name="sc-scheduler")]
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    def begin_drain(self) -> None:
        """Refuse new streams; frames already received are still answered."""
        self._draining = True

    async def wait_idle(self) -> None:
        """Wait until no frame is queued or in a batch."""
        while not self._scheduler.idle:
            self._idle.clear()
            await self._idle.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in list(self._streams.values()):
            self.close_stream(stream)
        self._pipeline.shutdown()
        self._intake.shutdown()

    # -- streams ---------------------------------------------------------------------------

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def held_frames(self) -> int:
        """Frames of all streams in the server: queued, in a batch, or answered but not yet sent."""
        return self._scheduler.held_frames

    @property
    def held_bytes(self) -> int:
        """Bytes of frames in the server: being decoded, queued, or in a batch."""
        return self._scheduler.held_bytes

    @property
    def pending_count(self) -> int:
        return self._scheduler.pending_count

    def open_stream(self, settings: StreamSettings) -> StreamState:
        if self._draining:
            raise ServerDraining("the server is shutting down")
        if len(self._streams) >= self._config.max_streams:
            raise TooManyStreams(
                f"the server already serves {len(self._streams)} streams (--max-streams)"
            )
        self._next_id += 1
        stream = StreamState(self._next_id, settings, self._num_labels, self._scheduler.released)
        self._streams[stream.id] = stream
        self._scheduler.opened()
        logger.debug("opened %r", stream)
        return stream

    def close_stream(self, stream: StreamState) -> None:
        """Forget a stream: its queued frames are discarded; frames already in a batch are ignored."""
        if self._streams.pop(stream.id, None) is None:
            return
        self._scheduler.discard(stream)
        self._check_idle()
        logger.debug("closed %r", stream)

    async def ready_to_receive(self, stream: StreamState) -> None:
        """Wait until the budget has room for the stream's next message, then reserve it.

        Called before each read: gRPC takes a whole message off the network once it is asked
        for, so this is where a stream of large frames waits (its client's sends slow down
        under HTTP/2 flow control) instead of piling messages up in memory.
        """
        scheduler = self._scheduler
        if not scheduler.may_receive(stream):
            await _wait_for_room(stream, scheduler.may_receive, scheduler.wait_to_receive)
        scheduler.receiving(stream)

    def not_receiving(self, stream: StreamState) -> None:
        """The stream reads no more (input ended or the reader stopped): free its reservation."""
        self._scheduler.payload_released(stream)

    async def submit(self, stream: StreamState, frame: FrameData) -> None:
        """Queue a frame; waits while the stream's buffer or a budget is full (back-pressure).

        Frames that need decoding or resizing are decoded here, in the intake's worker pool,
        so only this stream waits for them. The payload counts in the byte budget from here
        (or from ``ready_to_receive``) until only what is queued of it remains.
        """
        scheduler = self._scheduler
        scheduler.received(stream, len(frame.data))
        try:
            await self._admit_and_queue(stream, frame)
        finally:
            scheduler.payload_released(stream)

    async def _admit_and_queue(self, stream: StreamState, frame: FrameData) -> None:
        scheduler = self._scheduler
        if self._metrics is not None:
            self._metrics.frame_received(stream.settings.delivery)
        if not scheduler.admits(stream):
            await _wait_for_room(stream, scheduler.admits, scheduler.wait_for_budget)
        if self._intake.needs_decoding(frame):
            scheduler.decoding()
            try:
                decoded = await self._intake.decode(frame)
            finally:
                scheduler.decoded()
            if isinstance(decoded, FrameError):
                wake = scheduler.submit(stream, frame, error=decoded)
            else:
                # The payload is done with: only the decoded image is queued and counted (one that
                # is a view of the payload keeps it alive itself, at the same size).
                wake = scheduler.submit(stream, dataclasses.replace(frame, data=b""), decoded)
        else:
            wake = scheduler.submit(stream, frame)
        if wake:
            self._wake()
        self._idle.clear()

    # -- scheduling ------------------------------------------------------------------------

    async def _schedule(self) -> None:
        scheduler = self._scheduler
        while True:
            at = scheduler.next_take_ns()
            if at is None:
                await self._sleep(None)
                continue
            remaining = at - time.perf_counter_ns()
            if remaining > 0:
                await self._sleep(remaining)
                continue
            self._pipeline.dispatch(scheduler.take_batch())

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, timeout_ns: int | None) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(timeout_ns / 1e9, self._wake) if timeout_ns is not None else None
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    # -- loop callbacks from the pipeline --------------------------------------------------

    def _model_done(self, batch: TakenBatch) -> None:
        self._scheduler.model_finished(batch)
        self._wake()

    def _answered(self, batch: TakenBatch, answers: Answers) -> None:
        self._scheduler.answered(batch, answers)
        if self._metrics is not None:
            self._metrics.batch_answered(batch, answers)
        self._check_idle()

    def _check_idle(self) -> None:
        if self._scheduler.idle:
            self._idle.set()


async def _wait_for_room(
    stream: StreamState,
    ready: Callable[[StreamState], bool],
    waiting: Callable[[StreamState, bool], None],
) -> None:
    """Sleep until ``ready(stream)``, marked as ``waiting`` meanwhile (so frees wake it)."""
    waiting(stream, True)
    try:
        while not ready(stream):
            await stream.wait_for_room()
    finally:
        waiting(stream, False)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("batcher task %s died", task.get_name(), exc_info=task.exception())
