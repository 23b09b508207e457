"""The batching policy, step by step with a fake clock and a fake model: no threads, no sleeps.

Every step goes through the real wiring: a real ``Batcher`` (with its ``Scheduler``, its
``MemoryBudget``, the ``BatchRunner`` and ``AnswerAssembler``), driven on an event loop that
runs only when a step lets it (``settle``). Only the edges are fakes: the clock, the model, the
pipeline's three threads (steps queued and run by hand: ``take`` prepares a batch when the
Batcher finds it due, ``start_model``/``finish_model`` run the oldest one through the model),
and the intake's worker pool (frames decode inline, or wait at a gate the test opens:
``arrive``). ``send`` plays a message that has arrived (``Batcher.submit``), ``ask`` a reader
asking for its next one (``Batcher.ready_to_receive``), ``collect`` the sender taking answers.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from streaming.server.answers import Answers
from streaming.server.batch_runner import PreparedBatch
from streaming.server.batcher import Batcher
from streaming.server.frame_intake import FrameIntake
from streaming.server.scheduler import SchedulingPolicy, TakenBatch
from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import FrameRejected
from streaming.server.server_values import (
    Delivery,
    Encoding,
    FrameData,
    FrameResult,
    ModelDescription,
    StatusCode,
    StreamSettings,
)
from streaming.server.stream_state import StreamState

MS = 1_000_000
MB = 1_000_000
LABELS = ("a", "b", "c", "d")
LIVE = Delivery.LIVE
LOSSLESS = Delivery.LOSSLESS

# One loop for the whole module, run only inside `settle`; tasks a test leaves parked are
# cancelled when the next harness is made, and at the end.
_LOOP = asyncio.new_event_loop()
_TASKS: list[asyncio.Task[Any]] = []


def _settle() -> None:
    """Let every task run until it finishes or waits (each wake-up is one loop pass)."""

    async def passes() -> None:
        for _ in range(6):
            await asyncio.sleep(0)

    _LOOP.run_until_complete(passes())


def _start(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = _LOOP.create_task(coroutine)
    _TASKS.append(task)
    _settle()
    return task


def _cancel_leftovers() -> None:
    for task in _TASKS:
        task.cancel()
    if _TASKS:
        _settle()
    _TASKS.clear()


@pytest.fixture(scope="module", autouse=True)
def _close_loop() -> Iterator[None]:
    yield
    _cancel_leftovers()
    _LOOP.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


class FakeModel:
    """A ``Classifier`` whose answer is the frame's first byte modulo the label count."""

    def __init__(self, clock: FakeClock, input_width: int = 1) -> None:
        self._clock = clock
        self.call_ns = 0
        self.failing = False
        self.calls: list[int] = []
        self.description = ModelDescription(
            labels=LABELS,
            input_width=input_width,
            input_height=1,
            input_channels=3,
            model_name="fake",
            device="none",
        )

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        self.calls.append(sum(len(g) for g in groups))
        self._clock.advance(self.call_ns)
        if self.failing:
            raise RuntimeError("device lost")
        firsts = np.concatenate([g[:, 0, 0, 0] for g in groups]).astype(np.int64)
        return np.eye(len(LABELS), dtype=np.float32)[firsts % len(LABELS)]

    def warm_up(self, max_batch: int) -> None:
        return None


class ManualThread(Executor):
    """A pipeline thread whose steps wait until the test runs them."""

    def __init__(self) -> None:
        self.steps: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.steps.append((fn, args))
        return Future()

    def run_one(self) -> None:
        fn, args = self.steps.popleft()
        fn(*args)


class InlineIntake(FrameIntake):
    """The real decoder on the calling thread; a frame may wait at a gate the test opens.

    JPEG frames stand in for large encoded payloads (their bytes are never read): they
    "decode" to a model-sized image of their seq. Every other frame is decoded for real.
    """

    def __init__(self, description: ModelDescription) -> None:
        super().__init__(description, 64, 64 * 64, workers=1)
        self._size = (description.input_height, description.input_width, 3)
        self.gate: asyncio.Future[FrameRejected | None] | None = None

    async def decode(self, frame: FrameData) -> np.ndarray | FrameRejected:
        gate, self.gate = self.gate, None
        if gate is not None and (outcome := await gate) is not None:
            return outcome
        return self.decode_now(frame)

    def decode_now(self, frame: FrameData) -> np.ndarray | FrameRejected:
        if frame.encoding == Encoding.JPEG:
            return np.full(self._size, frame.seq % 256, np.uint8)
        return super().decode_now(frame)


def frame(seq: int, *, data: bytes | None = None, width: int = 1) -> FrameData:
    """A RAW_RGB frame one pixel high (3 x width bytes) whose first byte picks its label."""
    return FrameData(
        seq=seq,
        encoding=Encoding.RAW_RGB,
        width=width,
        height=1,
        channels=3,
        data=bytes([seq % 256]) + bytes(3 * width - 1) if data is None else data,
    )


def large_frame(seq: int, nbytes: int) -> FrameData:
    """A JPEG-declared frame of ``nbytes`` whose memory is never touched (pages stay unmapped)."""
    return FrameData(seq, Encoding.JPEG, 0, 0, 0, memoryview(np.zeros(nbytes, np.uint8)))


def policy(**overrides: int) -> SchedulingPolicy:
    values = dict(max_batch=4, max_delay_ns=5 * MS, live_depth=1, stream_buffer=12, frame_budget=32)
    values.update(overrides)
    return SchedulingPolicy(**values)


@dataclass
class Arrival:
    """A message that arrived and waits: to be admitted, or at the decoding gate."""

    task: asyncio.Task[None]
    gate: asyncio.Future[FrameRejected | None] | None

    @property
    def decoding(self) -> bool:
        return self.gate is not None and not self.task.done()

    def finish(self, error: FrameRejected | None = None) -> None:
        """Decoding ends (with ``error``, the frame is rejected): the frame is queued."""
        assert self.gate is not None and not self.gate.done()
        self.gate.set_result(error)
        _settle()
        self.task.result()

    def stop(self) -> None:
        """The reader is stopped while it waits (the server cancels it)."""
        self.task.cancel()
        _settle()


