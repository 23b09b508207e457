"""Threaded capture with explicit buffering, pacing and reconnect policies.

One :class:`VideoStream` per source runs two daemon threads:

* a *reader* that opens a :class:`~camera_tools.sources.FrameSource` and pushes
  frames into a buffer; and
* a *supervisor* that watches the reader (the stall watchdog), decides between
  ended / failed / reconnect, and publishes every state change as a
  :class:`SourceEvent`.

A reader that hangs inside OpenCV cannot be interrupted safely, so on a stall the
supervisor *abandons* it: it starts a new reader and the old one closes its own
capture whenever its blocking call returns.

Buffering: live sources keep only the newest frame (older ones are overwritten
and counted); files and folders use a bounded queue and the reader waits. An HLS playlist
or a web page says at its first open whether it is live: a recording (a playlist with an
end) is then read like a file, every frame once and in order, and ends with its reader.

One concern, the capture of one source: the options, counters, rate limiter and frame buffer
here exist only for these two threads and are tested through them (the rate limiter also
alone). The lifecycle vocabulary they publish, which the watch application shares, lives in
:mod:`camera_tools.states`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from camera_tools.backoff import Backoff, BackoffPolicy
from camera_tools.camera_errors import SourceError, SourceOfflineError
from camera_tools.redact import redact_url
from camera_tools.sources import FrameSource, RawFrame, SourceFactory, SourceKind, create_source
from camera_tools.states import SourceEvent, SourceState, announce_state
from camera_tools.video_frames import Frame, SourceProperties

logger = logging.getLogger(__name__)

_POLL_S = 0.05  # supervisor tick: bounds how late a stall or stop() is noticed


@dataclass(frozen=True)
class CaptureOptions:
    """How a :class:`VideoStream` delivers frames and handles failures.

    Attributes:
        skip: Deliver every (skip+1)-th frame of the source (0 = all).
        max_fps: Deliver at most this many frames per second (of file time for
            files and folders, of wall time for live sources); ``None`` = no cap.
        realtime: Play files and folders at their native rate instead of as fast
            as the consumer takes them. Ignored for live sources.
        queue_size: Frames buffered ahead for files and folders.
        stall_timeout_s: Silence after which a live source counts as stalled.
        connect_timeout_s: Time allowed from opening to the first frame.
        reconnect: Backoff between reopen attempts of network sources.
        reader_exit_s: On stop, how long to wait for a reader blocked in a read to leave it
            (and close its source) before leaving it behind.
    """

    skip: int = 0
    max_fps: float | None = None
    realtime: bool = False
    queue_size: int = 8
    stall_timeout_s: float = 10.0
    connect_timeout_s: float = 20.0
    reconnect: BackoffPolicy = field(default_factory=BackoffPolicy)
    reader_exit_s: float = 3.0

    def __post_init__(self) -> None:
        if self.skip < 0:
            raise ValueError(f"skip must be >= 0, got {self.skip}")
        if self.max_fps is not None and self.max_fps <= 0:
            raise ValueError(f"max_fps must be positive or None, got {self.max_fps}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.stall_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("stall_timeout_s and connect_timeout_s must be positive")
        if self.reader_exit_s < 0:
            raise ValueError(f"reader_exit_s must be >= 0, got {self.reader_exit_s}")


@dataclass(frozen=True)
class CaptureStats:
    """Counters of a stream at one moment.

    Attributes:
        frames_read: Frames read from the source, across reconnects.
        frames_filtered: Frames dropped by ``skip`` or ``max_fps``.
        frames_overwritten: Live frames replaced by a newer one before being read.
        frames_delivered: Frames handed to the consumer.
        reconnects: Reopen attempts made.
    """

    frames_read: int
    frames_filtered: int
    frames_overwritten: int
    frames_delivered: int
    reconnects: int


class RateLimiter:
    """Lets through at most ``max_fps`` timestamps per second, on a steady schedule.

    Scheduling against the ideal grid (rather than "last + interval") keeps the
    output rate close to ``max_fps`` when it does not divide the input rate.
    """

    def __init__(self, max_fps: float) -> None:
        if max_fps <= 0:
            raise ValueError(f"max_fps must be positive, got {max_fps}")
        self.interval = 1.0 / max_fps
        self._next_due: float | None = None

    def allow(self, t: float) -> bool:
        """Return True when a frame at time ``t`` (seconds) may pass."""
        if self._next_due is not None and t < self._next_due - 1e-6:
            return False
        if self._next_due is None or t - self._next_due > self.interval:
            self._next_due = t + self.interval  # after a gap, restart the grid instead of bursting
        else:
            self._next_due += self.interval
        return True


class _FrameBuffer:
    """Newest-wins slot (``live``) or bounded FIFO of ``queue_size`` whose producer waits."""

    def __init__(self, queue_size: int, *, live: bool) -> None:
        self._items: collections.deque[Frame] = collections.deque()
        self._queue_size = queue_size
        self._capacity = 1 if live else queue_size
        self._overwrite = live
        self._cond = threading.Condition()
        self._closed = False
        self.overwritten = 0
        self.delivered = 0

    def set_live(self, live: bool) -> None:
        """Switch between the newest-wins slot and the queue (before the first frame)."""
        with self._cond:
            self._capacity = 1 if live else self._queue_size
            self._overwrite = live

    def put(self, frame: Frame, abort: Callable[[], bool]) -> bool:
        with self._cond:
            while len(self._items) >= self._capacity:
                if self._overwrite:
                    self._items.popleft()
                    self.overwritten += 1
                    continue
                if abort() or self._closed:
                    return False
                self._cond.wait(_POLL_S)
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._items.popleft()
            self.delivered += 1
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._items


class _Session:
    """One open attempt: a source, its reader thread and what came of it."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.started_at = time.monotonic()
        self.last_frame_at: float | None = None
        self.abandoned = False
        self.done = threading.Event()
        self.outcome = ""  # why the reader stopped: "end of stream", an error, ...
        self.open_failed = False
        self.offline = False  # the open failed with SourceOfflineError


