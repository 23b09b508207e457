"""The batcher the services use: open and close streams, queue frames, answer each stream in order.

A facade over three parts: the ``Scheduler`` (pure batching policy: round-robin, max batch and
delay, LIVE replacement, the frame and byte budgets), the ``FrameIntake`` (decoding on arrival)
and the ``BatchPipeline`` (prepare -> model -> answer threads). The Batcher is the scheduler's
only caller: the services call the Batcher, and the pipeline reports back to it through
``PipelineCallbacks``. This module owns what needs the event loop: the scheduling task that
sleeps until the next batch is due, and back-pressure (a reader waits here for room for its
next message, a LOSSLESS sender while the scheduler does not admit its frame). It also holds
the server's one draining flag (``draining``), which the services read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from streaming.server.answers import AnswerAssembler, Answers
from streaming.server.batch_metrics import BatchMetrics
from streaming.server.batch_pipeline import BatchPipeline, PipelineCallbacks
from streaming.server.batch_runner import BatchRunner
from streaming.server.batch_stats import BatcherStats
from streaming.server.durations import DurationEstimates
from streaming.server.frame_intake import FrameIntake
from streaming.server.model import Classifier
from streaming.server.model_versions import ModelSlot, ServingModel
from streaming.server.scheduler import Clock, Scheduler, SchedulingPolicy, TakenBatch
from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import FrameRejected, StreamingError
from streaming.server.server_metrics import ServerMetrics
from streaming.server.server_values import FrameData, FrameResult, StreamSettings
from streaming.server.stream_state import StreamState

logger = logging.getLogger(__name__)

# How often the first reader waiting for room checks for idle reads holding it (--room-timeout).
_RECHECK_S = 0.25
# A call's first message (its StreamConfig, an old-API request) is sent with the call, so it
# has arrived by the time room is made for it, however long the call waited: a read that gets
# nothing this long gives its room up to waiting readers (at most --room-timeout).
_FIRST_MESSAGE_IDLE_S = 0.5


class ServerDraining(StreamingError):
    """The server is shutting down and accepts no new streams."""


class Batcher:
    """Gathers frames of all streams into batches and answers each stream in order.

    The keyword arguments after ``metrics`` are seams for the step-by-step tests
    (``tests/streaming/server/test_scheduler.py``): a fake clock, a policy with values the config does
    not carry, an intake that decodes inline, and pipeline steps run inline.
    """

    def __init__(
        self,
        models: ModelSlot | Classifier,
        config: ServerConfig,
        metrics: ServerMetrics | None = None,
        *,
        clock: Clock = time.perf_counter_ns,
        policy: SchedulingPolicy | None = None,
        intake: FrameIntake | None = None,
        pipeline_threads: tuple[Executor, Executor, Executor] | None = None,
    ) -> None:
        # The served model, read once per batch by the model thread (see ModelSlot).
        self.models = models if isinstance(models, ModelSlot) else ModelSlot.single(models)
        description = self.models.current.description
        self._config = config
        self._clock = clock
        self.stats = BatcherStats()
        durations = DurationEstimates()
        self.durations = durations
        # Read its counts freely (metrics, logs, tests); only the Batcher calls what changes it.
        self.scheduler = scheduler = Scheduler(
            policy or SchedulingPolicy.from_config(config), clock, durations, self.stats
        )
        self._intake = intake = intake or FrameIntake(
            description,
            config.max_frame_side,
            config.max_frame_pixels,
            config.workers,
            config.decode_priority,
        )
        self.models.on_swap(self._model_swapped)
        runner = BatchRunner(self.models, self._intake.decode_now, durations, self.stats, clock)
        self._pipeline = BatchPipeline(
            runner,
            AnswerAssembler(self.stats, config.model.still_labels),
            PipelineCallbacks(
                model_started=self._model_started,
                model_stopped=self._model_stopped,
                model_done=self._model_done,
                answers=self._answered,
            ),
            pipeline_threads,
        )
        self._server_metrics = metrics
        self._metrics = (
            None
            if metrics is None
            else BatchMetrics(
                metrics,
                self.stats,
                clock,
                held_frames=lambda: scheduler.held_frames,
                held_bytes=lambda: scheduler.held_bytes,
                frame_budget=config.effective_frame_budget,
                memory_budget=config.memory_budget_bytes,
                decodes_starved=lambda: intake.starved,
            )
        )
        self._streams: dict[int, StreamState] = {}
        self._next_id = 0
        self._decoding = 0  # frames being decoded on arrival, not yet queued
        self._waiter: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._pipeline.start(self.models.current.classifier, self._config.max_batch)
        self._tasks = [asyncio.create_task(self._schedule(), name="sc-scheduler")]
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    def bind_inline(self, call_soon: Callable[..., object]) -> None:
        """Tests: deliver the pipeline's event-loop callbacks through ``call_soon``."""
        self._pipeline.bind(call_soon)

    @property
    def draining(self) -> bool:
        """The server is shutting down: no new streams or calls, open streams read no further."""
        return self._draining

    def begin_drain(self) -> None:
        """Refuse new streams; frames already received are still answered."""
        self._draining = True
        self.scheduler.wake_waiting()

    @property
    def idle(self) -> bool:
        """No frame is being decoded, queued or in a batch."""
        return self.scheduler.idle and not self._decoding

    async def wait_idle(self) -> None:
        """Wait until no frame is being decoded, queued or in a batch."""
        while not self.idle:
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
        """Streams open (bidi streams and old-API windows)."""
        return len(self._streams)

    def open_stream(self, settings: StreamSettings, connection: object = None) -> StreamState:
        """Open a stream; the services bound how many (``max_streams``, ``legacy_max_windows``).

        ``connection`` (the peer) is the stream's turn-taking lane when readers wait for room.

        Raises:
            ServerDraining: the server is shutting down.
        """
        if self._draining:
            raise ServerDraining("the server is shutting down")
        self._next_id += 1
        model = self.models.current
        memory = self.scheduler.opened(connection)
        stream = StreamState(self._next_id, settings, len(model.labels), memory, model.labels_epoch)
        self._streams[stream.id] = stream
        logger.debug("opened %r", stream)
        return stream

    def configure(self, stream: StreamState, settings: StreamSettings) -> None:
        """Give a stream opened before its StreamConfig was read its settings (no frame yet)."""
        model = self.models.current
        stream.settings = settings
        stream.configured = True
        stream.restart_window(len(model.labels), model.labels_epoch)

    def close_stream(self, stream: StreamState) -> None:
        """Forget a stream: its queued frames are discarded; frames already in a batch are ignored."""
        if self._streams.pop(stream.id, None) is None:
            return
        self.scheduler.discard(stream)
        self._check_idle()
        logger.debug("closed %r", stream)

    async def ready_to_receive(self, stream: StreamState) -> None:
        """Wait until the budget has room for the stream's next message, then reserve it.

        Called before each read: gRPC takes a whole message off the network once it is asked
        for, so this is where a stream of large frames waits (its client's sends slow down
        under HTTP/2 flow control) instead of piling messages up in memory.
        """
        scheduler = self.scheduler
        if not scheduler.may_receive(stream):
            scheduler.wait_to_receive(stream, True)
            try:
                while not self._may_receive(stream):
                    if not scheduler.first_to_receive(stream):
                        await stream.wait_for_room()  # woken as the queue moves or room frees
                        continue
                    # First in line: idle reads holding the room may have to give it up.
                    try:
                        await asyncio.wait_for(stream.wait_for_room(), _RECHECK_S)
                    except TimeoutError:
                        self._end_idle_readers(stream)
            finally:
                scheduler.wait_to_receive(stream, False)
        scheduler.receiving(stream)

    def _end_idle_readers(self, waiter: StreamState) -> None:
        """End the streams whose idle reads keep ``waiter`` from the room it needs."""
        timeout = self._config.room_timeout_s
        first_timeout = min(timeout, _FIRST_MESSAGE_IDLE_S)
        holders = self.scheduler.idle_readers_in_the_way(
            waiter, int(timeout * 1e9), int(first_timeout * 1e9)
        )
        for holder in holders:
            reserved = holder.memory.reserved / 2**20
            idle = timeout if holder.configured else first_timeout
            what = "message" if holder.configured else "first message"
            logger.warning(
                "stream %d ended: it kept room for a %.1f MiB %s for %g s or more without "
                "sending it while stream %d waited for memory (--room-timeout)",
                holder.id,
                reserved,
                what,
                idle,
                waiter.id,
            )
            advice = (
                "send the first frame with the StreamConfig, or reopen the stream when there is "
                "a frame to send"
                if holder.configured
                else "send the StreamConfig (or old-API request) as the call opens"
            )
            holder.end(
                f"the call kept room for a {reserved:.1f} MiB {what} reserved for {idle:g} s or "
                f"more without sending one while other calls waited for memory "
                f"(--room-timeout): {advice}"
            )

    def _may_receive(self, stream: StreamState) -> bool:
        # A drain ends the wait: the reader stops, or a stream not configured yet is refused.
        return self._draining or self.scheduler.may_receive(stream)

    def received(self, stream: StreamState, nbytes: int) -> None:
        """A message of ``nbytes`` the stream was given room for arrived, handled outside
        ``submit`` (an old-API request): it counts instead of the reservation until
        ``not_receiving`` or the stream closes."""
        self.scheduler.received(stream, nbytes)

    def not_receiving(self, stream: StreamState) -> None:
        """The stream reads no more (input ended or the reader stopped): free its reservation."""
        self.scheduler.payload_released(stream)

    async def submit(self, stream: StreamState, frame: FrameData) -> None:
        """Queue a frame; waits while the stream's buffer or a budget is full (back-pressure).

        Frames that need decoding or resizing are decoded here, in the intake's worker pool,
        so only this stream waits for them. The payload counts in the byte budget from here
        (or from ``ready_to_receive``) until what is queued of it counts instead.
        """
        scheduler = self.scheduler
        scheduler.received(stream, len(frame.data))
        try:
            if self._server_metrics is not None:
                self._server_metrics.frame_received(stream.settings.delivery)
            if not scheduler.admits(stream):
                await _wait_for_room(stream, scheduler.admits, scheduler.wait_for_budget)
            if self._intake.needs_decoding(frame):
                self._decoding += 1
                try:
                    decoded = await self._intake.decode(frame)
                finally:
                    self._decoding -= 1
                if isinstance(decoded, FrameRejected):
                    wake = scheduler.submit(stream, frame, error=decoded)
                else:
                    # The payload is done with: only the decoded image is queued and counted (one
                    # that is a view of the payload keeps it alive itself, at the same size).
                    wake = scheduler.submit(stream, dataclasses.replace(frame, data=b""), decoded)
            else:
                wake = scheduler.submit(stream, frame)
            if wake:
                self._wake()
            self._idle.clear()
        finally:
            scheduler.payload_released(stream)  # nothing left to free once the frame is queued

    async def next_result(self, stream: StreamState) -> FrameResult | None:
        """The stream's next answer in order (its frame leaves the server), or ``None`` at its end."""
        result = await stream.next_result()
        if result is not None:
            self.scheduler.released(stream, 1)
        return result

    def take_result(self, stream: StreamState) -> FrameResult | None:
        """The stream's next answer if one is ready (its frame leaves the server)."""
        result = stream.take_result()
        if result is not None:
            self.scheduler.released(stream, 1)
        return result

    def _model_swapped(self, model: ServingModel) -> None:
        """A new version serves from the next batch: frames arriving now are sized for it
        (those already decoded at the old size are resized by the model's preprocessing)."""
        self._intake.retarget(model.description)

    # -- scheduling ------------------------------------------------------------------------

    def dispatch_due(self) -> int | None:
        """Hand the next batch to the pipeline if it is due.

        Returns:
            0 when a batch went, else how long until the next is due (ns), or ``None`` if not
            until something changes (``submit`` and the pipeline's callbacks wake the task).
        """
        scheduler = self.scheduler
        at = scheduler.next_take_ns()
        if at is None:
            return None
        remaining = at - self._clock()
        if remaining > 0:
            return remaining
        self._pipeline.dispatch(scheduler.take_batch())
        return 0

    async def _schedule(self) -> None:
        while True:
            wait_ns = self.dispatch_due()
            if wait_ns != 0:
                await self._sleep(wait_ns)

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

    def _model_started(self, batch: TakenBatch) -> None:
        self.scheduler.model_started(batch)  # model thread: a single assignment

    def _model_stopped(self) -> None:
        self.scheduler.model_stopped()  # model thread: a single assignment

    def _model_done(self, batch: TakenBatch) -> None:
        self.scheduler.model_finished(batch)
        self._wake()

    def _answered(self, batch: TakenBatch, answers: Answers) -> None:
        self.scheduler.answered(batch, answers)
        if self._metrics is not None:
            self._metrics.batch_answered(batch, answers)
        self._check_idle()

    def _check_idle(self) -> None:
        if self.idle:
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