@dataclass
class Harness:
    policy: SchedulingPolicy = field(default_factory=policy)
    input_width: int = 1
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        _cancel_leftovers()
        self.model = FakeModel(self.clock, self.input_width)
        self.intake = InlineIntake(self.model.description)
        self.prepare_thread, self.model_thread = ManualThread(), ManualThread()
        self.answer_thread = ManualThread()
        self.batcher = Batcher(
            self.model,
            ServerConfig(),
            clock=self.clock,
            policy=self.policy,
            intake=self.intake,
            pipeline_threads=(self.prepare_thread, self.model_thread, self.answer_thread),
        )
        self.batcher.bind_inline(self._call_inline)
        self.scheduler = self.batcher.scheduler  # read for counts only
        self.stats = self.batcher.stats
        self.durations = self.batcher.durations
        self.batches: list[TakenBatch] = []
        self.streams: list[StreamState] = []
        self.answers: list[Answers] = []

    def _call_inline(self, callback: Callable[..., None], *args: Any) -> None:
        if len(args) == 2:  # (batch, answers): what the answer thread hands the event loop
            self.answers.append(args[1])
        callback(*args)

    @property
    def prepared(self) -> list[PreparedBatch]:
        """Batches taken and prepared, waiting for the model."""
        return [args[0] for _, args in self.model_thread.steps]

    def open(self, delivery: Delivery = LOSSLESS, window: int = 1) -> StreamState:
        settings = StreamSettings("c", f"s{len(self.streams)}", window, delivery, top_k=2)
        stream = self.batcher.open_stream(settings)
        self.streams.append(stream)
        return stream

    def send(
        self, stream: StreamState, seq: int, data: bytes | None = None, width: int = 1
    ) -> bool:
        """A message arrives; whether its frame was taken (else the sender would wait)."""
        submitted = self.submit(stream, frame(seq, data=data, width=width))
        if submitted.done():
            submitted.result()
            return True
        submitted.cancel()
        _settle()
        return False

    def submit(self, stream: StreamState, message: FrameData) -> asyncio.Task[None]:
        """A message arrives; the task ends once its frame is queued (or waits meanwhile)."""
        return _start(self.batcher.submit(stream, message))

    def arrive(self, stream: StreamState, nbytes: int, seq: int = 0) -> Arrival:
        """A large message arrives and stops at the decoding gate (or waits to be admitted)."""
        gate = _LOOP.create_future()
        self.intake.gate = gate
        task = self.submit(stream, large_frame(seq, nbytes))
        if self.intake.gate is gate:  # never reached decoding: waits to be admitted
            self.intake.gate = None
            return Arrival(task, None)
        return Arrival(task, gate)

    def sent_before(self, stream: StreamState, nbytes: int) -> None:
        """The stream sent a message of ``nbytes`` earlier, answered since: only its size stays."""
        self.arrive(stream, nbytes).finish()
        self.drain()
        self.collect(stream)

    def ask(self, stream: StreamState) -> asyncio.Task[None]:
        """The reader asks for its next message; the task ends once room is reserved."""
        return _start(self.batcher.ready_to_receive(stream))

    def due(self) -> bool:
        at = self.scheduler.next_take_ns()
        return at is not None and at <= self.clock()

    def take(self) -> TakenBatch | None:
        """The scheduling task's step: a due batch goes to the pipeline and is prepared."""
        if self.batcher.dispatch_due() != 0:
            return None
        batch: TakenBatch = self.prepare_thread.steps[0][1][0]
        self.batches.append(batch)
        self.prepare_thread.run_one()
        return batch

    def start_model(self) -> PreparedBatch:
        """What the model thread does before its call (``PipelineCallbacks.model_started``)."""
        prepared = self.prepared[0]
        self.batcher._model_started(prepared.batch)
        return prepared

    def finish_model(self) -> Answers:
        """The model thread's step, then the answer thread's: the answers reach the streams."""
        self.model_thread.run_one()
        self.answer_thread.run_one()
        _settle()
        return self.answers[-1]

    def run_model(self) -> Answers:
        self.start_model()
        return self.finish_model()

    def collect(self, stream: StreamState) -> list[FrameResult]:
        results = []
        while (result := self.batcher.take_result(stream)) is not None:
            results.append(result)
        _settle()
        return results

    def close(self, stream: StreamState) -> None:
        self.batcher.close_stream(stream)
        _settle()

    def drain(self, limit: int = 10_000) -> None:
        """Run everything to the end as a server would (bounded)."""
        for _ in range(limit):
            if self.scheduler.idle and not self.prepared:
                return
            if self.take() is None:
                if self.prepared:
                    self.run_model()
                else:
                    self.clock.advance(self.policy.max_delay_ns + MS)
        raise AssertionError("the scheduler did not drain")


def sources(batch: TakenBatch) -> list[int]:
    return [item.stream.id for item in batch.items]


# -- round-robin fairness ------------------------------------------------------------------------

ROUND_ROBIN = [
    pytest.param([3, 3], 4, [1, 2, 1, 2], id="two-streams-alternate"),
    pytest.param([8, 1, 1], 4, [1, 2, 3, 1], id="flooder-gets-one-per-pass"),
    pytest.param([1, 8], 4, [1, 2, 2, 2], id="lone-stream-fills-the-rest"),
    pytest.param([5], 3, [1, 1, 1], id="single-stream-fills-the-batch"),
    pytest.param([1, 1, 1, 1, 1], 4, [1, 2, 3, 4], id="more-streams-than-room"),
    pytest.param([2, 2, 2], 1, [1], id="batch-of-one"),
    pytest.param([0, 2, 0, 2], 8, [2, 4, 2, 4], id="idle-streams-skipped"),
]


@pytest.mark.parametrize(("counts", "max_batch", "expected"), ROUND_ROBIN)
def test_round_robin_batch_composition(
    counts: list[int], max_batch: int, expected: list[int]
) -> None:
    h = Harness(policy(max_batch=max_batch, stream_buffer=100, frame_budget=1000))
    streams = [h.open() for _ in counts]
    for stream, count in zip(streams, counts, strict=True):
        for seq in range(count):
            assert h.send(stream, seq)
    assert sources(h.scheduler.take_batch()) == expected


@pytest.mark.parametrize("max_batch", range(1, 6))
@pytest.mark.parametrize("counts", list(itertools.product(range(4), repeat=3)))
def test_every_batch_is_fair_full_and_ordered(counts: tuple[int, ...], max_batch: int) -> None:
    # given: three streams with every combination of 0..3 pending frames
    h = Harness(policy(max_batch=max_batch, stream_buffer=100, frame_budget=1000))
    streams = [h.open() for _ in counts]
    for stream, count in zip(streams, counts, strict=True):
        for seq in range(count):
            h.send(stream, seq)
    served = [0, 0, 0]
    while h.scheduler.pending_count:
        # when
        batch = h.scheduler.take_batch()
        # then: as full as possible, no stream more than one frame ahead of a waiting one,
        # and each stream's frames in the order they came
        assert len(batch.items) == min(max_batch, sum(counts) - sum(served))
        for item in batch.items:
            index = item.stream.id - 1
            assert item.frame.seq == served[index]
            served[index] += 1
        still_waiting = [served[i] for i in range(3) if served[i] < counts[i]]
        assert all(max(served) <= waiting + 1 for waiting in still_waiting)
    assert served == list(counts)


