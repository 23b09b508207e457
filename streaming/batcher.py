"""One scheduler for every open stream: fair batches, one model call per tick, ordered answers.

Pipeline (each stage one at a time, so batches stay in order end to end)::

    submit() -> per-stream queues -> scheduler -> prepare thread -> model thread -> streams

The scheduler takes up to ``max_batch`` frames round-robin across streams as soon as the batch
is full or its oldest frame has waited ``max_delay_ms``. At most two batches are in flight: while
the model runs one, the next is decoded, and new frames keep filling the one after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from streaming.config import ServerConfig
from streaming.decode import check_frame, decode_frame
from streaming.errors import FrameError, InferenceError, StreamingError
from streaming.model import Classifier
from streaming.values import (
    Delivery,
    FrameData,
    FrameErrorInfo,
    FrameResult,
    StatusCode,
    StreamSettings,
)
from streaming.window import SlidingWindow

logger = logging.getLogger(__name__)

_IN_FLIGHT_BATCHES = 2


class ServerDraining(StreamingError):
    """The server is shutting down and accepts no new streams."""


class TooManyStreams(StreamingError):
    """The server already serves ``max_streams`` streams."""


@dataclass(slots=True, eq=False)
class _Item:
    stream: Stream
    frame: FrameData
    arrived_ns: int


class Stream:
    """The server-side state of one stream: pending frames, its window and its unsent answers."""

    def __init__(
        self,
        stream_id: int,
        settings: StreamSettings,
        num_classes: int,
        on_release: Callable[[int], None],
    ) -> None:
        self.id = stream_id
        self.settings = settings
        self.window = SlidingWindow(settings.window, num_classes)
        self.pending: deque[_Item] = deque()
        self.dropped = 0
        # Frames accepted whose answer the sender has not taken yet (queued, in a batch, or unsent).
        self.outstanding = 0
        self.closed = False
        self._on_release = on_release
        self._input_done = False
        self._results: deque[FrameResult] = deque()
        self._results_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __repr__(self) -> str:
        return f"Stream(id={self.id}, source={self.settings.source!r}, client={self.settings.client_id!r})"

    async def wait_for_room(self) -> None:
        """Sleep until one of this stream's frames is answered (or the server frees budget)."""
        if not self.closed:
            self._room.clear()
            await self._room.wait()

    async def next_result(self) -> FrameResult | None:
        """The next answer in order, or ``None`` once input has ended and every frame is answered."""
        while not self._results:
            if self.closed or (self._input_done and self.outstanding == 0):
                return None
            self._results_ready.clear()
            await self._results_ready.wait()
        self._release(1)
        return self._results.popleft()

    def finish_input(self) -> None:
        """No more frames will come; the result iterator ends after the last answer."""
        self._input_done = True
        self._results_ready.set()

    def _push(self, result: FrameResult) -> None:
        self._results.append(result)
        self._results_ready.set()

    def _release(self, count: int) -> None:
        self.outstanding -= count
        self._on_release(count)
        self._room.set()
        if self._input_done and self.outstanding == 0:
            self._results_ready.set()

    def _close(self) -> None:
        self.closed = True
        self.outstanding = 0
        self.pending.clear()
        self._results.clear()
        self._room.set()
        self._results_ready.set()


@dataclass(slots=True)
class _Prepared:
    items: list[_Item]
    groups: list[np.ndarray]
    rows: list[int]  # for each item, its row in the model output, or -1 with an error in `errors`
    errors: dict[int, str]
    taken_ns: int