class VideoStream:
    """Captures one source in background threads and hands out :class:`Frame` objects.

    Prefer :func:`open_source`, which builds and starts one.

    Args:
        spec: Source spec (see :func:`camera_tools.sources.classify_spec`).
        options: Delivery and reconnect policy.
        source_factory: Builds an unopened source for ``spec``; called again on
            every reconnect. Replace it to inject fakes.
        on_event: Called with every :class:`SourceEvent` (from a capture thread;
            keep it quick).
        source_id: Name used in frames, events and logs; defaults to the
            redacted spec.

    Example:
        >>> with open_source("clip.mp4", options=CaptureOptions(skip=1)) as stream:  # doctest: +SKIP
        ...     for frame in stream:
        ...         handle(frame.image)
    """

    def __init__(
        self,
        spec: str,
        *,
        options: CaptureOptions | None = None,
        source_factory: SourceFactory = create_source,
        on_event: Callable[[SourceEvent], None] | None = None,
        source_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.options = options or CaptureOptions()
        self.source_id = source_id or redact_url(spec)
        self._factory = source_factory
        self._on_event = on_event
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state: SourceState | None = None
        self._properties: SourceProperties | None = None
        self._properties_ready = threading.Event()
        self._buffer: _FrameBuffer | None = None
        self._kind: SourceKind | None = None
        self._live: bool | None = None  # decided by the first successful open
        self._frames_read = 0
        self._frames_filtered = 0
        self._reconnects = 0
        self._limiter = RateLimiter(self.options.max_fps) if self.options.max_fps else None
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"capture-{self.source_id}", daemon=True
        )
        self._started = False

    # -- public API -------------------------------------------------------------------

    def start(self) -> VideoStream:
        """Start capturing; returns ``self``.

        Raises:
            SourceError: The spec names no known kind of source.
        """
        if self._started:
            return self
        first = self._factory(self.spec)  # fail fast on a bad spec, in the caller's thread
        self._kind = first.kind
        self._buffer = _FrameBuffer(self.options.queue_size, live=first.kind.is_live)
        self._first_source: FrameSource | None = first
        self._started = True
        self._supervisor.start()
        return self

    def read(self, timeout: float | None = None) -> Frame | None:
        """Return the next frame; ``None`` on timeout or once the stream is finished."""
        if self._buffer is None:
            raise SourceError("read() before start()")
        return self._buffer.get(timeout)

    def __iter__(self) -> Iterator[Frame]:
        """Yield frames until the stream ends, fails or is stopped."""
        while True:
            frame = self.read(timeout=_POLL_S * 4)
            if frame is not None:
                yield frame
            elif self.finished:
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capturing and wait up to ``timeout`` for the supervisor to exit."""
        self._stop.set()
        if self._buffer is not None:
            self._buffer.close()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout)

    def __enter__(self) -> VideoStream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def state(self) -> SourceState | None:
        """Current state; ``None`` before :meth:`start`."""
        with self._lock:
            return self._state

    @property
    def finished(self) -> bool:
        """True once the stream is over and every buffered frame has been read."""
        return self._buffer is not None and self._buffer.drained

    @property
    def kind(self) -> SourceKind | None:
        """Kind of the source, known after :meth:`start`."""
        return self._kind

    @property
    def live(self) -> bool | None:
        """Whether the source is read as live (newest frame kept, reopened when it ends).

        Known from the kind for webcams, network streams, files and folders; for an HLS
        playlist or a page, ``None`` until its first open tells.
        """
        if self._live is not None:
            return self._live
        if self._kind is None or self._kind.live_decided_at_open:
            return None
        return self._kind.is_live

    @property
    def properties(self) -> SourceProperties | None:
        """Properties from the latest successful open, or ``None`` before one."""
        return self._properties

    def wait_for_properties(self, timeout: float | None = None) -> SourceProperties | None:
        """Block until the source has been opened once (or ``timeout`` passes)."""
        self._properties_ready.wait(timeout)
        return self._properties

    def stats(self) -> CaptureStats:
        """A snapshot of the stream's counters."""
        buffer = self._buffer
        return CaptureStats(
            frames_read=self._frames_read,
            frames_filtered=self._frames_filtered,
            frames_overwritten=buffer.overwritten if buffer else 0,
            frames_delivered=buffer.delivered if buffer else 0,
            reconnects=self._reconnects,
        )

    # -- supervisor -------------------------------------------------------------------

    def _supervise(self) -> None:
        assert self._kind is not None and self._buffer is not None
        backoff = Backoff(self.options.reconnect)
        final = SourceState.ENDED
        reason = "stopped"
        try:
            self._set_state(SourceState.CONNECTING)
            source: FrameSource | None = self._first_source
            self._first_source = None
            while not self._stop.is_set():
                if source is None:
                    source = self._factory(self.spec)
                session = _Session(source)
                source = None
                threading.Thread(
                    target=self._read_session,
                    args=(session,),
                    name=f"reader-{self.source_id}",
                    daemon=True,
                ).start()
                outcome = self._watch(session)
                if self._stop.is_set():
                    # Let the reader leave FFmpeg and close the source: a daemon thread still
                    # inside OpenCV when the interpreter exits aborts the whole process.
                    session.done.wait(self.options.reader_exit_s)
                    break
                if not self._kind.reconnects or (self._live is False and not session.open_failed):
                    # Files, folders and recordings end for good; an open failure or a dead
                    # webcam is a failure.
                    if session.open_failed or (
                        session.last_frame_at is None and self._kind.is_live
                    ):
                        final, reason = SourceState.FAILED, outcome
                    else:
                        final, reason = SourceState.ENDED, outcome
                    break
                if session.last_frame_at is not None:
                    backoff.reset()  # it worked for a while: start the next backoff from scratch
                delay = backoff.next_delay()
                if delay is None:
                    final = SourceState.FAILED
                    reason = f"gave up after {backoff.attempt} reconnect attempts ({outcome})"
                    break
                self._reconnects += 1
                state = SourceState.OFFLINE if session.offline else SourceState.RECONNECTING
                self._set_state(state, attempt=backoff.attempt, delay_s=delay, reason=outcome)
                logger.debug(
                    "%s: reconnect attempt %d in %.2fs", self.source_id, backoff.attempt, delay
                )
                if self._stop.wait(delay):
                    break
        except Exception as exc:  # a crash here must still end the stream visibly
            logger.exception("%s: capture supervisor crashed", self.source_id)
            final, reason = SourceState.FAILED, redact_url(str(exc))
        finally:
            self._set_state(final, reason=reason)
            self._buffer.close()

    def _watch(self, session: _Session) -> str:
        """Wait for the reader to finish or (live sources) to go silent; return why it stopped."""
        assert self._kind is not None
        while not session.done.wait(_POLL_S):
            if self._stop.is_set():
                return "stopped"
            if not (self._kind.is_live if self._live is None else self._live):
                continue  # a file reader waiting on a slow consumer is not stalled
            now = time.monotonic()
            if session.last_frame_at is None:
                if now - session.started_at > self.options.connect_timeout_s:
                    session.abandoned = True
                    return f"no frame within {self.options.connect_timeout_s:g}s of connecting"
            elif now - session.last_frame_at > self.options.stall_timeout_s:
                session.abandoned = True
                reason = f"no frame for {self.options.stall_timeout_s:g}s"
                self._set_state(SourceState.STALLED, reason=reason)
                return reason
        return session.outcome

    # -- reader -----------------------------------------------------------------------

    def _read_session(self, session: _Session) -> None:
        source = session.source
        assert self._buffer is not None
        buffer = self._buffer
        pace_origin: tuple[float, float] | None = None  # (monotonic, position) of the first frame
        try:
            try:
                props = source.open()
                if session.abandoned or self._stop.is_set():
                    return
                self._decide_live(props, buffer)
            except SourceOfflineError as exc:
                session.open_failed = session.offline = True
                session.outcome = redact_url(str(exc))
                return
            except Exception as exc:
                session.open_failed = True
                session.outcome = f"open failed: {redact_url(str(exc))}"
                return
            self._properties = props
            self._properties_ready.set()
            fps = props.fps
            while not session.abandoned and not self._stop.is_set():
                raw = source.read()
                if session.abandoned:
                    return
                if raw is None:
                    session.outcome = "end of stream"
                    return
                now = time.monotonic()
                if session.last_frame_at is None:
                    self._set_state(SourceState.CONNECTED, reason=f"{props.width}x{props.height}")
                session.last_frame_at = now
                index = self._frames_read
                self._frames_read += 1
                position = raw.position_s
                if position is None and not props.is_live and fps:
                    position = index / fps
                if not self._accept(index, position, now, props.is_live):
                    self._frames_filtered += 1
                    continue
                if self.options.realtime and not props.is_live and position is not None:
                    if pace_origin is None:
                        pace_origin = (now, position)
                    due = pace_origin[0] + (position - pace_origin[1])
                    if due > now and self._stop.wait(due - now):
                        return
                frame = _make_frame(raw, index, self.source_id, position)
                if not buffer.put(frame, abort=lambda: self._stop.is_set() or session.abandoned):
                    return
        except Exception as exc:
            session.outcome = f"read failed: {redact_url(str(exc))}"
            logger.debug("%s: reader error", self.source_id, exc_info=True)
        finally:
            try:
                source.close()
            except Exception:
                logger.debug("%s: error closing source", self.source_id, exc_info=True)
            session.done.set()

    def _decide_live(self, props: SourceProperties, buffer: _FrameBuffer) -> None:
        """Fix liveness at the first open; a live source that reopens as a recording is over.

        Raises:
            SourceOfflineError: The source was live and is now a recording (a live playlist
                that got its end): reading it would replay the broadcast from its start.
        """
        if self._live is None:
            self._live = props.is_live
            buffer.set_live(props.is_live)
        elif self._live and not props.is_live:
            raise SourceOfflineError("the live stream has ended")

    def _accept(self, index: int, position: float | None, now: float, live: bool) -> bool:
        if index % (self.options.skip + 1):
            return False
        if self._limiter is None:
            return True
        return self._limiter.allow(now if live or position is None else position)

    def _set_state(
        self,
        state: SourceState,
        *,
        attempt: int = 0,
        delay_s: float | None = None,
        reason: str = "",
    ) -> None:
        with self._lock:
            previous = self._state
            if previous == state or (previous is not None and previous.is_final):
                return
            self._state = state
        event = SourceEvent(self.source_id, state, previous, time.time(), attempt, delay_s, reason)
        announce_state(event, self._on_event, logger)