@pytest.mark.parametrize("streams", [2, 5, 9, 17])
@pytest.mark.parametrize("max_batch", [1, 2, 4, 8])
def test_a_flooding_stream_cannot_starve_a_newcomer(streams: int, max_batch: int) -> None:
    # given: busy streams with deep queues
    h = Harness(policy(max_batch=max_batch, stream_buffer=1000, frame_budget=100_000))
    for _ in range(streams - 1):
        busy = h.open()
        for seq in range(200):
            h.send(busy, seq)
    # when: a new stream sends one frame
    newcomer = h.open()
    h.send(newcomer, 0)
    # then: it is served within ceil(streams / max_batch) batches, not after the backlog
    batches = [sources(h.scheduler.take_batch()) for _ in range(math.ceil(streams / max_batch))]
    assert any(newcomer.id in batch for batch in batches)


# -- when a batch is taken: max batch, max delay, model busy ------------------------------------


@pytest.mark.parametrize("delay_ms", [0, 1, 5, 50])
@pytest.mark.parametrize("max_batch", range(1, 7))
@pytest.mark.parametrize("pending", range(1, 7))
def test_full_batch_is_taken_at_once_else_after_the_delay(
    pending: int, max_batch: int, delay_ms: int
) -> None:
    h = Harness(policy(max_batch=max_batch, max_delay_ns=delay_ms * MS))
    stream = h.open()
    first_arrival = h.clock()
    for seq in range(pending):
        h.send(stream, seq)
        h.clock.advance(MS // 10)
    expected = 0 if pending >= max_batch else first_arrival + delay_ms * MS
    assert h.scheduler.next_take_ns() == expected


def test_nothing_pending_means_no_batch_is_due() -> None:
    h = Harness()
    assert h.scheduler.next_take_ns() is None
    stream = h.open()
    h.send(stream, 0)
    h.close(stream)
    assert h.scheduler.next_take_ns() is None
    assert h.scheduler.pending_count == 0


@pytest.mark.parametrize(
    ("pending_before", "sent", "wake"),
    [
        pytest.param(0, 1, True, id="first-frame-starts-the-delay"),
        pytest.param(1, 1, False, id="second-frame-changes-nothing"),
        pytest.param(2, 1, False, id="third-frame-changes-nothing"),
        pytest.param(3, 1, True, id="frame-that-fills-the-batch"),
        pytest.param(4, 1, False, id="frame-beyond-a-full-batch"),
    ],
)
def test_submit_says_when_the_next_batch_may_be_due_sooner(
    pending_before: int, sent: int, wake: bool
) -> None:
    h = Harness(policy(max_batch=4))
    stream = h.open()
    for seq in range(pending_before):
        h.scheduler.submit(stream, frame(seq))
    assert h.scheduler.submit(stream, frame(pending_before)) is wake


@pytest.mark.parametrize("model_ms", [2, 10, 40, 100])
@pytest.mark.parametrize("prepare_ms_per_frame", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("pending", [1, 2, 4])
def test_while_the_model_is_busy_a_batch_is_taken_just_before_it_is_free(
    model_ms: int, prepare_ms_per_frame: float, pending: int
) -> None:
    # given: the model's call time and the preparation time are known, one batch is running
    h = Harness(policy(max_batch=4, max_delay_ns=0))
    stream = h.open()
    h.send(stream, 0)
    assert h.take() is not None
    for size in range(1, 5):
        h.durations.model_call(size, model_ms * MS)
    h.durations.prepared(4, int(4 * prepare_ms_per_frame * MS))
    h.start_model()
    started = h.clock()
    # when: frames arrive while it runs
    h.clock.advance(MS)
    for seq in range(1, pending + 1):
        h.send(stream, seq)
    # then: the next batch is due just before the model is free, less its preparation
    lead = pending * prepare_ms_per_frame * MS + MS + 0.05 * model_ms * MS
    due_anyway = 0 if pending >= 4 else h.clock()  # a full batch is due at once
    expected = max(due_anyway, int(started + model_ms * MS - lead))
    assert h.scheduler.next_take_ns() == pytest.approx(expected, abs=1)
    # and a frame sent meanwhile still joins that batch (LOSSLESS waits for the late take)
    h.send(stream, pending + 1)
    h.clock.now = max(h.clock.now, h.scheduler.next_take_ns() or 0)
    batch = h.take()
    assert batch is not None
    assert [i.frame.seq for i in batch.items] == list(range(1, min(pending + 2, 5)))


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_no_more_than_in_flight_batches_are_taken_before_the_model_finishes_one(
    in_flight: int,
) -> None:
    h = Harness(policy(max_batch=1, in_flight_batches=in_flight))
    h.durations.model_call(1, 0)  # timed, instant: batches are due at once while one runs
    stream = h.open()
    for seq in range(in_flight + 2):
        h.send(stream, seq)
    for _ in range(in_flight):
        assert h.take() is not None
    assert h.scheduler.next_take_ns() is None
    h.run_model()
    assert h.take() is not None


@pytest.mark.parametrize(
    ("timed_sizes", "taken_while_running"),
    [
        pytest.param((1, 2, 3, 4), True, id="size-timed-taken-before-the-call-ends"),
        pytest.param((1, 2, 3), False, id="larger-than-timed-waits-for-the-call"),
        pytest.param((), False, id="nothing-timed-waits-for-the-call"),
    ],
)
def test_a_batch_is_taken_early_only_while_a_call_of_a_timed_size_runs(
    timed_sizes: tuple[int, ...], taken_while_running: bool
) -> None:
    # given: a batch of 4 in the model, with or without a call that large ever timed
    h = Harness(policy(max_batch=4, max_delay_ns=5 * MS))
    for size in timed_sizes:
        h.durations.model_call(size, 100 * MS)
    lossless = h.open()
    for seq in range(4):
        h.send(lossless, seq)
    assert h.take() is not None
    h.start_model()
    # when: a LIVE frame arrives, and the running call's estimate is long past
    live = h.open(LIVE)
    h.send(live, 1)
    h.clock.advance(1000 * MS)
    # then: a call larger than any timed may run far past its estimate (issue 22: a burst's
    # first batches of 32), so the LIVE frame is not taken to wait for it, going stale
    assert h.due() is taken_while_running
    if taken_while_running:
        early = h.take()
        assert early is not None
        assert [i.frame.seq for i in early.items] == [1]
        return
    # and a newer frame replaces it; the call's end lets the batch be taken
    h.send(live, 2)
    assert h.take() is None
    h.finish_model()
    h.clock.advance(5 * MS)  # max_delay: a lone frame's batch is due
    batch = h.take()
    assert batch is not None
    assert [i.frame.seq for i in batch.items] == [2]
    assert live.dropped == 1


def test_a_live_frame_waits_for_the_busy_model_so_a_newer_one_replaces_it() -> None:
    # given: a model known to take 400 ms, one batch running
    h = Harness(policy(max_batch=4, max_delay_ns=5 * MS))
    for size in range(1, 5):
        h.durations.model_call(size, 400 * MS)
    live = h.open(LIVE)
    h.send(live, 1)
    h.clock.advance(5 * MS)
    assert h.take() is not None
    h.start_model()
    # when: frame 2 arrives 100 ms in, frame 3 at 200 ms
    h.clock.advance(100 * MS)
    h.send(live, 2)
    h.clock.advance(100 * MS)
    assert not h.due()  # a batch taken now would wait ~200 ms for the model
    h.send(live, 3)
    h.clock.advance(200 * MS)
    h.finish_model()
    batch = h.take()
    # then: the fresher frame 3 went in place of frame 2, which was dropped and counted
    assert batch is not None
    assert [i.frame.seq for i in batch.items] == [3]
    assert live.dropped == 1
    h.run_model()
    assert [r.seq for r in h.collect(live)] == [1, 3]


# -- LIVE replacement and drops -----------------------------------------------------------------


@pytest.mark.parametrize("sent", range(1, 11))
@pytest.mark.parametrize("live_depth", range(1, 5))
def test_live_keeps_only_the_newest_frames_and_counts_the_rest(sent: int, live_depth: int) -> None:
    h = Harness(policy(live_depth=live_depth, max_batch=16))
    live = h.open(LIVE)
    for seq in range(sent):
        assert h.send(live, seq)
    kept = min(live_depth, sent)
    assert [item.frame.seq for item in live.pending] == list(range(sent - kept, sent))
    assert live.dropped == h.stats.dropped == sent - kept
    assert h.scheduler.held_frames == live.outstanding == kept
    h.drain()
    results = h.collect(live)
    assert [r.seq for r in results] == list(range(sent - kept, sent))
    assert results[-1].dropped_frames == sent - kept
    assert h.scheduler.held_frames == 0


@pytest.mark.parametrize("sent", range(1, 11))
@pytest.mark.parametrize("live_depth", range(1, 5))
def test_lossless_never_drops(sent: int, live_depth: int) -> None:
    h = Harness(policy(live_depth=live_depth, max_batch=16))
    stream = h.open(LOSSLESS)
    for seq in range(sent):
        assert h.send(stream, seq)
    assert len(stream.pending) == sent
    h.drain()
    assert [r.seq for r in h.collect(stream)] == list(range(sent))
    assert stream.dropped == h.stats.dropped == 0


# -- the frame budget ---------------------------------------------------------------------------


def admitted_count(h: Harness, stream: StreamState, limit: int = 1000) -> int:
    for seq in range(limit):
        if not h.send(stream, seq):
            return seq
    return limit


@pytest.mark.parametrize("delivery", [LOSSLESS, LIVE])
@pytest.mark.parametrize("others", range(0, 5))
@pytest.mark.parametrize("stream_buffer", [1, 2, 3, 6, 12])
@pytest.mark.parametrize("frame_budget", [1, 4, 8, 16])
def test_a_sender_waits_at_its_buffer_or_the_server_budget_but_always_gets_two(
    delivery: Delivery, others: int, stream_buffer: int, frame_budget: int
) -> None:
    # given: other streams each holding two frames (which always pass)
    h = Harness(policy(stream_buffer=stream_buffer, frame_budget=frame_budget, live_depth=1000))
    for _ in range(others):
        other = h.open()
        assert h.send(other, 0) and h.send(other, 1)
    # when: one more stream sends until told to wait
    stream = h.open(delivery)
    count = admitted_count(h, stream)
    # then: it got its two frames, and beyond them as many as its buffer and the budget allow
    assert count == max(2, min(stream_buffer, frame_budget - 2 * others))
    assert h.scheduler.held_frames == 2 * others + count
    assert h.scheduler.held_frames <= max(frame_budget, 2 * (others + 1))


@pytest.mark.parametrize(
    ("frees", "admitted_again"),
    [
        pytest.param("nothing", False, id="no-release-keeps-waiting"),
        pytest.param("batch-answered-unsent", False, id="answered-but-unsent-still-counts"),
        pytest.param("answers-sent", True, id="sent-answers-free-the-budget"),
        pytest.param("other-closed", True, id="closing-another-stream-frees-its-frames"),
    ],
)
def test_budget_is_freed_only_when_frames_leave_the_server(
    frees: str, admitted_again: bool
) -> None:
    # given: a budget of 6, two streams at the limit
    h = Harness(policy(frame_budget=6, stream_buffer=100, max_batch=8))
    first, second = h.open(), h.open()
    for seq in range(4):
        h.send(first, seq)
    assert admitted_count(h, second) == 2
    # when
    if frees in ("batch-answered-unsent", "answers-sent"):
        h.drain()
    if frees == "answers-sent":
        h.collect(first)
        h.collect(second)
    if frees == "other-closed":
        h.close(first)
    # then
    assert h.send(second, 9) is admitted_again


def test_a_waiting_sender_is_woken_when_the_budget_has_room_again() -> None:
    h = Harness(policy(frame_budget=4, stream_buffer=100))
    first, second = h.open(), h.open()
    for seq in range(2):
        h.send(first, seq)
        h.send(second, seq)
    waiting = h.submit(second, frame(2))
    assert not waiting.done()
    h.drain()
    assert not waiting.done()  # answered but still held: no room yet
    h.collect(first)
    assert waiting.done()
    assert [item.frame.seq for item in second.pending] == [2]


# -- the memory budget -------------------------------------------------------------------------


@pytest.mark.parametrize("stream_buffer", [4, 100])
@pytest.mark.parametrize("memory_budget", [1, 30, 61, 300, 3000])
@pytest.mark.parametrize("width", [1, 10, 100])
def test_a_lossless_sender_waits_past_the_memory_budget_but_always_gets_two(
    width: int, memory_budget: int, stream_buffer: int
) -> None:
    h = Harness(
        policy(memory_budget=memory_budget, stream_buffer=stream_buffer, frame_budget=1000),
        input_width=width,  # RAW frames at the model's size are queued as received
    )
    stream = h.open(LOSSLESS)
    count = 0
    while h.send(stream, count, width=width):
        count += 1
    frame_bytes = 3 * width
    # the arriving payload counts too while its sender asks to queue it: beyond two frames,
    # frame n is taken while n frames' bytes stay under the budget
    assert count == max(2, min(stream_buffer, math.ceil(memory_budget / frame_bytes) - 1))
    assert h.scheduler.held_bytes == count * frame_bytes
    assert stream.dropped == 0


@pytest.mark.parametrize("sent", range(3, 12))
@pytest.mark.parametrize("memory_budget", [6, 9, 12])
def test_a_live_stream_past_the_memory_budget_drops_instead_of_waiting(
    sent: int, memory_budget: int
) -> None:
    # given: frames of 3 bytes, a LIVE stream allowed many pending frames
    h = Harness(policy(memory_budget=memory_budget, live_depth=100, stream_buffer=100))
    live = h.open(LIVE)
    # when: it sends more than the budget holds
    for seq in range(sent):
        assert h.send(live, seq)  # never told to wait
    # then: it holds what fits (at least two frames), the newest ones, and counts the rest;
    # the arriving payload counts while it is queued, so n frames fit while n * 3 < budget
    kept = min(sent, max(2, math.ceil(memory_budget / 3) - 1))
    assert [item.frame.seq for item in live.pending] == list(range(sent - kept, sent))
    assert live.dropped == h.stats.dropped == sent - kept
    assert h.scheduler.held_bytes == 3 * kept


def test_a_live_frame_arriving_past_the_budget_with_nothing_queued_is_dropped() -> None:
    h = Harness(policy(memory_budget=6, live_depth=4, max_batch=4))
    live = h.open(LIVE)
    h.send(live, 0)
    h.send(live, 1)
    assert h.take() is None
    h.clock.advance(10 * MS)
    assert h.take() is not None  # both frames are in a batch, nothing is queued
    assert h.send(live, 2)
    assert live.dropped == 1 and not live.pending
    h.drain()
    results = h.collect(live)
    assert [r.seq for r in results] == [0, 1]
    assert h.send(live, 3)  # the batch is answered and sent: room again
    assert [item.frame.seq for item in live.pending] == [3]


def test_bytes_count_the_decoded_image_and_payloads_being_decoded() -> None:
    h = Harness()
    stream = h.open()
    # a large payload being decoded counts, and keeps the server from being idle
    arrival = h.arrive(stream, 4 * MB)
    assert arrival.decoding
    assert h.scheduler.held_bytes == 4 * MB
    assert not h.batcher.idle
    # what is queued is the small decoded image, not the payload
    arrival.finish()
    assert h.scheduler.held_bytes == 3
    h.drain()
    assert h.scheduler.held_bytes == 0
    assert [r.seq for r in h.collect(stream)] == [0]


# -- messages being received: room is reserved before a read ---------------------------------


@pytest.mark.parametrize(
    ("budget", "streams", "largest", "held_by_others", "may"),
    [
        pytest.param(100 * MB, 1, 0, 99 * MB, True, id="first-message-unannounced"),
        pytest.param(100 * MB, 1, 48 * MB, 0, True, id="large-fits-an-empty-budget"),
        pytest.param(100 * MB, 1, 48 * MB, 52 * MB, True, id="large-fits-exactly"),
        pytest.param(100 * MB, 1, 48 * MB, 53 * MB, False, id="large-waits-past-the-budget"),
        pytest.param(100 * MB, 4, 12 * MB, 95 * MB, True, id="within-its-fair-share"),
        pytest.param(100 * MB, 5, 12 * MB, 95 * MB, False, id="share-shrinks-with-streams"),
        pytest.param(100 * MB, 5, 12 * MB, 88 * MB, True, id="over-share-but-room"),
        pytest.param(100 * MB, 2, 200 * MB, 50 * MB, True, id="larger-than-budget-needs-half"),
        pytest.param(100 * MB, 2, 200 * MB, 51 * MB, False, id="larger-than-budget-waits"),
    ],
)
def test_a_reader_waits_for_room_for_its_largest_message(
    budget: int, streams: int, largest: int, held_by_others: int, may: bool
) -> None:
    h = Harness(policy(memory_budget=budget))
    reader, *others = [h.open() for _ in range(streams)]
    if largest:
        h.sent_before(reader, largest)
    if held_by_others:
        other = others[0] if others else h.open()
        assert h.arrive(other, held_by_others).decoding  # another stream's payload
    assert reader.memory.largest == largest
    assert h.ask(reader).done() is may


def test_a_reservation_counts_until_the_message_arrives_or_the_stream_closes() -> None:
    h = Harness(policy(memory_budget=100 * MB))
    stream, other, third = h.open(), h.open(), h.open()
    scheduler = h.scheduler

    def counted() -> tuple[int, int]:
        return scheduler.held_bytes, scheduler.reserved_bytes

    h.sent_before(stream, 40 * MB)
    h.sent_before(third, 40 * MB)
    assert counted() == (0, 0)
    # the read is asked for: the stream's largest is reserved
    assert h.ask(stream).done()
    assert counted() == (0, 40 * MB)
    # another stream's first message is never announced: it counts once it has arrived
    arrival = h.arrive(other, 30 * MB)
    assert counted() == (30 * MB, 40 * MB)
    asking = h.ask(third)
    assert not asking.done()  # 30 held + 40 reserved + 40: the budget is spoken for
    # a smaller message arrives: it counts instead of the reservation
    smaller = h.arrive(stream, 10 * MB)
    assert counted() == (40 * MB, 0)
    assert stream.memory.largest == 40 * MB
    smaller.stop()
    assert asking.done()  # what the stream no longer holds or reserves is room again
    assert counted() == (30 * MB, 40 * MB)
    # closing frees the reservation; releasing again changes nothing
    h.close(third)
    h.batcher.not_receiving(third)
    assert counted() == (30 * MB, 0)
    arrival.finish()
    assert counted() == (3, 0)


def test_a_quiet_streams_reservation_makes_no_one_wait_to_queue_or_drop() -> None:
    # given: a stream that sent one 90 MB frame and now waits for its next one (90 MB reserved)
    h = Harness(policy(memory_budget=100 * MB, live_depth=4, stream_buffer=8), input_width=10)
    quiet, lossless, live = h.open(), h.open(), h.open(LIVE)
    h.sent_before(quiet, 90 * MB)
    assert h.ask(quiet).done()
    assert h.scheduler.reserved_bytes == 50 * MB  # at most half the budget
    # when: small-frame streams send more than the two frames every stream may always hold
    sent = [h.send(lossless, seq, width=10) for seq in range(4)]
    for seq in range(4):
        h.send(live, seq, width=10)
    # then: the reservation is not memory in use: nobody waits or drops for it
    assert sent == [True] * 4
    assert live.dropped == 0 and len(live.pending) == 4


def test_readers_waiting_for_room_are_served_first_come_first_served() -> None:
    # given: three streams of 40 MB frames and a budget of 100 MB, two of them holding a frame
    h = Harness(policy(memory_budget=100 * MB))
    first, second, third = h.open(), h.open(), h.open()
    for stream in (first, second, third):
        h.sent_before(stream, 40 * MB)
    assert h.ask(first).done() and h.ask(second).done()
    # when: the third waits for room, then the first's frame arrives and is decoded
    third_asks = h.ask(third)
    assert not third_asks.done()
    h.arrive(first, 40 * MB).finish()
    # then: the room goes to the third, already waiting; the first, asking again, waits behind
    assert third_asks.done()
    first_asks = h.ask(first)
    assert not first_asks.done()  # 80 MB reserved: no room for another 40
    assert not h.scheduler.may_receive(first)
    h.arrive(second, 40 * MB).finish()
    assert first_asks.done()


@pytest.mark.parametrize("head_closes", [False, True])
def test_a_closed_stream_leaves_the_queue_of_readers(head_closes: bool) -> None:
    h = Harness(policy(memory_budget=100 * MB))
    holder, waiting, behind = h.open(), h.open(), h.open()
    for stream in (holder, waiting, behind):
        h.sent_before(stream, 60 * MB)
    arrival = h.arrive(holder, 60 * MB)
    waiting_asks, behind_asks = h.ask(waiting), h.ask(behind)  # 50 MB each: both wait, in order
    assert not waiting_asks.done() and not behind_asks.done()
    if head_closes:
        h.close(waiting)
    arrival.finish()
    # the head of the queue goes first; once it has left, the next one does
    assert waiting_asks.done()
    assert behind_asks.done() is head_closes


IDLE_NS = 5_000 * MS
FIRST_IDLE_NS = 500 * MS  # a call's first message (StreamConfig) comes with the call


@pytest.mark.parametrize(
    ("idle_for", "configured", "held_elsewhere", "ended"),
    [
        pytest.param(IDLE_NS, True, 0, 1, id="idle-long-enough:-the-oldest-is-enough"),
        pytest.param(IDLE_NS, True, 50 * MB, 2, id="a-larger-shortfall-ends-both"),
        pytest.param(IDLE_NS - 1, True, 0, 0, id="not-idle-long-enough"),
        pytest.param(FIRST_IDLE_NS, False, 0, 1, id="config-reads-wait-less"),
        pytest.param(FIRST_IDLE_NS - 1, False, 0, 0, id="config-reads-not-idle-long-enough"),
        pytest.param(IDLE_NS, True, 90 * MB, 0, id="ending-both-would-not-be-enough"),
    ],
)
def test_idle_reads_holding_the_room_a_reader_waits_for_are_ended(
    idle_for: int, configured: bool, held_elsewhere: int, ended: int
) -> None:
    # given: a 100 MB budget, a first message expected to need 40 MB, and two streams whose
    # reads for their first frames (or StreamConfigs) hold 80 MB (their clients sent nothing)
    h = Harness(policy(memory_budget=100 * MB, first_message=40 * MB))
    holders = [h.open(), h.open()]
    waiter, busy = h.open(), h.open()
    for stream in (*holders, waiter, busy):
        if configured:
            h.batcher.configure(stream, stream.settings)
    assert all(h.ask(holder).done() for holder in holders)
    if held_elsewhere:
        h.sent_before(busy, 5 * MB)  # fits its share: read without waiting
        h.arrive(busy, held_elsewhere)  # decoding: held
    # when: another stream's reader waits for room, and time passes
    asking = h.ask(waiter)
    assert not asking.done()
    h.clock.advance(idle_for)
    # then: the oldest idle reads are ended, as many as the waiter needs, or none at all
    idle_readers = h.scheduler.idle_readers_in_the_way
    assert idle_readers(waiter, IDLE_NS, FIRST_IDLE_NS) == holders[:ended]
    assert idle_readers(busy, IDLE_NS, FIRST_IDLE_NS) == []  # only the first waiting


def test_an_idle_read_ended_for_a_waiting_reader_gives_it_the_room() -> None:
    h = Harness(policy(memory_budget=100 * MB, first_message=40 * MB))
    holder, other, waiter = h.open(), h.open(), h.open()
    for stream in (holder, other, waiter):
        h.batcher.configure(stream, stream.settings)
    assert h.ask(holder).done() and h.ask(other).done()
    asking = h.ask(waiter)
    h.clock.advance(int(ServerConfig().room_timeout_s * 1e9))
    h.batcher._end_idle_readers(waiter)
    # the holder is told why (its service sends it) and gives the room back as it closes
    assert holder.ended_by is not None and "--room-timeout" in holder.ended_by
    assert other.ended_by is None and not asking.done()
    assert _LOOP.run_until_complete(holder.next_result()) is None
    h.close(holder)
    assert asking.done()


def test_a_reader_waiting_for_room_is_woken_while_the_frame_budget_is_full() -> None:
    # given: the frame budget full of small frames, and a new stream's reader waiting for room
    # for its first message while another stream's large payload is being decoded
    h = Harness(policy(memory_budget=100 * MB, frame_budget=2, first_message=50 * MB))
    small, large, reader = h.open(), h.open(), h.open()
    assert h.send(small, 0) and h.send(small, 1)
    arrival = h.arrive(large, 60 * MB)
    asking = h.ask(reader)
    assert not asking.done()
    # when: the payload is decoded and its bytes freed, frames still filling the frame budget
    arrival.finish()
    assert h.scheduler.held_frames > 2
    # then: the reader gets the room (readers wait for bytes only)
    assert asking.done()


def test_a_waiting_reader_is_woken_when_bytes_are_freed() -> None:
    h = Harness(policy(memory_budget=100 * MB))
    big, other = h.open(), h.open()
    h.sent_before(big, 60 * MB)
    arrival = h.arrive(other, 60 * MB)
    asking = h.ask(big)
    assert not asking.done()
    arrival.finish()
    assert asking.done()


def test_a_frame_that_failed_to_decode_on_arrival_is_answered_in_order() -> None:
    h = Harness()
    stream = h.open()
    h.send(stream, 0)
    # decoded on arrival, as it is not the model's size: rejected there
    assert h.send(stream, 1, data=b"\x01", width=2)
    h.send(stream, 2)
    h.drain()
    results = h.collect(stream)
    assert [r.seq for r in results] == [0, 1, 2]
    assert [r.error.message if r.error else None for r in results] == [
        None,
        "frame 1: data is 1 bytes but 1x2x3 needs 6",
        None,
    ]


@pytest.mark.parametrize(
    ("step", "bytes_after"),
    [
        pytest.param("taken", 60, id="a-batch-still-holds-its-frames"),
        pytest.param("answered", 0, id="answers-hold-no-frame-bytes"),
        pytest.param("closed-while-queued", 0, id="closing-frees-queued-bytes"),
    ],
)
def test_bytes_leave_the_budget_when_frames_are_answered_or_discarded(
    step: str, bytes_after: int
) -> None:
    h = Harness(policy(max_batch=2), input_width=10)
    stream = h.open()
    h.send(stream, 0, width=10)
    h.send(stream, 1, width=10)
    if step == "closed-while-queued":
        h.close(stream)
    else:
        assert h.take() is not None
        if step == "answered":
            h.run_model()
            assert h.scheduler.held_frames == 2  # unsent answers still count as frames
    assert h.scheduler.held_bytes == bytes_after


def test_a_lossless_sender_waiting_for_bytes_is_woken_when_a_batch_is_answered() -> None:
    h = Harness(policy(memory_budget=60, max_batch=4), input_width=10)
    first, second = h.open(), h.open()
    for seq in range(2):
        h.send(first, seq, width=10)
        h.send(second, seq, width=10)
    waiting = h.submit(second, frame(2, width=10))
    assert not waiting.done()
    assert h.take() is not None
    h.run_model()  # frees every byte; the frames stay held until their answers are sent
    assert waiting.done()


# -- answers: order, errors, a failing model ----------------------------------------------------


@pytest.mark.parametrize("streams", [1, 2, 3])
@pytest.mark.parametrize("frames", [1, 5, 13])
@pytest.mark.parametrize("max_batch", [1, 3, 8])
def test_each_stream_is_answered_in_order_with_its_own_window(
    streams: int, frames: int, max_batch: int
) -> None:
    h = Harness(policy(max_batch=max_batch, stream_buffer=100, frame_budget=1000))
    opened = [h.open(window=3) for _ in range(streams)]
    for seq in range(frames):
        for stream in opened:
            h.send(stream, seq)
    h.drain()
    assert all(size <= max_batch for size in h.model.calls)
    for stream in opened:
        results = h.collect(stream)
        assert [r.seq for r in results] == list(range(frames))
        assert [r.frame_label for r in results] == [LABELS[s % 4] for s in range(frames)]
        assert [r.window_frames for r in results] == [min(s + 1, 3) for s in range(frames)]


@pytest.mark.parametrize("bad_at", [None, 0, 1, 3])
@pytest.mark.parametrize("size", [1, 2, 4])
def test_a_failing_model_call_answers_every_frame_of_its_batch_with_an_error(
    size: int, bad_at: int | None
) -> None:
    # given: a batch (maybe with one undecodable frame) and a model that fails
    h = Harness(policy(max_batch=size))
    streams = [h.open() for _ in range(size)]
    for index, stream in enumerate(streams):
        h.send(stream, index, data=b"\x00" if index == bad_at else None)
    h.model.failing = True
    assert h.take() is not None
    # when
    answers = h.run_model()
    # then: every frame has exactly one answer, INTERNAL for the model, INVALID_ARGUMENT for
    # the frame that never reached it
    assert [stream.id for stream, _ in answers] == [s.id for s in streams]
    for index, (_, result) in enumerate(answers):
        assert result.error is not None
        if index == bad_at:
            assert result.error.code == StatusCode.INVALID_ARGUMENT
            assert "data is 1 bytes" in result.error.message
        else:
            assert result.error.code == StatusCode.INTERNAL
            assert "device lost" in result.error.message
    model_called = size > 1 or bad_at != 0
    assert h.stats.failed_batches == int(model_called)
    # and the next batch is served normally
    h.model.failing = False
    for index, stream in enumerate(streams):
        h.send(stream, 10 + index)
    h.drain()
    assert all(h.collect(s)[-1].error is None for s in streams)


@pytest.mark.parametrize("bad_at", range(4))
def test_a_bad_frame_is_answered_in_band_and_the_rest_of_the_batch_goes_on(bad_at: int) -> None:
    h = Harness(policy(max_batch=4))
    stream = h.open()
    for seq in range(4):
        h.send(stream, seq, data=b"\x00\x00" if seq == bad_at else None)
    h.drain()
    results = h.collect(stream)
    assert [r.seq for r in results] == [0, 1, 2, 3]
    assert [r.error is not None for r in results] == [i == bad_at for i in range(4)]
    assert h.stats.frame_errors == 1
    assert h.model.calls == [3]


def test_answers_of_a_stream_closed_mid_batch_are_discarded_and_others_go_on() -> None:
    h = Harness(policy(max_batch=4))
    gone, stays = h.open(), h.open()
    for seq in range(2):
        h.send(gone, seq)
        h.send(stays, seq)
    assert h.take() is not None
    h.close(gone)
    assert h.scheduler.held_frames == 2
    h.drain()
    assert h.collect(gone) == []
    assert [r.seq for r in h.collect(stays)] == [0, 1]
    assert h.scheduler.held_frames == 0
    assert h.scheduler.idle


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_batch=0),
        dict(live_depth=0),
        dict(stream_buffer=0),
        dict(frame_budget=0),
        dict(memory_budget=0),
        dict(max_delay_ns=-1),
        dict(in_flight_batches=0),
    ],
    ids=lambda d: next(iter(d)),
)
def test_invalid_policies_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        policy(**bad)