@dataclass
class BatcherStats:
    """Counters since start (read from the event loop)."""

    batches: int = 0
    frames: int = 0
    dropped: int = 0
    frame_errors: int = 0
    failed_batches: int = 0
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def mean_batch_size(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


class Batcher:
    """Gathers frames of all streams into batches and answers each stream in order."""

    def __init__(self, classifier: Classifier, config: ServerConfig) -> None:
        self._classifier = classifier
        self._config = config
        self._labels = classifier.description.labels
        self._channels = classifier.description.input_channels
        self._max_batch = config.max_batch
        self._delay_ns = int(config.max_delay_ms * 1e6)
        self._streams: dict[int, Stream] = {}
        self._next_id = 0
        self._ready: deque[Stream] = deque()  # streams with pending frames, in round-robin order
        self._pending = 0
        self._in_flight = 0
        self._held = 0  # frames of all streams in the server: queued, in a batch or unsent
        self._waiting: set[Stream] = set()
        self._stream_buffer = config.effective_stream_buffer
        self._frame_budget = config.effective_frame_budget
        self._waiter: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._slots = asyncio.Semaphore(_IN_FLIGHT_BATCHES)
        self._to_prepare: asyncio.Queue[list[_Item]] = asyncio.Queue()
        self._to_infer: asyncio.Queue[_Prepared] = asyncio.Queue()
        self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-prepare")
        self._decode_pool = ThreadPoolExecutor(config.workers, thread_name_prefix="sc-decode")
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-model")
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = BatcherStats()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._model_thread, self._classifier.warm_up, self._max_batch)
        self._tasks = [
            asyncio.create_task(self._schedule(), name="sc-scheduler"),
            asyncio.create_task(self._prepare_stage(), name="sc-prepare"),
            asyncio.create_task(self._infer_stage(), name="sc-infer"),
        ]
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    def begin_drain(self) -> None:
        """Refuse new streams; frames already received are still answered."""
        self._draining = True

    async def wait_idle(self) -> None:
        """Wait until no frame is queued or in a batch."""
        while self._pending or self._in_flight:
            self._idle.clear()
            await self._idle.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in list(self._streams.values()):
            self.close_stream(stream)
        for pool in (self._prepare_thread, self._decode_pool, self._model_thread):
            pool.shutdown(wait=False, cancel_futures=True)

    # -- streams ---------------------------------------------------------------------------

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def held_frames(self) -> int:
        """Frames of all streams in the server: queued, in a batch, or answered but not yet sent."""
        return self._held

    @property
    def pending_count(self) -> int:
        return self._pending

    def _admits(self, stream: Stream) -> bool:
        # A stream may hold its own buffer of frames; beyond two frames it also needs room in the
        # server-wide budget, so many LOSSLESS streams cannot each park three batches in memory.
        # Two frames each always pass, so every stream keeps moving.
        held = stream.outstanding
        if stream.closed or held < 2:
            return True
        return held < self._stream_buffer and self._held < self._frame_budget

    def _released(self, count: int) -> None:
        self._held -= count
        if self._waiting and self._held < self._frame_budget:
            for stream in self._waiting:
                stream._room.set()

    def open_stream(self, settings: StreamSettings) -> Stream:
        if self._draining:
            raise ServerDraining("the server is shutting down")
        if len(self._streams) >= self._config.max_streams:
            raise TooManyStreams(
                f"the server already serves {len(self._streams)} streams (--max-streams)"
            )
        self._next_id += 1
        stream = Stream(self._next_id, settings, len(self._labels), self._released)
        self._streams[stream.id] = stream
        logger.debug("opened %r", stream)
        return stream

    def close_stream(self, stream: Stream) -> None:
        """Forget a stream: its queued frames are discarded; frames already in a batch are ignored."""
        if self._streams.pop(stream.id, None) is None:
            return
        if stream.pending:
            self._pending -= len(stream.pending)
            self._ready.remove(stream)
        self._held -= stream.outstanding  # answers still in a batch are discarded on arrival
        stream._close()
        self._check_idle()
        logger.debug("closed %r", stream)

    async def submit(self, stream: Stream, frame: FrameData) -> None:
        """Queue a frame; waits while the stream's buffer is full (LOSSLESS back-pressure)."""
        if not self._admits(stream):
            self._waiting.add(stream)
            try:
                while not self._admits(stream):
                    await stream.wait_for_room()
            finally:
                self._waiting.discard(stream)
        if stream.closed:
            return
        if not stream.pending:
            self._ready.append(stream)  # joins the round-robin
        elif (
            stream.settings.delivery == Delivery.LIVE
            and len(stream.pending) >= self._config.live_depth
        ):
            stream.pending.popleft()  # the newest frame replaces the oldest pending one
            stream.dropped += 1
            self.stats.dropped += 1
            self._pending -= 1
            stream._release(1)
        stream.pending.append(_Item(stream, frame, time.perf_counter_ns()))
        stream.outstanding += 1
        self._held += 1
        self._pending += 1
        self._idle.clear()
        if self._pending == 1 or self._pending >= self._max_batch:
            self._wake()

    # -- scheduling ------------------------------------------------------------------------

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

    def _oldest_arrival_ns(self) -> int:
        return min(stream.pending[0].arrived_ns for stream in self._ready)

    def _take_batch(self) -> list[_Item]:
        # Round-robin: one frame per stream per pass, and a served stream goes to the back,
        # so a stream that floods cannot starve the others.
        items: list[_Item] = []
        ready = self._ready
        while ready and len(items) < self._max_batch:
            stream = ready.popleft()
            items.append(stream.pending.popleft())
            if stream.pending:
                ready.append(stream)
        self._pending -= len(items)
        return items

    async def _schedule(self) -> None:
        while True:
            while not self._pending:
                await self._sleep(None)
            await self._slots.acquire()
            while 0 < self._pending < self._max_batch:
                remaining = self._oldest_arrival_ns() + self._delay_ns - time.perf_counter_ns()
                if remaining <= 0:
                    break
                await self._sleep(remaining)
            if not self._pending:  # every pending stream closed while we waited
                self._slots.release()
                continue
            self._in_flight += 1
            self._to_prepare.put_nowait(self._take_batch())

    async def _prepare_stage(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._to_prepare.get()
            prepared = await loop.run_in_executor(self._prepare_thread, self._prepare, items)
            self._to_infer.put_nowait(prepared)

    async def _infer_stage(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            prepared = await self._to_infer.get()
            try:
                answers = await loop.run_in_executor(self._model_thread, self._infer, prepared)
            except Exception:  # never let one batch stop the server
                logger.exception(
                    "unexpected failure answering a batch of %d frames", len(prepared.items)
                )
                answers = self._fail_all(prepared, "internal error while answering the batch", 0)
            finally:
                self._slots.release()
                self._in_flight -= 1
            for stream, result in answers:
                if not stream.closed:
                    stream._push(result)
            self._check_idle()

    def _check_idle(self) -> None:
        if not self._pending and not self._in_flight:
            self._idle.set()

    # -- worker threads ------------------------------------------------------------------------

    def _decode(self, item: _Item) -> np.ndarray:
        max_side = self._config.max_frame_side
        check_frame(item.frame, max_side)
        return decode_frame(item.frame, self._channels, max_side)

    def _prepare(self, items: list[_Item]) -> _Prepared:
        """Decode and group a batch by image size (runs in the prepare thread)."""
        taken_ns = time.perf_counter_ns()
        cheap = all(item.frame.encoding <= 1 for item in items)
        # RAW frames are views on the received bytes; encoded ones fan out to the decode pool.
        outcomes = (
            [self._try_decode(item) for item in items]
            if cheap or len(items) == 1
            else list(self._decode_pool.map(self._try_decode, items))
        )
        by_shape: dict[tuple[int, ...], list[int]] = {}
        errors: dict[int, str] = {}
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, str):
                errors[index] = outcome
            else:
                by_shape.setdefault(outcome.shape, []).append(index)
        rows = [-1] * len(items)
        groups: list[np.ndarray] = []
        row = 0
        for indices in by_shape.values():
            groups.append(np.stack([outcomes[i] for i in indices]))  # type: ignore[misc]
            for index in indices:
                rows[index] = row
                row += 1
        return _Prepared(items, groups, rows, errors, taken_ns)

    def _try_decode(self, item: _Item) -> np.ndarray | str:
        try:
            return self._decode(item)
        except FrameError as exc:
            return str(exc)
        except Exception as exc:  # a decoder bug must not take the batch down
            logger.exception("decoding frame %d failed unexpectedly", item.frame.seq)
            return f"frame {item.frame.seq}: cannot decode: {exc}"

    def _infer(self, prepared: _Prepared) -> list[tuple[Stream, FrameResult]]:
        """Run the model and build every answer (runs in the model thread, in batch order)."""
        n_rows = sum(len(g) for g in prepared.groups)
        start = time.perf_counter_ns()
        try:
            probs = (
                self._classifier.predict(prepared.groups)
                if n_rows
                else np.empty((0, len(self._labels)))
            )
            if probs.shape != (n_rows, len(self._labels)):
                raise InferenceError(
                    f"model returned {probs.shape} for {n_rows} frames and {len(self._labels)} labels"
                )
        except Exception as exc:
            logger.error("model call for %d frames failed: %s", n_rows, exc)
            self.stats.failed_batches += 1
            return self._fail_all(prepared, f"model call failed: {exc}", n_rows)
        inference_us = (time.perf_counter_ns() - start) // 1000
        self.stats.batches += 1
        self.stats.frames += n_rows
        self.stats.batch_sizes.append(n_rows)
        labels = self._labels
        frame_top = probs.argmax(axis=1)
        answers: list[tuple[Stream, FrameResult]] = []
        for index, item in enumerate(prepared.items):
            stream, frame = item.stream, item.frame
            queue_us = (prepared.taken_ns - item.arrived_ns) // 1000
            row = prepared.rows[index]
            if row < 0:
                self.stats.frame_errors += 1
                error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, prepared.errors[index])
                answers.append(
                    (stream, self._error_result(item, error, n_rows, queue_us, inference_us))
                )
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

    def _fail_all(
        self, prepared: _Prepared, message: str, n_rows: int
    ) -> list[tuple[Stream, FrameResult]]:
        answers = []
        for index, item in enumerate(prepared.items):
            if index in prepared.errors:
                error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, prepared.errors[index])
            else:
                error = FrameErrorInfo(StatusCode.INTERNAL, message)
            queue_us = (prepared.taken_ns - item.arrived_ns) // 1000
            answers.append((item.stream, self._error_result(item, error, n_rows, queue_us, 0)))
        return answers

    @staticmethod
    def _error_result(
        item: _Item, error: FrameErrorInfo, batch_size: int, queue_us: int, inference_us: int
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


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("batcher task %s died", task.get_name(), exc_info=task.exception())
