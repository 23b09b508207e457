"""One watched source: capture it and stream it to the server, across reconnects.

A :class:`SourceLoop` owns one :class:`~camera_tools.capture.VideoStream` and runs two threads
per ``Classify`` stream: a *worker* that reads answers and a *sender* that reads frames and keeps
up to ``max_in_flight`` of them unanswered, so throughput follows the server rather than the
round trip. It never writes an output: it publishes each classified frame, each capture state
change and its final summary through ``publish`` (see :mod:`camera_tools.watch.observers`).

Losing the stream: :func:`~camera_tools.watch.failures.failure_action` decides from its status.
A stream whose replica went away is reopened on the same connection after this source's own
backoff (a balancer places it on a replica that is up; the other sources' streams go on); when
the server as a whole may be gone, the loop asks the shared
:class:`~camera_tools.watch.connection.ServerConnection` to recover first. Either way, files and
folders (LOSSLESS) then resend their unanswered frames, oldest first, so no frame is skipped or
answered twice (the server's window average restarts on the new stream); live sources drop what
was in flight and carry on with the newest frame.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from camera_tools.backoff import Backoff
from camera_tools.capture import VideoStream
from camera_tools.sinks import Classification
from camera_tools.sources import FrameSource, SourceKind, create_source, recognise_spec
from camera_tools.states import SourceEvent, SourceState
from camera_tools.video_frames import Frame
from camera_tools.watch.connection import ServerConnection
from camera_tools.watch.failures import FailureAction, failure_action
from camera_tools.watch.observers import ClassifiedFrame
from camera_tools.watch.source_summary import SourceOutcome, SourceSummary, SourceTally
from camera_tools.watch.watch_config import WatchConfig
from client import ClassifierClientError, Delivery, Prediction, Stream

logger = logging.getLogger(__name__)

_POLL_S = 0.2  # how often blocked loops recheck stop and failure flags
_DEFAULT_FPS = 15.0  # playback rate of a live source that does not state its own

Publication = ClassifiedFrame | SourceEvent | SourceSummary
"""What a source loop hands to the watcher for its observers."""


@dataclass
class _Pending:
    """A frame taken from the capture, waiting to be sent or answered."""

    frame: Frame
    position_s: float | None
    sent_at: float = 0.0


class _Session:
    """One ``Classify`` stream of one source: the frames it has in flight and how it ended."""

    def __init__(self, stream: Stream, generation: int) -> None:
        self.stream = stream
        self.generation = generation
        self.pending: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self.cond = threading.Condition()
        self.closed = False
        self.send_closed = False
        self.send_error: BaseException | None = None


class SourceLoop:
    """Captures one source and streams it to the server, across reconnects.

    Args:
        spec: The source as given (webcam index, URL, file, folder, glob).
        source_id: Its redacted, unique id.
        config: Capture, delivery and reconnect settings.
        connection: The server connection shared with the other sources.
        publish: Receives every classified frame, state change and the final summary; called
            from this loop's threads and the capture's.
        stop: Set when the whole run stops.
        keep_images: Whether published frames carry their image (some observer wants it).
    """

    def __init__(
        self,
        spec: str,
        source_id: str,
        config: WatchConfig,
        connection: ServerConnection,
        publish: Callable[[Publication], None],
        stop: threading.Event,
        *,
        keep_images: bool,
    ) -> None:
        self.spec = spec
        self.source_id = source_id
        self._config = config
        self._conn = connection
        self._publish = publish
        self._stop = stop
        self._keep_images = keep_images
        self._retry: collections.deque[_Pending] = collections.deque()
        # Reset by every answer: only failures in a row back off further.
        self._reopen = Backoff(config.reconnect)
        self._capture_done = False
        self._source_kind: SourceKind | None = None  # both found by the first _create_source
        self._min_size: tuple[int, int] | None = None
        self.capture = VideoStream(
            spec,
            options=config.capture_options(),
            source_factory=self._create_source,
            on_event=self._source_event,
            source_id=source_id,
        )
        self._failure = ""
        self.kind: SourceKind | None = None
        self.outcome = SourceOutcome.STOPPED
        self.reason = ""
        self.tally = SourceTally(source_id)
        self.thread = threading.Thread(target=self._run, name=f"watch-{source_id}", daemon=True)

    @property
    def live(self) -> bool:
        return bool(self.capture.live)

    @property
    def delivery(self) -> Delivery:
        if self._config.delivery is not None:
            return self._config.delivery
        return Delivery.LIVE if self.live else Delivery.LOSSLESS

    def start(self) -> None:
        """Start capturing and streaming.

        Raises:
            SourceError: The spec names no known kind of source.
        """
        self.capture.start()
        self.kind = self.capture.kind
        self.thread.start()

    def playback_fps(self) -> float:
        """Frame rate of this source's classified frames as video."""
        # Nominal, not measured: exact for files; a live source that drops frames plays fast.
        props = self.capture.properties
        fps = (props.fps if props and props.fps else _DEFAULT_FPS) / (self._config.skip + 1)
        if self._config.max_fps:
            fps = min(fps, self._config.max_fps)
        return fps

    def summary(self) -> SourceSummary:
        """The counters now, with the outcome so far (final once the loop has ended)."""
        return self.tally.summary(self.capture.stats(), self.outcome, self.reason)

    def _create_source(self, spec: str) -> FrameSource:
        """The capture's source factory, called again for every reopen.

        What ``spec`` is (which may take a probe of an http(s) URL) and the model's input size
        (for a page's rendition) are found out once, by the first call, in :meth:`start`'s
        thread: later calls come from the capture's thread, which must not wait on the
        connection while it reconnects.
        """
        if self._source_kind is None:
            self._source_kind = recognise_spec(spec)
            lease = self._conn.lease()
            self._min_size = None if lease is None else lease[0].model_info.input_size
        return create_source(
            spec,
            kind=self._source_kind,
            open_timeout_s=self._config.open_timeout_s,
            read_timeout_s=min(self._config.open_timeout_s, self._config.stall_timeout_s),
            folder_fps=self._config.folder_fps,
            page_format=self._config.page_format,
            min_size=self._min_size,
        )

    def _source_event(self, event: SourceEvent) -> None:
        if event.state is SourceState.FAILED:
            self._failure = event.reason
        self._publish(event)

    # -- worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a crash must end the source visibly, not hang the run
            logger.exception("%s: watcher crashed", self.source_id)
            self.outcome, self.reason = SourceOutcome.FAILED, str(exc)
        finally:
            self.capture.stop()
            if (
                self.outcome is not SourceOutcome.FAILED
                and self.capture.state is SourceState.FAILED
            ):
                self.outcome = SourceOutcome.FAILED
            self._publish(self.summary())

    def _loop(self) -> None:
        # A playlist or a page says whether it is live, which sets the delivery, once opened.
        while self.capture.live is None and not self.capture.finished:
            if self._stop.wait(_POLL_S):
                return
        while True:
            lease = self._conn.lease()
            if lease is None:
                if not self._stop.is_set():
                    self.outcome = SourceOutcome.FAILED
                    self.reason = self._conn.failed_reason or "server connection lost"
                return
            client, generation = lease
            try:
                stream = client.open_stream(
                    self.source_id,
                    window=self._config.window,
                    delivery=self.delivery,
                    channel_order="bgr",
                    probabilities=False,  # outputs use labels and scores only
                )
            except ClassifierClientError as exc:
                self._conn.recover(generation, str(exc))
                continue
            session = _Session(stream, generation)
            error = self._stream(session)
            if error is None:
                if self._stop.is_set():
                    self.outcome = SourceOutcome.STOPPED
                elif self.capture.state is SourceState.FAILED:
                    self.outcome = SourceOutcome.FAILED
                    self.reason = self._failure or "source failed"
                else:
                    self.outcome = SourceOutcome.ENDED
                return
            if self._stop.is_set():
                self.outcome = SourceOutcome.STOPPED
                return
            if not isinstance(error, ClassifierClientError):
                raise error  # not a gRPC failure but a bug: _run ends the source visibly
            if not self._after_failure(error, generation, answered=stream.received > 0):
                return

    def _after_failure(
        self, error: ClassifierClientError, generation: int, *, answered: bool
    ) -> bool:
        """Act on a failed stream per :func:`failure_action`; ``False`` when the loop must end."""
        action = failure_action(error.code, answered=answered)
        if action is FailureAction.GIVE_UP:
            self.outcome, self.reason = SourceOutcome.FAILED, str(error)
            logger.error("%s: the server refused the stream: %s", self.source_id, error)
            return False
        logger.warning(
            "%s: stream to the server lost (%s); %s, %d frames to resend",
            self.source_id,
            error,
            action.value,
            len(self._retry),
        )
        self.tally.server_reconnects += 1
        if action is FailureAction.RECONNECT:
            self._conn.recover(generation, str(error))
            lease = self._conn.lease()
            if lease is None or lease[1] != generation:
                self._reopen.reset()
                return True  # a new connection (or none): no need to wait any longer
        delay = self._reopen.next_delay()
        if delay is None:
            self.outcome = SourceOutcome.FAILED
            self.reason = f"gave up after {self._reopen.attempt} attempts to reopen ({error})"
            return False
        if self._stop.wait(delay):
            self.outcome = SourceOutcome.STOPPED
            return False
        return True

    def _stream(self, session: _Session) -> BaseException | None:
        """Run one stream to its end; return why it failed, or ``None`` when it ended normally."""
        sender = threading.Thread(
            target=self._send_loop, args=(session,), name=f"send-{self.source_id}", daemon=True
        )
        sender.start()
        error: BaseException | None = None
        drain_deadline: float | None = None
        stream = session.stream
        try:
            while True:
                if self._stop.is_set() and drain_deadline is None:
                    drain_deadline = time.monotonic() + self._config.drain_timeout_s
                if drain_deadline is not None and time.monotonic() > drain_deadline:
                    break
                try:
                    prediction = stream.receive(timeout=_POLL_S)
                except TimeoutError:
                    if session.send_error is not None:
                        error = session.send_error
                        break
                    continue
                except ClassifierClientError as exc:
                    error = exc
                    break
                if prediction is None:
                    with session.cond:
                        unanswered = len(session.pending)
                    if session.send_closed and (unanswered == 0 or self.delivery is Delivery.LIVE):
                        break
                    # The server ended the stream before answering everything (e.g. shutdown).
                    error = ClassifierClientError(
                        grpc.StatusCode.UNAVAILABLE, "the server ended the stream early"
                    )
                    break
                self._answer(session, prediction)
        finally:
            with session.cond:
                session.closed = True
                session.cond.notify_all()
            stream.close()
            sender.join(timeout=10.0)
            self._requeue(session)
        return error

    def _requeue(self, session: _Session) -> None:
        """Keep a LOSSLESS source's unanswered frames for the next stream; a live one drops them."""
        with session.cond:
            unanswered = list(session.pending.values())
            session.pending.clear()
        if self.delivery is Delivery.LOSSLESS and not self._stop.is_set():
            self._retry.extendleft(reversed(unanswered))  # oldest first, before anything newer
        else:
            self.tally.dropped += len(unanswered)

    def _answer(self, session: _Session, prediction: Prediction) -> None:
        now = time.monotonic()
        with session.cond:
            entry = session.pending.pop(prediction.seq, None)
            # LIVE: the server answers only the newest frames; older ones were dropped.
            stale = [seq for seq in session.pending if seq < prediction.seq]
            for seq in stale:
                del session.pending[seq]
            session.cond.notify_all()
        self.tally.dropped += len(stale)
        if entry is None:
            logger.debug("%s: answer for unknown seq %d", self.source_id, prediction.seq)
            return
        self._reopen.reset()
        latency = now - entry.sent_at
        self.tally.answered(now, latency, ok=prediction.ok)
        if prediction.error is not None:
            logger.warning(
                "%s: frame %d not classified: %s",
                self.source_id,
                entry.frame.index,
                prediction.error.message,
            )
            return
        classification = Classification(
            source_id=self.source_id,
            frame_index=entry.frame.index,
            captured_at=entry.frame.captured_at,
            label=prediction.label,
            score=prediction.score,
            position_s=entry.position_s,
            frame_label=prediction.frame_label or None,
            model_version=prediction.model_version,
        )
        self._publish(
            ClassifiedFrame(
                classification=classification,
                prediction=prediction,
                image=entry.frame.image if self._keep_images else None,
                latency_s=latency,
                live=self.live,
                playback_fps=self.playback_fps(),
            )
        )

    # -- sender ---------------------------------------------------------------------------

    def _next(self) -> _Pending | None:
        """The next frame to send: resent ones first, then the capture's."""
        if self._retry:
            return self._retry.popleft()
        if self._stop.is_set():
            return None
        frame = self.capture.read(timeout=_POLL_S)
        if frame is None:
            if self.capture.finished:
                self._capture_done = True
            return None
        return _Pending(frame, self._position(frame))

    def _position(self, frame: Frame) -> float | None:
        if self.live:
            return None
        props = self.capture.properties
        # Index / fps rather than the decoder's timestamp: it is what a frame number means.
        if props is not None and props.fps:
            return frame.index / props.fps
        return frame.position_s

    def _send_loop(self, session: _Session) -> None:
        stream = session.stream
        limit = self._config.max_in_flight
        try:
            while not session.closed:
                item = self._next()
                if item is None:
                    if self._capture_done or self._stop.is_set():
                        session.send_closed = True  # before: the end may be seen at once
                        stream.close_send()
                        return
                    continue
                with session.cond:
                    while len(session.pending) >= limit and not session.closed:
                        session.cond.wait(_POLL_S)
                    if session.closed:
                        self._retry.appendleft(item)
                        return
                    # Register before sending: the answer may come back before send() returns.
                    seq = stream.sent
                    item.sent_at = time.monotonic()
                    session.pending[seq] = item
                self.tally.sent(item.sent_at)
                stream.send(
                    item.frame.image, capture_time_us=int(item.frame.captured_at * 1_000_000)
                )
        except ClassifierClientError as exc:
            session.send_error = exc
        except Exception as exc:
            logger.exception("%s: sender crashed", self.source_id)
            session.send_error = exc
