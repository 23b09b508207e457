"""The server-side state of one open stream: its queued frames, its window and its unsent answers.

Named ``StreamState`` so it is never confused with the client's ``Stream``. It is the stream's
data and the events its sender and reader sleep on; it calls nobody. The scheduler queues frames
on it and pushes answers into it; the service takes answers through the ``Batcher``, which tells
the scheduler that the frame left.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np

from streaming.server.memory_budget import StreamBytes
from streaming.server.server_errors import FrameRejected
from streaming.server.server_values import FrameData, FrameResult, StreamSettings
from streaming.server.window import SlidingWindow


@dataclass(slots=True, eq=False)
class QueuedFrame:
    """A received frame waiting for (or travelling in) a batch."""

    stream: StreamState
    frame: FrameData
    arrived_ns: int
    image: np.ndarray | None  # decoded on arrival, or None: a RAW frame decoded at batch time
    error: FrameRejected | None  # why it could not be decoded (answered in-band, in order)
    nbytes: int  # what it counts in the memory budget: the image, else the received payload


class StreamState:
    """The server-side state of one stream: pending frames, its window and its unsent answers.

    Every method runs on the event loop (the answers arrive there from the worker threads).
    """

    def __init__(
        self,
        stream_id: int,
        settings: StreamSettings,
        num_classes: int,
        memory: StreamBytes,
        labels_epoch: int = 0,
    ) -> None:
        self.id = stream_id
        self.settings = settings
        self.window = SlidingWindow(settings.window, num_classes)
        # The labels the window's vectors are in (ServingModel.labels_epoch); the answer thread
        # restarts the window when a batch comes from a model with other labels.
        self.labels_epoch = labels_epoch
        self.pending: deque[QueuedFrame] = deque()
        self.dropped = 0
        # Frames accepted whose answer the sender has not taken yet (queued, in a batch, or unsent).
        self.outstanding = 0
        # Its part of the byte budget (payload in hand, reservation, largest payload so far).
        self.memory = memory
        self.closed = False
        # Whether its StreamConfig has been read (a stream is opened before, to wait for room).
        self.configured = False
        # Why the server ends the stream while it is open (``end``); the service sends it.
        self.ended_by: str | None = None
        self._ended = asyncio.Event()
        # The temporal cue's copy of the last answered frame (answer thread only; None until one).
        self.cue_signature: np.ndarray | None = None
        self._input_done = False
        self._results: deque[FrameResult] = deque()
        self._results_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __repr__(self) -> str:
        return f"StreamState(id={self.id}, source={self.settings.source!r}, client={self.settings.client_id!r})"

    # -- the service's side ---------------------------------------------------------------------

    async def wait_for_room(self) -> None:
        """Sleep until one of this stream's frames is answered (or the server frees budget)."""
        if not self.closed:
            self._room.clear()
            await self._room.wait()

    async def next_result(self) -> FrameResult | None:
        """The next answer in order, or ``None`` once input has ended and every frame is answered.

        The caller (``Batcher.next_result``) tells the scheduler the frame left the server.
        """
        if self.ended_by is not None:
            return None
        while not self._results:
            if (
                self.closed
                or self.ended_by is not None
                or (self._input_done and self.outstanding == 0)
            ):
                return None
            self._results_ready.clear()
            await self._results_ready.wait()
        return self._results.popleft()

    def take_result(self) -> FrameResult | None:
        """The next answer if one is ready (see ``next_result``)."""
        return self._results.popleft() if self._results else None

    def finish_input(self) -> None:
        """No more frames will come; the result iterator ends after the last answer."""
        self._input_done = True
        self._results_ready.set()

    # -- the batcher's side ---------------------------------------------------------------------

    def restart_window(self, num_classes: int, labels_epoch: int) -> None:
        """Start an empty window for a model with other labels (answer thread, per stream once)."""
        self.window = SlidingWindow(self.settings.window, num_classes)
        self.labels_epoch = labels_epoch

    def push_result(self, result: FrameResult) -> None:
        """Hand an answer to the sender (answers arrive in the order frames were queued)."""
        self._results.append(result)
        self._results_ready.set()

    def left(self, count: int) -> None:
        """``count`` frames left the server (answer sent or frame dropped): make room."""
        self.outstanding -= count
        self._room.set()
        if self._input_done and self.outstanding == 0:
            self._results_ready.set()

    def make_room(self) -> None:
        """Wake a sender waiting for room (the server-wide budget has room again)."""
        self._room.set()

    def end(self, reason: str) -> None:
        """The server ends the stream for ``reason``: its answer loop (or the read of its first
        message) stops, and the service sends it."""
        if self.ended_by is None:
            self.ended_by = reason
            self._ended.set()
            self._results_ready.set()

    async def until_ended(self) -> None:
        """Sleep until ``end`` is called."""
        await self._ended.wait()

    def close(self) -> None:
        """Forget queued frames and unsent answers, and wake everything waiting on the stream."""
        self.closed = True
        self.outstanding = 0
        self.pending.clear()
        self._results.clear()
        self._room.set()
        self._results_ready.set()