# -- random interleavings -----------------------------------------------------------------------


class SchedulerMachine(RuleBasedStateMachine):
    """Random opens, sends, closes, clock ticks, model calls (good and failing) and reads."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(
            policy(max_batch=3, live_depth=2, stream_buffer=5, frame_budget=8, memory_budget=90)
        )
        self.sent: dict[int, list[int]] = {}  # stream id -> seqs queued
        self.answered: dict[int, list[int]] = {}
        self.open_streams: list[StreamState] = []
        self.most_open = 0
        self.unserved_batches: dict[int, int] = {}  # stream id -> batches taken without it
        # frames being decoded on arrival: stream id -> (stream, payload bytes, the arrival);
        # one per stream, as a stream's reader waits for its frame to be decoded
        self.decoding: dict[int, tuple[StreamState, int, Arrival]] = {}

    streams = Bundle("streams")

    @rule(target=streams, delivery=st.sampled_from([LIVE, LOSSLESS]))
    def open(self, delivery: Delivery) -> StreamState:
        stream = self.h.open(delivery, window=2)
        self.sent[stream.id] = []
        self.answered[stream.id] = []
        self.open_streams.append(stream)
        self.most_open = max(self.most_open, len(self.open_streams))
        return stream

    @rule(stream=streams, count=st.integers(1, 4), width=st.integers(1, 12))
    def send(self, stream: StreamState, count: int, width: int) -> None:
        scheduler = self.h.scheduler
        for _ in range(count):
            seq = len(self.sent[stream.id])
            held_before, bytes_before = stream.outstanding, scheduler.held_bytes
            if stream.id in self.decoding or stream.closed:
                return
            if not self.h.send(stream, seq, width=width):
                return
            self.sent[stream.id].append(seq)
            if held_before >= 2:  # beyond its two frames a stream needs room in the budgets
                assert scheduler.held_frames <= self.h.policy.frame_budget
                if stream.settings.delivery == LOSSLESS:
                    assert bytes_before < self.h.policy.memory_budget

    @rule(stream=streams, payload=st.integers(1, 200))
    def start_decoding(self, stream: StreamState, payload: int) -> None:
        scheduler = self.h.scheduler
        if stream.closed or stream.id in self.decoding:
            return
        asking = self.h.ask(stream)
        if not asking.done():  # the reader would wait for room
            asking.cancel()
            return
        budget = self.h.policy.memory_budget
        expected = min(stream.memory.largest, budget // 2)  # a reservation is at most half
        if expected * 2 * len(self.open_streams) > budget:
            # past its fair share, a reader asks for a message only if the budget has room
            assert scheduler.held_bytes + scheduler.reserved_bytes <= budget
        arrival = self.h.arrive(stream, payload, seq=len(self.sent[stream.id]))
        if not arrival.decoding:  # the sender would wait, holding the payload
            arrival.stop()
            return
        self.decoding[stream.id] = (stream, payload, arrival)

    @precondition(lambda self: self.decoding)
    @rule(data=st.data(), fails=st.booleans())
    def finish_decoding(self, data: st.DataObject, fails: bool) -> None:
        self._finish_decoding(data.draw(st.sampled_from(sorted(self.decoding))), fails)

    def _finish_decoding(self, stream_id: int, fails: bool) -> None:
        stream, _payload, arrival = self.decoding.pop(stream_id)
        seq = len(self.sent[stream_id])
        if not stream.closed:  # queued, or (LIVE past the byte budget) dropped and counted
            self.sent[stream_id].append(seq)
        arrival.finish(FrameRejected(f"frame {seq}: cannot decode") if fails else None)

    @rule(stream=streams)
    def close(self, stream: StreamState) -> None:
        if not stream.closed:
            self.h.close(stream)
            self.open_streams.remove(stream)

    @rule(ms=st.integers(0, 8))
    def tick(self, ms: int) -> None:
        self.h.clock.advance(ms * MS)
        before = {s.id for s in self.open_streams if s.pending}
        batch = self.h.take()
        if batch is None:
            return
        assert 1 <= len(batch.items) <= self.h.policy.max_batch
        served = set(sources(batch))
        for stream_id in before:
            count = 0 if stream_id in served else self.unserved_batches.get(stream_id, 0) + 1
            self.unserved_batches[stream_id] = count
            # round-robin: a stream with pending frames is in every ceil(n / max_batch) batches
            assert count < math.ceil(self.most_open / self.h.policy.max_batch)

    @precondition(lambda self: self.h.prepared)
    @rule(fail=st.booleans(), model_ms=st.integers(0, 20))
    def model_call(self, fail: bool, model_ms: int) -> None:
        self.h.model.failing = fail
        self.h.model.call_ns = model_ms * MS
        answers = self.h.run_model()
        if fail:
            assert all(result.error is not None for _, result in answers)

    @rule(stream=streams)
    def read(self, stream: StreamState) -> None:
        self.answered[stream.id] += [r.seq for r in self.h.collect(stream)]

    @invariant()
    def frames_are_accounted_for(self) -> None:
        scheduler, policy_ = self.h.scheduler, self.h.policy
        open_streams = self.open_streams
        assert scheduler.held_frames == sum(s.outstanding for s in open_streams)
        assert scheduler.pending_count == sum(len(s.pending) for s in open_streams)
        # bytes: queued frames of open streams and every batch not yet answered
        queued = sum(item.nbytes for s in open_streams for item in s.pending)
        in_batches = sum(p.batch.nbytes for p in self.h.prepared)
        being_decoded = sum(s.memory.in_hand for s in open_streams)
        assert being_decoded == sum(
            payload for s, payload, _ in self.decoding.values() if not s.closed
        )
        assert scheduler.held_bytes == queued + in_batches + being_decoded
        assert scheduler.reserved_bytes == sum(s.memory.reserved for s in open_streams) == 0
        assert self.h.batcher.idle or self.decoding or not scheduler.idle
        # the budget: beyond it only the two frames every stream may always hold
        assert scheduler.held_frames <= policy_.frame_budget + 2 * len(open_streams)
        for stream in open_streams:
            assert stream.outstanding <= max(policy_.stream_buffer, 2)
            if stream.settings.delivery == LIVE:
                assert len(stream.pending) <= policy_.live_depth

    @invariant()
    def answers_come_in_order_exactly_once(self) -> None:
        for stream in self.h.streams:
            answered, sent = self.answered[stream.id], self.sent[stream.id]
            if stream.settings.delivery == LOSSLESS:
                assert answered == sent[: len(answered)]
            else:
                assert answered == sorted(set(answered))
                assert set(answered) <= set(sent)

    def teardown(self) -> None:
        # everything still open is answered once the pipeline drains
        self.h.model.failing = False
        while self.decoding:
            self._finish_decoding(next(iter(self.decoding)), fails=False)
        self.h.drain()
        for stream in self.open_streams:
            self.answered[stream.id] += [r.seq for r in self.h.collect(stream)]
            answered, sent = self.answered[stream.id], self.sent[stream.id]
            if stream.settings.delivery == LOSSLESS:
                assert answered == sent
                assert stream.dropped == 0
            else:
                assert len(answered) + stream.dropped == len(sent)
        assert self.h.scheduler.held_frames == 0
        assert self.h.scheduler.held_bytes == 0
        assert self.h.batcher.idle


SchedulerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_random_interleavings_keep_every_invariant = SchedulerMachine.TestCase