def _make_frame(raw: RawFrame, index: int, source_id: str, position: float | None) -> Frame:
    return Frame(
        image=raw.image,
        index=index,
        captured_at=time.time(),
        source_id=source_id,
        position_s=position,
    )


def open_source(
    spec: str,
    *,
    options: CaptureOptions | None = None,
    source_factory: SourceFactory = create_source,
    on_event: Callable[[SourceEvent], None] | None = None,
    source_id: str | None = None,
) -> VideoStream:
    """Pick the source for ``spec``, start capturing it and return the running stream.

    Args:
        spec: ``0``, ``/dev/video0``, ``rtsp://...``, ``https://.../index.m3u8``,
            a video file, an image folder or a glob.
        options: Delivery and reconnect policy (skip, max_fps, realtime, ...).
        source_factory: Builds the :class:`~camera_tools.sources.FrameSource`;
            defaults to :func:`~camera_tools.sources.create_source`.
        on_event: Receives every state change.
        source_id: Name for frames and logs; defaults to the redacted spec.

    Raises:
        SourceError: The spec names no known kind of source.

    Example:
        >>> stream = open_source("rtsp://user:pw@cam/live", options=CaptureOptions(max_fps=5))  # doctest: +SKIP
        >>> frame = stream.read(timeout=5.0)  # doctest: +SKIP
        >>> stream.stop()  # doctest: +SKIP
    """
    stream = VideoStream(
        spec, options=options, source_factory=source_factory, on_event=on_event, source_id=source_id
    )
    return stream.start()
