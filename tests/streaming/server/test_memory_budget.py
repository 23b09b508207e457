"""The byte budget on its own: its invariant over random operations, and who may read when.

The scheduler's tests (``test_scheduler.py``) check the same budget through the real Batcher.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from streaming.server.memory_budget import MemoryBudget, StreamBytes

LIMIT = 100
FIRST = 30  # what the machine's streams are expected to send before their first payload


class MemoryBudgetMachine(RuleBasedStateMachine):
    """Random opens, reads, arrivals, releases, held frames and closes against one limit."""

    def __init__(self) -> None:
        super().__init__()
        self.budget = MemoryBudget(LIMIT, FIRST)
        self.streams: list[StreamBytes] = []
        self.frames: list[int] = []  # bytes held with `hold` and not freed
        self.waiting: list[StreamBytes] = []  # the readers queue, in order

    opened = Bundle("opened")

    @rule(target=opened)
    def open(self) -> StreamBytes:
        stream = self.budget.open()
        self.streams.append(stream)
        return stream

    @rule(stream=opened)
    def ask(self, stream: StreamBytes) -> None:
        budget = self.budget
        open_streams = sum(not s.closed for s in self.streams)
        expected = min(stream.largest or FIRST, LIMIT // 2)
        may = budget.may_receive(stream)
        if stream.closed or expected * 2 * max(1, open_streams) <= LIMIT:
            assert may  # within its fair share (or gone): always
        elif self.waiting and self.waiting[0] is not stream:
            assert not may  # first come, first served
        else:
            assert may == (budget.held + budget.reserved + expected <= LIMIT)
        if may:
            if stream in self.waiting:
                head = self.waiting[0] is stream
                assert budget.wait(stream, False) == head
                self.waiting.remove(stream)
            budget.reserve(stream)
        elif stream not in self.waiting:
            budget.wait(stream, True)
            self.waiting.append(stream)

    @rule(stream=opened, nbytes=st.integers(0, 3 * LIMIT))
    def arrive(self, stream: StreamBytes, nbytes: int) -> None:
        largest = stream.largest
        self.budget.receive(stream, nbytes)
        if not stream.closed:
            assert stream.reserved == 0 and stream.in_hand == nbytes
            assert stream.largest == max(largest, nbytes)

    @rule(stream=opened, keep=st.integers(0, 40))
    def queue(self, stream: StreamBytes, keep: int) -> None:
        """The payload in hand becomes a queued frame of ``keep`` bytes (its decoded image)."""
        if stream.closed or not stream.in_hand:
            return
        self.budget.hold(keep)
        self.frames.append(keep)
        assert self.budget.release_payload(stream)

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        if self.frames:
            self.budget.free(self.frames.pop(data.draw(st.integers(0, len(self.frames) - 1))))

    @rule(stream=opened)
    def close(self, stream: StreamBytes) -> None:
        self.budget.close(stream)
        if stream in self.waiting:
            self.waiting.remove(stream)
        assert stream.closed and stream.in_hand == stream.reserved == 0
        self.budget.close(stream)  # twice changes nothing

    @invariant()
    def bytes_are_accounted_for(self) -> None:
        budget, open_streams = self.budget, [s for s in self.streams if not s.closed]
        assert budget.held == sum(s.in_hand for s in open_streams) + sum(self.frames)
        assert budget.reserved == sum(s.reserved for s in open_streams)
        assert budget.held >= 0 and budget.reserved >= 0
        assert all(0 <= s.reserved <= LIMIT // 2 for s in self.streams)
        assert budget.open_streams == len(open_streams)
        assert budget.full == (budget.held >= LIMIT)


MemoryBudgetMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_the_invariant_holds_over_random_operations = MemoryBudgetMachine.TestCase


@pytest.mark.parametrize(
    ("streams", "largest", "held", "reserved", "may"),
    [
        pytest.param(1, 0, 99, 0, True, id="first-message-unannounced"),
        pytest.param(1, 50, 99, 0, True, id="fair-share-of-one-stream-is-half"),
        pytest.param(1, 51, 50, 0, True, id="a-reservation-is-at-most-half"),
        pytest.param(2, 50, 51, 0, False, id="over-share-waits-for-room"),
        pytest.param(2, 26, 48, 26, True, id="over-share-fits-exactly"),
        pytest.param(2, 26, 49, 26, False, id="over-share-waits"),
        pytest.param(2, 300, 50, 0, True, id="larger-than-budget-needs-half"),
        pytest.param(2, 300, 51, 0, False, id="larger-than-budget-waits"),
        pytest.param(4, 12, 100, 0, True, id="within-share-even-when-full"),
        pytest.param(5, 12, 88, 0, True, id="share-shrinks-with-streams-but-room"),
        pytest.param(5, 12, 89, 0, False, id="share-shrinks-with-streams"),
    ],
)
def test_who_may_read(streams: int, largest: int, held: int, reserved: int, may: bool) -> None:
    budget = MemoryBudget(LIMIT)
    reader, *others = [budget.open() for _ in range(streams)]
    budget.receive(reader, largest)
    budget.release_payload(reader)
    if reserved:
        other = others[0] if others else budget.open()
        budget.receive(other, reserved)
        budget.release_payload(other)
        budget.reserve(other)
    budget.hold(held)
    assert budget.may_receive(reader) is may


@pytest.mark.parametrize(
    ("first", "streams", "held", "may"),
    [
        pytest.param(30, 1, 99, True, id="within-share-of-one-stream"),
        pytest.param(30, 2, 40, True, id="room-for-the-largest-message"),
        pytest.param(30, 2, 71, False, id="no-room-for-the-largest-message-waits"),
        pytest.param(300, 2, 50, True, id="larger-than-budget-needs-half"),
        pytest.param(300, 2, 51, False, id="larger-than-budget-waits"),
    ],
)
def test_a_first_message_is_expected_to_be_the_largest_accepted(
    first: int, streams: int, held: int, may: bool
) -> None:
    budget = MemoryBudget(LIMIT, first)
    reader, *_ = [budget.open() for _ in range(streams)]
    budget.hold(held)
    assert budget.expected(reader) == min(first, LIMIT // 2)
    assert budget.may_receive(reader) is may
    budget.reserve(reader)
    budget.receive(reader, 5)  # once a payload has arrived, the stream's own size counts
    budget.release_payload(reader)
    assert budget.expected(reader) == 5 and budget.may_receive(reader)


def test_a_reader_behind_the_queue_head_waits_even_with_room() -> None:
    budget = MemoryBudget(LIMIT)
    first, second = budget.open(), budget.open()
    for stream in (first, second):
        budget.receive(stream, 40)
        budget.release_payload(stream)
    budget.wait(first, True)
    assert not budget.may_receive(second)  # the head of the queue goes first
    assert budget.may_receive(first)
    assert budget.wait(first, False)  # the head left: the next may fit
    assert budget.may_receive(second)


def test_readers_waiting_for_room_take_turns_by_connection() -> None:
    # given: a budget with room for one first message at a time, a connection whose three
    # streams wait for room, then two streams of two other connections
    budget = MemoryBudget(LIMIT, FIRST)
    busy = [budget.open("busy") for _ in range(3)]
    other, third = budget.open("other"), budget.open("third")
    for stream in (*busy, other, third):
        budget.wait(stream, True)
    # when / then: each connection's first reader goes in turn, not the busy one's three first
    order = []
    for _ in range(5):
        head = next(s for s in (*busy, other, third) if s.waiting and budget.may_receive(s))
        order.append(head.lane)
        assert budget.wait(head, False)
    assert order == ["busy", "other", "third", "busy", "busy"]
    # a reader that leaves from the middle of its connection's line changes no turn
    first, middle, last = (budget.open("a") for _ in range(3))
    late = budget.open("b")
    for stream in (first, middle, last, late):
        budget.wait(stream, True)
    assert not budget.wait(middle, False)
    assert budget.wait(first, False) and budget.first_waiting(late)


@pytest.mark.parametrize(("limit", "first"), [(0, 0), (-1, 0), (1, -1)])
def test_a_budget_below_one_byte_is_refused(limit: int, first: int) -> None:
    with pytest.raises(ValueError):
        MemoryBudget(limit, first)
