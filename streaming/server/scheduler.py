"""The batching policy: which frames go into the next batch, and when. No threads, no clock of its own.

The scheduler takes up to ``max_batch`` frames round-robin across streams once the batch is
full or its oldest frame has waited ``max_delay``, but while the model is busy it waits until
the running call is about to end (less the time the next batch needs to be prepared), or until
it ends when the call is larger than any timed so far: frames taken that late are the freshest
a LIVE stream has, and LOSSLESS ones arriving meanwhile still join the batch. A LIVE stream keeps only its newest ``live_depth`` pending frames (older ones
are dropped and counted); a LOSSLESS stream is never dropped, its sender waits instead
(``admits``). Two budgets bound what all streams hold together: frames, and bytes (messages
being received, payloads being decoded, decoded images, batches); past the byte budget LIVE
streams drop instead of waiting. Bytes are gated before a message is read (``may_receive``):
gRPC receives a whole message once a read is pending, so a message must have room before it
is asked for, not after it is in memory. The whole policy is synchronous and reads time only
through an injected ``Clock``, so it is tested step by step with a fake clock
(``tests/streaming/server/test_scheduler.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streaming.server.batch_stats import BatcherStats
from streaming.server.durations import DurationEstimates
from streaming.server.memory_budget import MemoryBudget, StreamBytes
from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import FrameRejected
from streaming.server.server_values import Delivery, FrameData, FrameResult
from streaming.server.stream_state import QueuedFrame, StreamState

Clock = Callable[[], int]
"""Monotonic time in nanoseconds (``time.perf_counter_ns`` in the server, a fake in tests)."""

# A module constant: a global is read faster than an enum member, and submit runs per frame.
_LIVE = Delivery.LIVE
# Frames a stream may always hold, whatever the budget says, so every stream keeps moving.
_ALWAYS_ADMITTED = 2


@dataclass(frozen=True)
class SchedulingPolicy:
    """The numbers the scheduler decides by.

    Attributes:
        max_batch: most frames in one model call.
        max_delay_ns: longest the oldest pending frame waits for a batch to fill.
        live_depth: pending frames a LIVE stream keeps; a newer frame replaces the oldest.
        stream_buffer: frames one stream may hold in the server before its sender waits.
        frame_budget: frames all streams may hold before senders of streams holding two or
            more wait.
        memory_budget: frame bytes all streams may hold (messages being received count from
            the moment they are asked for); past it, readers of large messages wait and
            senders of streams holding two or more frames wait (LOSSLESS) or drop (LIVE).
        first_message: room a stream's StreamConfig and first frame are expected to need
            (their size is unknown until they have arrived): the largest message accepted.
        in_flight_batches: batches taken but not yet through the model (one running, one
            being prepared), so the next batch is taken as late as possible.
    """

    max_batch: int
    max_delay_ns: int
    live_depth: int
    stream_buffer: int
    frame_budget: int
    memory_budget: int = 1 << 30
    first_message: int = 0
    in_flight_batches: int = 2

    def __post_init__(self) -> None:
        sizes = (
            self.max_batch,
            self.live_depth,
            self.stream_buffer,
            self.frame_budget,
            self.memory_budget,
        )
        if min(sizes) < 1:
            raise ValueError(f"every size of a scheduling policy must be >= 1: {self}")
        if self.max_delay_ns < 0 or self.in_flight_batches < 1:
            raise ValueError(f"invalid scheduling policy: {self}")

    @classmethod
    def from_config(cls, config: ServerConfig) -> SchedulingPolicy:
        return cls(
            max_batch=config.max_batch,
            max_delay_ns=int(config.max_delay_ms * 1e6),
            live_depth=config.live_depth,
            stream_buffer=config.effective_stream_buffer,
            frame_budget=config.effective_frame_budget,
            memory_budget=config.memory_budget_bytes,
            first_message=config.effective_max_message_bytes,
        )


@dataclass(slots=True, eq=False)
class TakenBatch:
    """Frames taken together for one model call, in the order their answers are built."""

    id: int
    items: list[QueuedFrame]
    taken_ns: int
    nbytes: int  # the frames' bytes, released when the batch is answered


class Scheduler:
    """Per-stream queues, round-robin batches, the frame budget, the byte budget and the model-busy estimate.

    The byte budget is a ``MemoryBudget`` (``memory``) owned here: its docstring states the
    invariant of bytes held and of the read reservations (room for a stream's largest message
    so far, reserved before the read, at most half the budget; a fair share of half the budget
    split over the open streams always read; larger reads in turn, by connection). The
    scheduler decides with it: who may read (``may_receive``), who may queue (``admits``) and
    which LIVE frame drops (``submit``).

    The ``Batcher`` is its only caller. Every method runs on one thread (the event loop)
    except ``model_started`` and ``model_stopped``, which the model thread calls through the
    Batcher (single assignments).
    """

    def __init__(
        self,
        policy: SchedulingPolicy,
        clock: Clock,
        durations: DurationEstimates,
        stats: BatcherStats,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._durations = durations
        self._stats = stats
        self._max_batch = policy.max_batch
        self._ready: deque[StreamState] = deque()  # streams with pending frames, round-robin order
        self._pending = 0
        self._held = 0  # frames of all streams in the server: queued, in a batch or unsent
        self.memory = MemoryBudget(policy.memory_budget, policy.first_message)
        self._in_flight = 0  # batches taken and not yet answered
        # Batches taken and not yet through the model, oldest first.
        self._unfinished: deque[TakenBatch] = deque()
        self._batch_ids = 0
        # (batch id, start ns) of the model call in progress, set by the model thread.
        self._running: tuple[int, int] | None = None
        # Who waits for room: readers (by their part of the byte budget, whose queue decides
        # who is next) and senders (for the frame and byte budgets).
        self._readers: dict[StreamBytes, StreamState] = {}
        self._senders: set[StreamState] = set()
        # Streams whose reader has asked for a message not arrived yet: when it asked (clock ns),
        # oldest first.
        self._reading: dict[StreamState, int] = {}

    # -- counts ---------------------------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Frames queued and not yet in a batch."""
        return self._pending

    @property
    def held_frames(self) -> int:
        """Frames of all streams in the server: queued, in a batch, or answered but not yet sent."""
        return self._held

    @property
    def held_bytes(self) -> int:
        """Bytes of frames in the server: being received or decoded, queued, or in a batch."""
        return self.memory.held

    @property
    def reserved_bytes(self) -> int:
        """Room reserved for messages being received (asked for, not arrived yet)."""
        return self.memory.reserved

    @property
    def idle(self) -> bool:
        """No frame is queued or in a batch."""
        return not self._pending and not self._in_flight

    # -- messages in --------------------------------------------------------------------------

    def opened(self, connection: object = None) -> StreamBytes:
        """A stream is opened (on ``connection``): its part of the byte budget (its share
        shrinks the others'; readers waiting for room take turns by connection)."""
        return self.memory.open(connection)

    def may_receive(self, stream: StreamState) -> bool:
        """Whether the stream's reader may ask gRPC for its next message now (``MemoryBudget``)."""
        return self.memory.may_receive(stream.memory)

    def wait_to_receive(self, stream: StreamState, waiting: bool) -> None:
        """Queue the stream's reader for room for its next message (or take it off the queue)."""
        if waiting:
            self.memory.wait(stream.memory, True)
            self._readers[stream.memory] = stream
            return
        self._readers.pop(stream.memory, None)
        if self.memory.wait(stream.memory, False):
            self._wake_waiting()  # the next in line may fit in what is left

    def first_to_receive(self, stream: StreamState) -> bool:
        """Whether the stream's reader is the first of those waiting for room."""
        return self.memory.first_waiting(stream.memory)

    def receiving(self, stream: StreamState) -> None:
        """The reader asks for the next message: room for the stream's largest is reserved."""
        self.memory.reserve(stream.memory)
        reading = self._reading
        reading.pop(stream, None)  # to the end: the dict stays ordered by when reads began
        reading[stream] = self._clock()

    def received(self, stream: StreamState, nbytes: int) -> None:
        """A message with a payload of ``nbytes`` arrived: it counts instead of the reservation."""
        self.memory.receive(stream.memory, nbytes)
        self._reading.pop(stream, None)

    def payload_released(self, stream: StreamState) -> None:
        """The stream's received payload (or reservation) is gone: decoded, queued or dropped."""
        self._reading.pop(stream, None)
        if self.memory.release_payload(stream.memory):
            self._wake_waiting()

    def idle_readers_in_the_way(
        self, waiter: StreamState, idle_ns: int, first_idle_ns: int
    ) -> list[StreamState]:
        """Streams to end so that ``waiter``, the first reader waiting for room, gets it.

        Those are streams whose read, larger than their fair share, has waited for a message
        for ``idle_ns`` or longer (``first_idle_ns`` for a call's first message, a StreamConfig
        or an old-API request, which is sent with the call), oldest first, as many as the
        waiter's shortfall needs; none when ending them all would not be enough (frames being
        served hold the room, and free it as they are answered). Without this, streams that
        open and send nothing would hold the room for the largest message each, and a few of
        them would keep every new stream from reading at all.
        """
        memory = self.memory
        if not memory.first_waiting(waiter.memory):
            return []
        need = memory.shortfall(waiter.memory)
        now = self._clock()
        holders: list[StreamState] = []
        for stream, since in self._reading.items():
            if need <= 0 or now - since < min(idle_ns, first_idle_ns):
                break  # oldest first: the rest waited less
            if (
                stream is waiter
                or now - since < (idle_ns if stream.configured else first_idle_ns)
                or stream.ended_by is not None
                or memory.in_fair_share(stream.memory)
            ):
                continue
            holders.append(stream)
            need -= stream.memory.reserved
        return holders if need <= 0 else []

    # -- frames in ------------------------------------------------------------------------------

    def admits(self, stream: StreamState) -> bool:
        """Whether the stream's sender may queue a frame now (else it waits for ``make_room``)."""
        # A stream may hold its own buffer of frames; beyond two frames it also needs room in the
        # server-wide budget, so many LOSSLESS streams cannot each park three batches in memory.
        # Two frames each always pass, so every stream keeps moving.
        held = stream.outstanding
        if stream.closed or held < _ALWAYS_ADMITTED:
            return True
        if held >= self.policy.stream_buffer or self._held >= self.policy.frame_budget:
            return False
        # Past the byte budget a LOSSLESS sender waits; a LIVE one goes on and drops (``submit``).
        memory = self.memory
        return memory.held < memory.limit or stream.settings.delivery == _LIVE

    def wait_for_budget(self, stream: StreamState, waiting: bool) -> None:
        """Mark the stream's sender as waiting (or no longer) for room in the budgets."""
        if waiting:
            self._senders.add(stream)
        else:
            self._senders.discard(stream)

    def submit(
        self,
        stream: StreamState,
        frame: FrameData,
        image: np.ndarray | None = None,
        error: FrameRejected | None = None,
    ) -> bool:
        """Queue an admitted frame (decoded, or not decodable, or RAW to decode at batch time).

        What is queued counts in the byte budget instead of the payload received
        (``received``): the decoded image, or the RAW payload itself.

        Returns whether the next batch may now be due sooner.
        """
        if stream.closed:
            return False
        memory = self.memory
        pending = stream.pending
        # A LIVE stream past the byte budget keeps its newest frame only, like live_depth 1
        # (the cheap, rarely true test first: this runs for every frame).
        shed = (
            memory.held >= memory.limit
            and stream.outstanding >= _ALWAYS_ADMITTED
            and stream.settings.delivery == _LIVE
        )
        if not pending:
            if shed:  # nothing queued to replace: the arriving frame is the one dropped
                stream.dropped += 1
                self._stats.dropped += 1
                self._stats.dropped_by_budget += 1
                self.payload_released(stream)
                return False
            self._ready.append(stream)  # joins the round-robin
        elif shed or (stream.settings.delivery == _LIVE and len(pending) >= self.policy.live_depth):
            old = pending.popleft()  # the newest frame replaces the oldest pending one
            memory.free(old.nbytes)
            stream.dropped += 1
            self._stats.dropped += 1
            self._stats.dropped_by_budget += shed
            self._pending -= 1
            self.released(stream, 1)
        nbytes = len(frame.data) if image is None else image.nbytes
        pending.append(QueuedFrame(stream, frame, self._clock(), image, error, nbytes))
        stream.outstanding += 1
        self._held += 1
        memory.hold(nbytes)
        self._pending += 1
        self.payload_released(stream)
        return self._pending == 1 or self._pending == self._max_batch

    def released(self, stream: StreamState, count: int) -> None:
        """``count`` of the stream's frames left the server (sent or dropped); wakes waiting senders."""
        self._held -= count
        stream.left(count)
        self._wake_waiting()

    def discard(self, stream: StreamState) -> None:
        """Forget a closed stream: its queued frames go; answers still in a batch are ignored."""
        if stream.pending:
            self._pending -= len(stream.pending)
            self.memory.free(sum(item.nbytes for item in stream.pending))
            self._ready.remove(stream)
        self._held -= stream.outstanding
        self._senders.discard(stream)
        self._readers.pop(stream.memory, None)
        self._reading.pop(stream, None)
        self.memory.close(stream.memory)
        stream.close()
        self._wake_waiting()

    # -- batches out ----------------------------------------------------------------------------

    def next_take_ns(self) -> int | None:
        """When the next batch should be taken (clock ns), or ``None`` if not until a change.

        ``None`` means no frame is pending, the pipeline already holds ``in_flight_batches``
        batches, or a batch of a size never timed is in the model; ``submit`` and
        ``model_finished`` say when to ask again.
        """
        unfinished = self._unfinished
        if not self._pending or len(unfinished) >= self.policy.in_flight_batches:
            return None
        if unfinished and not all(self._durations.timed(len(b.items)) for b in unfinished):
            # A call larger than any timed may last far longer than its estimate (a LOSSLESS
            # burst makes the first batches of 32): a batch taken early would wait for it, its
            # LIVE frames going stale meanwhile (issue 22). Take it when the call ends instead.
            return None
        size = min(self._pending, self._max_batch)
        at = 0 if size >= self._max_batch else self._oldest_arrival_ns() + self.policy.max_delay_ns
        model_free_ns = self._model_free_at_ns()
        if model_free_ns is not None:
            # Start preparing just before the model is free; the margin absorbs a late wake-up.
            durations = self._durations
            lead = durations.prepare_ns(size) + 1e6 + 0.05 * durations.model_ns(size)
            at = max(at, int(model_free_ns - lead))
        return at

    def take_batch(self) -> TakenBatch:
        """Take up to ``max_batch`` pending frames, one per stream per pass (round-robin)."""
        # A served stream goes to the back, so a stream that floods cannot starve the others.
        items: list[QueuedFrame] = []
        ready = self._ready
        max_batch = self._max_batch
        nbytes = 0
        while ready and len(items) < max_batch:
            stream = ready.popleft()
            item = stream.pending.popleft()
            items.append(item)
            nbytes += item.nbytes
            if stream.pending:
                ready.append(stream)
        self._pending -= len(items)
        self._batch_ids += 1
        self._in_flight += 1
        batch = TakenBatch(self._batch_ids, items, self._clock(), nbytes)
        self._unfinished.append(batch)
        return batch

    def model_started(self, batch: TakenBatch) -> None:
        """The model thread starts the batch's call."""
        self._running = (batch.id, self._clock())

    def model_stopped(self) -> None:
        """The model thread's call returned (or raised)."""
        self._running = None

    def model_finished(self, batch: TakenBatch) -> None:
        """The batch is through the model: the pipeline has room for another one."""
        finished = self._unfinished.popleft()
        if finished is not batch:  # pragma: no cover - the pipeline keeps batches in order
            raise RuntimeError(f"batch {batch.id} finished before batch {finished.id}")

    def answered(
        self, batch: TakenBatch, answers: Sequence[tuple[StreamState, FrameResult]]
    ) -> None:
        """Hand a batch's answers to their streams (closed streams' answers are dropped)."""
        self._in_flight -= 1
        self.memory.free(batch.nbytes)  # an answer holds no frame bytes
        for stream, result in answers:
            if not stream.closed:
                stream.push_result(result)
        self._wake_waiting()

    def wake_waiting(self) -> None:
        """Wake every stream waiting for room, whatever the budgets (they check again)."""
        for stream in (*self._readers.values(), *self._senders):
            stream.make_room()

    def _wake_waiting(self) -> None:
        # The next reader in line checks for room whatever the frame budget says: readers
        # wait for bytes only (when they were woken only while the frame budget had room,
        # LOSSLESS streams keeping it full left new streams unread for good).
        if self._readers and (head := self.memory.head()) is not None:
            self._readers[head].make_room()
        if self._senders and self._held < self.policy.frame_budget and not self.memory.full:
            for stream in self._senders:
                stream.make_room()

    def _oldest_arrival_ns(self) -> int:
        return min(stream.pending[0].arrived_ns for stream in self._ready)

    def _model_free_at_ns(self) -> float | None:
        """When the model should finish the batches already taken, or None if there are none."""
        if not self._unfinished:
            return None
        durations = self._durations
        running = self._running
        free_at = float(self._clock())
        for batch in self._unfinished:
            size = len(batch.items)
            if running is not None and running[0] == batch.id:
                start = float(running[1])
            else:
                start = max(free_at, batch.taken_ns + durations.prepare_ns(size))
            free_at = start + durations.model_ns(size)
        return free_at
