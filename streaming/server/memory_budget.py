"""The byte budget: every frame byte the server holds, and the room reserved for messages being read.

One class owns the accounting so its invariant lives in one place; the ``Scheduler`` owns the one
instance and decides with it (who may read, who waits, which LIVE frame drops).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class StreamBytes:
    """One stream's part of the budget. Read it anywhere; only ``MemoryBudget`` writes it."""

    in_hand: int = 0  # payload received and not yet decoded or queued
    reserved: int = 0  # room reserved for the message being read
    largest: int = 0  # largest payload so far: what the stream's next message is expected to need
    closed: bool = False
    lane: object = None  # its connection: waiting readers take turns by connection
    waiting: bool = False  # its reader is queued for room


class MemoryBudget:
    """Frame bytes held by the server against one limit, and reservations for reads.

    Held bytes are payloads received and not yet queued (``receive`` .. ``release_payload``)
    plus the frames the scheduler queues or has in a batch (``hold`` .. ``free``). Before a
    stream's reader asks gRPC for its next message (gRPC takes all of it off the wire once
    asked), room for the stream's largest message so far is reserved (``reserve``); the
    message counts as held instead once it arrives (``receive``).

    Invariant (``tests/streaming/test_memory_budget.py`` checks it over random operations):

    - ``held`` is the sum of the open streams' ``in_hand`` and the bytes held with ``hold``
      and not yet freed; ``reserved`` is the sum of the open streams' ``reserved``; neither is
      ever negative, and a closed stream holds and reserves nothing.
    - A reservation is at most half the limit, so a frame larger than the budget still gets
      its turn once the others hold less than half, instead of blocking every reader.
    - A read within the stream's fair share (half the limit split over the open streams) is
      always granted, so small-frame streams keep moving whatever large ones hold; a larger one
      is granted only when ``held + reserved`` plus it fits the limit, and only to the first of
      the readers waiting for room: first come, first served within a connection (a stream's
      ``lane``), the connections taking turns, so one connection's hundreds of waiting streams
      do not put another's behind all of them. A stream that has sent no payload yet is
      expected to send the largest message the server accepts (``first``): its size is
      unknown until it has arrived, and new streams whose first frames all arrive at once
      must not take the server past its budget uncounted.
    - Reserved bytes are counted apart from held ones: they gate other large reads only,
      never the scheduler's decisions to queue, wait or drop (``full``), so a client that sends
      one large frame and goes quiet does not make the others wait or drop.

    ``held`` may exceed the limit (each stream's two frames always pass, a message may be larger
    than expected); the scheduler reads ``full`` and makes senders wait (LOSSLESS) or drop (LIVE).
    """

    __slots__ = ("limit", "first", "held", "reserved", "_open", "_lanes")

    def __init__(self, limit: int, first: int = 0) -> None:
        if limit < 1 or first < 0:
            raise ValueError(f"a memory budget must be >= 1 byte, got {limit} (first {first})")
        self.limit = limit
        self.first = first  # what a stream's first payload is expected to need
        self.held = 0
        self.reserved = 0
        self._open = 0
        # Readers of large messages waiting for room, by lane (connection), each lane first come
        # first served and never empty; the first lane's first reader is next, and its lane goes
        # to the back once it leaves. A reader whose message was just decoded must not take the
        # room back before those already waiting.
        self._lanes: dict[object, deque[StreamBytes]] = {}

    @property
    def full(self) -> bool:
        """Whether held bytes reach the limit (reservations do not count)."""
        return self.held >= self.limit

    @property
    def open_streams(self) -> int:
        return self._open

    def open(self, lane: object = None) -> StreamBytes:
        """A new stream (on connection ``lane``): its share shrinks the others' fair shares."""
        self._open += 1
        return StreamBytes(lane=lane)

    def close(self, stream: StreamBytes) -> None:
        """The stream is gone: its payload in hand and its reservation are freed."""
        if stream.closed:
            return
        self.wait(stream, False)
        self.release_payload(stream)
        stream.closed = True
        self._open -= 1

    # -- reads --------------------------------------------------------------------------------

    def expected(self, stream: StreamBytes) -> int:
        """Room the stream's next message is expected to need, at most half the limit: its
        largest so far, or ``first`` before it has sent any payload."""
        return min(stream.largest or self.first, self.limit // 2)

    def in_fair_share(self, stream: StreamBytes) -> bool:
        """Whether the stream's next message fits its share: half the limit split over the
        open streams (such a read is always granted)."""
        return self.expected(stream) * 2 * max(1, self._open) <= self.limit

    def may_receive(self, stream: StreamBytes) -> bool:
        """Whether the stream's reader may ask for its next message now (see the class docstring)."""
        if stream.closed or self.in_fair_share(stream):
            return True
        head = self.head()
        if head is not None and head is not stream:
            return False
        return self.held + self.reserved + self.expected(stream) <= self.limit

    def shortfall(self, stream: StreamBytes) -> int:
        """Bytes the waiting ``stream``'s next message lacks to fit the limit (0 if it fits)."""
        return max(0, self.held + self.reserved + self.expected(stream) - self.limit)

    def first_waiting(self, stream: StreamBytes) -> bool:
        """Whether the stream's reader is the first of those waiting for room."""
        return self.head() is stream

    def head(self) -> StreamBytes | None:
        """The first reader waiting for room (the next to be granted it), if any."""
        for lane in self._lanes.values():
            return lane[0]
        return None

    def wait(self, stream: StreamBytes, waiting: bool) -> bool:
        """Queue the stream's reader for room (or take it off the queue).

        Returns:
            Whether the head of the queue left, so the next in line may fit now.
        """
        if waiting:
            if not stream.waiting and not stream.closed:
                stream.waiting = True
                self._lanes.setdefault(stream.lane, deque()).append(stream)
            return False
        if not stream.waiting:
            return False
        stream.waiting = False
        lanes = self._lanes
        if self.head() is stream:
            lane = lanes.pop(stream.lane)
            lane.popleft()
            if lane:
                lanes[stream.lane] = lane  # to the back: the connections take turns
            return True
        lane = lanes[stream.lane]
        lane.remove(stream)
        if not lane:
            del lanes[stream.lane]
        return False

    def reserve(self, stream: StreamBytes) -> None:
        """The reader asks for its next message: room for its expected size is reserved."""
        if stream.closed:
            return
        expected = self.expected(stream)
        self.reserved += expected - stream.reserved
        stream.reserved = expected

    def receive(self, stream: StreamBytes, nbytes: int) -> None:
        """A message with a payload of ``nbytes`` arrived: it counts instead of the reservation."""
        if stream.closed:
            return
        self.reserved -= stream.reserved
        stream.reserved = 0
        self.held += nbytes - stream.in_hand
        stream.in_hand = nbytes
        if nbytes > stream.largest:
            stream.largest = nbytes

    def release_payload(self, stream: StreamBytes) -> bool:
        """The payload in hand (and any reservation) is gone: decoded, queued or dropped.

        Returns:
            Whether anything was freed.
        """
        if not (stream.in_hand or stream.reserved):
            return False
        self.held -= stream.in_hand
        self.reserved -= stream.reserved
        stream.in_hand = stream.reserved = 0
        return True

    # -- frames the scheduler keeps -----------------------------------------------------------

    def hold(self, nbytes: int) -> None:
        """A frame of ``nbytes`` is queued (its decoded image, or its RAW payload)."""
        self.held += nbytes

    def free(self, nbytes: int) -> None:
        """Frames of ``nbytes`` in all left: dropped, discarded, or their batch answered."""
        self.held -= nbytes
