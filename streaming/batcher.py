"""One scheduler for every open stream: fair batches, one model call per tick, ordered answers.

Pipeline (each stage one thread, so batches stay in order end to end)::

    submit() -> per-stream queues -> scheduler -> prepare thread -> model thread
             -> answer thread -> streams

The scheduler takes up to ``max_batch`` frames round-robin across streams once the batch is
full or its oldest frame has waited ``max_delay_ms``, but while the model is busy it waits
until the running call is about to end (less the time the next batch needs to be prepared):
frames taken that late are the freshest a LIVE stream has, and LOSSLESS ones arriving
meanwhile still join the batch. The threads hand batches to each other directly, so the model
starts the next batch the moment it finishes one, without a round trip through the event loop;
answers (windows, top-k) are built beside the next model call.
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

# Batches taken but not yet through the model: one running, the next one being prepared.
_IN_FLIGHT_BATCHES = 2
_EMA = 0.2  # weight of the newest duration in the running estimates


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


class _Durations:
    """Running estimates of model calls (per batch size) and of preparing a batch (per frame).

    Written by the worker threads, read by the scheduler; single float assignments need no lock.
    """

    def __init__(self) -> None:
        self._model_ns: dict[int, float] = {}
        self._prepare_ns_per_frame = 0.0

    def model_call(self, size: int, ns: int) -> None:
        old = self._model_ns.get(size)
        self._model_ns[size] = ns if old is None else old + _EMA * (ns - old)

    def prepared(self, size: int, ns: int) -> None:
        per_frame = ns / max(size, 1)
        old = self._prepare_ns_per_frame
        self._prepare_ns_per_frame = per_frame if old == 0 else old + _EMA * (per_frame - old)

    def model_ns(self, size: int) -> float:
        """Expected call time; errs short (a batch taken early only waits a little longer)."""
        known = self._model_ns
        if size in known:
            return known[size]
        sizes = list(known)  # a snapshot: the model thread may add a size meanwhile
        below = max((k for k in sizes if k < size), default=None)
        above = min((k for k in sizes if k > size), default=None)
        if below is not None and above is not None:
            share = (size - below) / (above - below)
            return known[below] + share * (known[above] - known[below])
        if below is not None:
            return known[below]
        if above is not None:
            return known[above] * size / above
        return 0.0

    def prepare_ns(self, size: int) -> float:
        return self._prepare_ns_per_frame * size


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
        self._in_flight = 0  # batches taken and not yet answered
        # Batches taken and not yet through the model, oldest first: (batch id, taken at, size).
        self._unfinished: deque[tuple[int, int, int]] = deque()
        self._batch_ids = 0
        # (batch id, start ns) of the model call in progress, set by the model thread.
        self._running: tuple[int, int] | None = None
        self._durations = _Durations()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held = 0  # frames of all streams in the server: queued, in a batch or unsent
        self._waiting: set[Stream] = set()
        self._stream_buffer = config.effective_stream_buffer
        self._frame_budget = config.effective_frame_budget
        self._waiter: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._slots = asyncio.Semaphore(_IN_FLIGHT_BATCHES)
        self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-prepare")
        self._decode_pool = ThreadPoolExecutor(config.workers, thread_name_prefix="sc-decode")
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-model")
        self._answer_thread = ThreadPoolExecutor(1, thread_name_prefix="sc-answer")
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = BatcherStats()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._model_thread, self._classifier.warm_up, self._max_batch)
        self._tasks = [asyncio.create_task(self._schedule(), name="sc-scheduler")]
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
        for pool in (
            self._prepare_thread,
            self._decode_pool,
            self._model_thread,
            self._answer_thread,
        ):
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
        if self._pending == 1 or self._pending == self._max_batch:
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
            while self._pending:
                remaining = self._take_at_ns() - time.perf_counter_ns()
                if remaining <= 0:
                    break
                await self._sleep(remaining)
            if not self._pending:  # every pending stream closed while we waited
                self._slots.release()
                continue
            self._dispatch(self._take_batch())

    def _take_at_ns(self) -> int:
        """When the next batch should be taken (perf_counter ns)."""
        size = min(self._pending, self._max_batch)
        at = 0 if size >= self._max_batch else self._oldest_arrival_ns() + self._delay_ns
        model_free_ns = self._model_free_at_ns()
        if model_free_ns is not None:
            # Start preparing just before the model is free; the margin absorbs a late wake-up.
            lead = self._durations.prepare_ns(size) + 1e6 + 0.05 * self._durations.model_ns(size)
            at = max(at, int(model_free_ns - lead))
        return at

    def _model_free_at_ns(self) -> float | None:
        """When the model should finish the batches already taken, or None if there are none."""
        if not self._unfinished:
            return None
        durations = self._durations
        running = self._running
        free_at = float(time.perf_counter_ns())
        for batch_id, taken_ns, size in self._unfinished:
            if running is not None and running[0] == batch_id:
                start = float(running[1])
            else:
                start = max(free_at, taken_ns + durations.prepare_ns(size))
            free_at = start + durations.model_ns(size)
        return free_at

    def _dispatch(self, items: list[_Item]) -> None:
        self._batch_ids += 1
        self._in_flight += 1
        self._unfinished.append((self._batch_ids, time.perf_counter_ns(), len(items)))
        self._prepare_thread.submit(self._prepare_step, self._batch_ids, items)

    # -- loop callbacks from the worker threads ------------------------------------------------

    def _model_done(self) -> None:
        self._unfinished.popleft()
        self._slots.release()
        self._wake()

    def _deliver(self, answers: list[tuple[Stream, FrameResult]]) -> None:
        self._in_flight -= 1
        for stream, result in answers:
            if not stream.closed:
                stream._push(result)
        self._check_idle()

    def _call_loop(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed: the server is gone
            logger.debug("event loop closed; dropping %s", callback.__name__)

    def _check_idle(self) -> None:
        if not self._pending and not self._in_flight:
            self._idle.set()

    # -- worker threads ------------------------------------------------------------------------

    def _decode(self, item: _Item) -> np.ndarray:
        max_side = self._config.max_frame_side
        check_frame(item.frame, max_side)
        return decode_frame(item.frame, self._channels, max_side)

    def _prepare_step(self, batch_id: int, items: list[_Item]) -> None:
        """Prepare thread: decode the batch, then queue it for the model thread."""
        start = time.perf_counter_ns()
        try:
            prepared = self._prepare(items, start)
        except Exception:  # never let one batch stop the pipeline
            logger.exception("unexpected failure preparing a batch of %d frames", len(items))
            message = "internal error while preparing the batch"
            prepared = _Prepared(
                items, [], [-1] * len(items), dict.fromkeys(range(len(items)), message), start
            )
        self._durations.prepared(len(items), time.perf_counter_ns() - start)
        self._submit(self._model_thread, self._model_step, batch_id, prepared)

    def _model_step(self, batch_id: int, prepared: _Prepared) -> None:
        """Model thread: one model call, then hand the answers to the answer thread."""
        self._running = (batch_id, time.perf_counter_ns())
        try:
            outcome = self._predict(prepared)
        finally:
            self._running = None
            self._call_loop(self._model_done)
        self._submit(self._answer_thread, self._answer_step, prepared, outcome)

    def _answer_step(self, prepared: _Prepared, outcome: tuple[np.ndarray, int] | str) -> None:
        """Answer thread: windows and top-k for every frame, then back to the event loop."""
        try:
            if isinstance(outcome, str):
                answers = self._fail_all(
                    prepared, outcome, len(prepared.items) - len(prepared.errors)
                )
            else:
                answers = self._answers(prepared, *outcome)
        except Exception:
            logger.exception(
                "unexpected failure answering a batch of %d frames", len(prepared.items)
            )
            answers = self._fail_all(prepared, "internal error while answering the batch", 0)
        self._call_loop(self._deliver, answers)

    def _submit(self, pool: ThreadPoolExecutor, step: Callable[..., None], *args: object) -> None:
        try:
            pool.submit(step, *args)
        except RuntimeError:  # shut down: the server is stopping
            logger.debug("batcher stopped; dropping a batch")

    def _prepare(self, items: list[_Item], taken_ns: int) -> _Prepared:
        """Decode and group a batch by image size."""
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

    def _predict(self, prepared: _Prepared) -> tuple[np.ndarray, int] | str:
        """The model call: probabilities and its duration in µs, or why it failed."""
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
            return f"model call failed: {exc}"
        elapsed = time.perf_counter_ns() - start
        if n_rows:
            self._durations.model_call(n_rows, elapsed)
        self.stats.batches += 1
        self.stats.frames += n_rows
        self.stats.batch_sizes.append(n_rows)
        return probs, elapsed // 1000

    def _answers(
        self, prepared: _Prepared, probs: np.ndarray, inference_us: int
    ) -> list[tuple[Stream, FrameResult]]:
        """Every frame's answer, its stream's window advanced (in batch order)."""
        n_rows = len(probs)
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
