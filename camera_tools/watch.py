"""Classify several video sources at once through one classification server.

:class:`Watcher` opens one :class:`~camera_tools.capture.VideoStream` per source and one
``Classify`` stream per source on a single :class:`client.StreamClient` connection, then
hands every answered frame to the outputs (CSV log, segments, recorder, display, callbacks).

Threads: per source a *worker* (reads answers) and a *sender* (reads frames, keeps up to
``max_in_flight`` of them unanswered, so throughput follows the server rather than the round
trip); outputs are written by the thread that calls :meth:`Watcher.run`, so sinks and OpenCV
windows are only touched from one thread.

Losing the server: every source's stream fails; the first worker to notice reconnects the
shared connection with capped exponential backoff while the others wait for it. Files and
folders (LOSSLESS) then resend their unanswered frames, oldest first, so no frame is skipped;
the server's window average restarts on the new stream. Live sources drop what was in flight
and carry on with the newest frame.

Example:
    >>> config = WatchConfig(sources=("clip.mp4", "rtsp://cam/live"), server="127.0.0.1:1234")
    >>> report = Watcher(config, on_result=print).run()  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import enum
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from camera_tools.backoff import Backoff, BackoffPolicy
from camera_tools.capture import (
    CaptureOptions,
    SourceEvent,
    StreamState,
    VideoStream,
    announce_state,
)
from camera_tools.errors import CameraToolsError
from camera_tools.frames import Frame
from camera_tools.overlay import draw_overlay
from camera_tools.redact import redact_url
from camera_tools.sinks import (
    Classification,
    CsvFrameLog,
    DisplaySink,
    SegmentLog,
    Sink,
    VideoRecorder,
    check_display,
    derive_output_path,
)
from camera_tools.sources import SourceKind, create_source
from client import ClassifierClientError, Delivery, Prediction, Stream, StreamClient

logger = logging.getLogger(__name__)

_POLL_S = 0.2  # how often blocked loops recheck stop and failure flags
_LATENCY_SAMPLES = 10_000  # percentiles over the most recent answers: bounded memory on long runs
# Errors that no reconnect can fix: the source gives up instead of retrying forever.
_FATAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)


class WatchError(CameraToolsError):
    """The watcher cannot start."""


class ServerUnavailableError(WatchError):
    """The classification server could not be reached at start."""


class SourceOutcome(enum.Enum):
    """How a source's run ended."""

    ENDED = "ended"  # a file or folder was classified to its end
    STOPPED = "stopped"  # Ctrl+C, --duration, or Watcher.stop()
    FAILED = "failed"  # the source or the server gave up

    @property
    def failed(self) -> bool:
        return self is SourceOutcome.FAILED


@dataclass(frozen=True)
class WatchConfig:
    """What to watch, how to classify it and where results go.

    Attributes:
        sources: Source specs (webcam index, URL, video file, image folder or glob).
        server: ``host:port`` of the classification server.
        window: Frames averaged per answer; 0 = the server default.
        delivery: Force LIVE or LOSSLESS; ``None`` = LIVE for live sources, LOSSLESS otherwise.
        skip: Classify every (skip+1)-th frame.
        max_fps: Cap on frames classified per second per source.
        realtime: Play files at their native rate (default: as fast as the server answers).
        max_in_flight: Frames per source sent but not yet answered.
        client_id: Sent to the server with every stream.
        connect_timeout_s: Time allowed to reach the server (at start and per reconnect attempt).
        reconnect: Backoff for reopening network sources and reconnecting to the server;
            ``max_retries`` applies to both.
        stall_timeout_s: Silence after which a live source is reopened.
        open_timeout_s: Limit on opening (and on one read of) a network stream.
        folder_fps: Frame rate assigned to image folders (gives their frames a position).
        duration_s: Stop after this many seconds; ``None`` runs until the sources end.
        drain_timeout_s: On stop, how long to wait for answers to frames already sent.
        csv_path: One row per classified frame.
        segments_path: One row per stretch of the same label (``.csv`` or ``.jsonl``).
        record_path: Annotated video; one file per source (``<stem>-<source><suffix>``) when
            there are several.
        display: Show each source in an OpenCV window.
    """

    sources: tuple[str, ...]
    server: str
    window: int = 0
    delivery: Delivery | None = None
    skip: int = 0
    max_fps: float | None = None
    realtime: bool = False
    max_in_flight: int = 8
    client_id: str = ""
    connect_timeout_s: float = 5.0
    reconnect: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial_delay=0.5, max_delay=10.0, jitter=0.1)
    )
    stall_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    folder_fps: float = 10.0
    duration_s: float | None = None
    drain_timeout_s: float = 3.0
    csv_path: Path | None = None
    segments_path: Path | None = None
    record_path: Path | None = None
    display: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one source is needed")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.connect_timeout_s <= 0 or self.drain_timeout_s < 0:
            raise ValueError("connect_timeout_s must be > 0 and drain_timeout_s >= 0")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if self.folder_fps <= 0:
            raise ValueError(f"folder_fps must be positive, got {self.folder_fps}")
        # Fail on bad capture settings now rather than in a worker thread.
        self.capture_options()

    def capture_options(self) -> CaptureOptions:
        return CaptureOptions(
            skip=self.skip,
            max_fps=self.max_fps,
            realtime=self.realtime,
            stall_timeout_s=self.stall_timeout_s,
            connect_timeout_s=max(self.stall_timeout_s, 2 * self.open_timeout_s),
            reconnect=self.reconnect,
        )


@dataclass(frozen=True, eq=False)
class WatchResult:
    """One answered frame, as outputs and ``on_result`` receive it.

    Attributes:
        classification: Window-averaged label and score, frame label, times.
        prediction: The server's full answer.
        image: The full-resolution BGR frame (without overlay).
        latency_s: Send to answer.
        live: Whether the source is live (times are wall clock) or a file (positions).
    """

    classification: Classification
    prediction: Prediction
    image: np.ndarray
    latency_s: float
    live: bool


@dataclass(frozen=True)
class SourceSummary:
    """Counters of one source at the end of a run.

    Attributes:
        source: Source id (credentials redacted).
        outcome: ENDED, STOPPED or FAILED.
        reason: Why it failed (empty otherwise).
        frames_read: Frames read from the source (including skipped ones).
        classified: Frames answered with a label.
        errors: Frames answered with an error.
        dropped: Live frames never classified: replaced by a newer one before sending,
            dropped by the server, or in flight when the server was lost.
        mean_fps: Answers per second, first send to last answer.
        latency_p50_ms, latency_p95_ms: Send-to-answer latency percentiles.
        source_reconnects: Reopen attempts of the source.
        server_reconnects: Times this source's stream was reopened after losing the server.
    """

    source: str
    outcome: SourceOutcome
    reason: str
    frames_read: int
    classified: int
    errors: int
    dropped: int
    mean_fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    source_reconnects: int
    server_reconnects: int


@dataclass(frozen=True)
class WatchReport:
    """What :meth:`Watcher.run` returns."""

    sources: tuple[SourceSummary, ...]
    elapsed_s: float

    @property
    def failed(self) -> bool:
        return any(s.outcome.failed for s in self.sources)


def source_ids(specs: Sequence[str]) -> list[str]:
    """Redacted, unique ids for the specs (a repeated spec gets ``#2``, ``#3``...)."""
    ids: list[str] = []
    for spec in specs:
        base = redact_url(spec)
        name, n = base, 1
        while name in ids:
            n += 1
            name = f"{base}#{n}"
        ids.append(name)
    return ids


def record_paths(path: Path, specs: Sequence[str]) -> dict[str, Path]:
    """Where each source is recorded: ``path`` itself for one source, else ``<stem>-<name>``.

    The name is the file or folder name for local sources (full paths would make long names
    that differ only past :func:`~camera_tools.sinks.slugify`'s length limit), else the
    redacted URL; repeated names get ``-2``, ``-3``...
    """
    ids = source_ids(specs)
    if len(specs) == 1:
        return {ids[0]: path}
    paths: dict[str, Path] = {}
    used: set[Path] = set()
    for spec, source_id in zip(specs, ids, strict=True):
        short = source_id if "://" in spec else (Path(spec).name or source_id)
        candidate, n = derive_output_path(path, short), 1
        while candidate in used:
            n += 1
            candidate = derive_output_path(path, f"{short}-{n}")
        used.add(candidate)
        paths[source_id] = candidate
    return paths


# -- the shared server connection -----------------------------------------------------------


class _Connection:
    """One :class:`StreamClient` shared by every source, replaced when the server is lost.

    A generation number tells a worker whether the connection it saw fail has already been
    replaced by another worker, so N failing streams cause one reconnect, not N.
    """

    def __init__(
        self,
        config: WatchConfig,
        stop: threading.Event,
        on_event: Callable[[SourceEvent], None] | None,
    ) -> None:
        self._config = config
        self._stop = stop
        self._on_event = on_event
        self._lock = threading.Lock()
        self._client: StreamClient | None = None
        self._generation = 0
        self._state: StreamState | None = None
        self.failed_reason = ""
        self.name = f"server {config.server}"

    def connect(self) -> None:
        """First connection: waits up to the connect timeout for a server that is starting."""
        self._set_state(StreamState.CONNECTING)
        try:
            client = StreamClient(
                self._config.server,
                connect_timeout=self._config.connect_timeout_s,
                wait_for_ready=True,
                client_id=self._config.client_id,
            )
        except ClassifierClientError as exc:
            self._set_state(StreamState.FAILED, reason=exc.details)
            raise ServerUnavailableError(str(exc)) from exc
        with self._lock:
            self._client = client
        self._set_state(StreamState.CONNECTED, reason=_describe(client))

    def lease(self) -> tuple[StreamClient, int] | None:
        """The current client and its generation; ``None`` once given up or closed."""
        with self._lock:
            if self._client is None:
                return None
            return self._client, self._generation

    def recover(self, generation: int, reason: str) -> None:
        """Replace the client of ``generation`` after a failure (no-op if already replaced)."""
        with self._lock:
            if generation != self._generation or self._client is None:
                return
            self._client.close()  # cancels the other sources' dead streams too
            self._client = None
            self._set_state(StreamState.STALLED, reason=reason)
            backoff = Backoff(self._config.reconnect)
            while not self._stop.is_set():
                delay = backoff.next_delay()
                if delay is None:
                    self.failed_reason = (
                        f"gave up after {backoff.attempt} reconnect attempts ({reason})"
                    )
                    self._set_state(StreamState.FAILED, reason=self.failed_reason)
                    return
                self._set_state(
                    StreamState.RECONNECTING, attempt=backoff.attempt, delay_s=delay, reason=reason
                )
                if self._stop.wait(delay):
                    return
                try:
                    client = StreamClient(
                        self._config.server,
                        connect_timeout=self._config.connect_timeout_s,
                        client_id=self._config.client_id,
                    )
                except ClassifierClientError as exc:
                    reason = exc.details
                    logger.debug("%s: attempt %d failed: %s", self.name, backoff.attempt, exc)
                    continue
                self._client = client
                self._generation += 1
                self._set_state(StreamState.CONNECTED, reason=_describe(client))
                return

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _set_state(
        self,
        state: StreamState,
        *,
        attempt: int = 0,
        delay_s: float | None = None,
        reason: str = "",
    ) -> None:
        previous, self._state = self._state, state
        if previous is state and state is not StreamState.RECONNECTING:
            return
        reason = redact_url(reason)
        event = SourceEvent(self.name, state, previous, time.time(), attempt, delay_s, reason)
        announce_state(event, self._on_event, logger)


def _describe(client: StreamClient) -> str:
    info = client.model_info
    return f"model {info.model_name or '?'} ({len(info.labels)} labels, input {info.input_width}x{info.input_height})"


# -- one source -------------------------------------------------------------------------------


@dataclass
class _Pending:
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


_ANSWER, _SOURCE_DONE = "answer", "done"


class _SourceRunner:
    """Captures one source and streams it to the server, across reconnects."""

    def __init__(
        self,
        spec: str,
        source_id: str,
        config: WatchConfig,
        connection: _Connection,
        results: queue.Queue[tuple[str, object]],
        stop: threading.Event,
        on_event: Callable[[SourceEvent], None] | None,
    ) -> None:
        self.spec = spec
        self.source_id = source_id
        self._config = config
        self._conn = connection
        self._results = results
        self._stop = stop
        self._retry: collections.deque[_Pending] = collections.deque()
        self._capture_done = False
        self.capture = VideoStream(
            spec,
            options=config.capture_options(),
            source_factory=functools.partial(
                create_source,
                open_timeout_s=config.open_timeout_s,
                read_timeout_s=min(config.open_timeout_s, config.stall_timeout_s),
                folder_fps=config.folder_fps,
            ),
            on_event=self._source_event,
            source_id=source_id,
        )
        self._user_on_event = on_event
        self._failure = ""
        self.kind: SourceKind | None = None
        self.outcome = SourceOutcome.STOPPED
        self.reason = ""
        self.classified = 0
        self.errors = 0
        self.dropped = 0
        self.server_reconnects = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_SAMPLES)
        self.first_send: float | None = None
        self.last_answer: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"watch-{source_id}", daemon=True)

    @property
    def live(self) -> bool:
        return self.kind is not None and self.kind.is_live

    @property
    def delivery(self) -> Delivery:
        if self._config.delivery is not None:
            return self._config.delivery
        return Delivery.LIVE if self.live else Delivery.LOSSLESS

    def _source_event(self, event: SourceEvent) -> None:
        if event.state is StreamState.FAILED:
            self._failure = event.reason
        if self._user_on_event is not None:
            self._user_on_event(event)

    def start(self) -> None:
        self.capture.start()  # raises SourceError on a spec of no known kind
        self.kind = self.capture.kind
        self.thread.start()

    def record_fps(self) -> float:
        """Frame rate for this source's recording: classified frames per second of video."""
        # Nominal, not measured: exact for files; a live source that drops frames plays fast.
        props = self.capture.properties
        fps = (props.fps if props and props.fps else 15.0) / (self._config.skip + 1)
        if self._config.max_fps:
            fps = min(fps, self._config.max_fps)
        return fps

    def summary(self) -> SourceSummary:
        stats = self.capture.stats()
        lat = np.array(self.latencies) * 1000.0
        span = (
            (self.last_answer - self.first_send)
            if self.first_send is not None and self.last_answer is not None
            else 0.0
        )
        answered = self.classified + self.errors
        return SourceSummary(
            source=self.source_id,
            outcome=self.outcome,
            reason=self.reason,
            frames_read=stats.frames_read,
            classified=self.classified,
            errors=self.errors,
            dropped=self.dropped + stats.frames_overwritten,
            mean_fps=answered / span if span > 0 else 0.0,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else None,
            source_reconnects=stats.reconnects,
            server_reconnects=self.server_reconnects,
        )

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
                and self.capture.state is StreamState.FAILED
            ):
                self.outcome = SourceOutcome.FAILED
            self._results.put((_SOURCE_DONE, self))

    def _loop(self) -> None:
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
                elif self.capture.state is StreamState.FAILED:
                    self.outcome = SourceOutcome.FAILED
                    self.reason = self._failure or "source failed"
                else:
                    self.outcome = SourceOutcome.ENDED
                return
            if self._stop.is_set():
                self.outcome = SourceOutcome.STOPPED
                return
            if isinstance(error, ClassifierClientError) and error.code in _FATAL_CODES:
                self.outcome, self.reason = SourceOutcome.FAILED, str(error)
                logger.error("%s: the server refused the stream: %s", self.source_id, error)
                return
            logger.warning(
                "%s: stream to the server lost (%s); %d frames to resend",
                self.source_id,
                error,
                len(self._retry),
            )
            self.server_reconnects += 1
            self._conn.recover(generation, str(error))

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
        with session.cond:
            unanswered = list(session.pending.values())
            session.pending.clear()
        if self.delivery is Delivery.LOSSLESS and not self._stop.is_set():
            self._retry.extendleft(reversed(unanswered))  # oldest first, before anything newer
        else:
            self.dropped += len(unanswered)

    def _answer(self, session: _Session, prediction: Prediction) -> None:
        now = time.monotonic()
        with session.cond:
            entry = session.pending.pop(prediction.seq, None)
            # LIVE: the server answers only the newest frames; older ones were dropped.
            stale = [seq for seq in session.pending if seq < prediction.seq]
            for seq in stale:
                del session.pending[seq]
            session.cond.notify_all()
        self.dropped += len(stale)
        if entry is None:
            logger.debug("%s: answer for unknown seq %d", self.source_id, prediction.seq)
            return
        latency = now - entry.sent_at
        self.latencies.append(latency)
        self.last_answer = now
        if not prediction.ok:
            self.errors += 1
            assert prediction.error is not None
            logger.warning(
                "%s: frame %d not classified: %s",
                self.source_id,
                entry.frame.index,
                prediction.error.message,
            )
            return
        self.classified += 1
        result = Classification(
            source_id=self.source_id,
            frame_index=entry.frame.index,
            captured_at=entry.frame.captured_at,
            label=prediction.label,
            score=prediction.score,
            position_s=entry.position_s,
            frame_label=prediction.frame_label or None,
        )
        self._results.put(
            (_ANSWER, WatchResult(result, prediction, entry.frame.image, latency, self.live))
        )

    # -- sender ---------------------------------------------------------------------------

    def _next(self) -> _Pending | None:
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
                if self.first_send is None:
                    self.first_send = item.sent_at
                stream.send(
                    item.frame.image, capture_time_us=int(item.frame.captured_at * 1_000_000)
                )
        except ClassifierClientError as exc:
            session.send_error = exc
        except Exception as exc:
            logger.exception("%s: sender crashed", self.source_id)
            session.send_error = exc


# -- outputs ----------------------------------------------------------------------------------


class _Outputs:
    """The configured sinks, written from the dispatching thread only."""

    def __init__(self, config: WatchConfig, extra: Sequence[Sink], on_quit: Callable[[], None]):
        self._config = config
        self.sinks: list[Sink] = list(extra)
        self.segments: SegmentLog | None = None
        self.display: DisplaySink | None = None
        self._recorders: dict[str, VideoRecorder] = {}
        self._fps: dict[str, tuple[float, float]] = {}  # source -> (last answer time, smoothed fps)
        self._record_paths = (
            record_paths(config.record_path, config.sources)
            if config.record_path is not None
            else {}
        )
        try:
            if config.csv_path is not None:
                self.sinks.append(CsvFrameLog(config.csv_path, flush_every=20))
            if config.segments_path is not None:
                self.segments = SegmentLog(config.segments_path)
                self.sinks.append(self.segments)
            if config.display:
                self.display = DisplaySink(
                    on_key=lambda key: on_quit() if key in (ord("q"), 27) else None
                )
        except BaseException:
            self.close()
            raise

    def write(self, item: WatchResult, record_fps: float) -> None:
        result = item.classification
        for sink in self.sinks:
            sink.write(result)
        if self.display is None and self._config.record_path is None:
            return
        image = draw_overlay(
            item.image,
            label=result.label,
            score=result.score,
            source=result.source_id,
            timestamp=result.captured_at,
            fps=self._measure_fps(result.source_id),
            extra=() if result.position_s is None else (f"t={result.position_s:.2f}s",),
        )
        if self._config.record_path is not None:
            recorder = self._recorders.get(result.source_id)
            if recorder is None:
                path = self._record_paths[result.source_id]
                recorder = self._recorders[result.source_id] = VideoRecorder(path, fps=record_fps)
            recorder.write(result, image)
        if self.display is not None:
            self.display.write(result, image)

    def recorded(self) -> dict[str, tuple[Path, int]]:
        return {
            source: (rec.output_path(source), rec.frames_written.get(source, 0))
            for source, rec in self._recorders.items()
        }

    def _measure_fps(self, source: str) -> float | None:
        now = time.monotonic()
        last, fps = self._fps.get(source, (None, 0.0))
        if last is not None and now > last:
            fps = 1.0 / (now - last) if fps == 0 else 0.9 * fps + 0.1 / (now - last)
        self._fps[source] = (now, fps)
        return fps or None

    def source_done(self, source_id: str) -> None:
        if self.segments is not None:
            self.segments.flush_source(source_id)

    def close(self) -> None:
        for closable in [*self.sinks, *self._recorders.values(), self.display]:
            if closable is None:
                continue
            try:
                closable.close()
            except Exception:
                logger.exception("error closing an output")


# -- the watcher ------------------------------------------------------------------------------


class Watcher:
    """Classifies several sources at once, each on its own stream of one server connection.

    Args:
        config: Sources, server, policies and outputs.
        on_result: Called with every answered frame, from the thread running :meth:`run`.
        on_event: Called with every state change of a source or of the server connection
            (from capture or worker threads; keep it quick).
        sinks: More sinks to write every :class:`Classification` to.

    Example:
        >>> watcher = Watcher(WatchConfig(("clip.mp4",), "127.0.0.1:1234", segments_path=Path("s.csv")))
        >>> report = watcher.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        config: WatchConfig,
        *,
        on_result: Callable[[WatchResult], None] | None = None,
        on_event: Callable[[SourceEvent], None] | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.config = config
        self._on_result = on_result
        self._on_event = on_event
        self._extra_sinks = tuple(sinks)
        self._stop = threading.Event()
        self._results: queue.Queue[tuple[str, object]] = queue.Queue()
        self._connection = _Connection(config, self._stop, on_event)
        self._runners: list[_SourceRunner] = []
        self._outputs: _Outputs | None = None
        self._recorded: dict[str, tuple[Path, int]] = {}

    def stop(self) -> None:
        """Ask the run to end: stop reading, wait briefly for answers in flight. Signal-safe."""
        self._stop.set()

    @property
    def recorded(self) -> dict[str, tuple[Path, int]]:
        """After :meth:`run`: per source, the recording's path and its frame count."""
        return dict(self._recorded)

    def run(self) -> WatchReport:
        """Connect, watch every source until they end or :meth:`stop`, then close outputs.

        Raises:
            DisplayUnavailableError: ``display`` was asked for without a screen.
            ServerUnavailableError: The server did not answer within ``connect_timeout_s``.
            SourceError: A spec names no known kind of source.
            SinkError: An output file cannot be opened.
        """
        started = time.monotonic()
        if self.config.display:
            check_display()  # before connecting or opening anything
        ids = source_ids(self.config.sources)
        self._connection.connect()
        try:
            self._outputs = _Outputs(self.config, self._extra_sinks, self.stop)
            for spec, source_id in zip(self.config.sources, ids, strict=True):
                runner = _SourceRunner(
                    spec,
                    source_id,
                    self.config,
                    self._connection,
                    self._results,
                    self._stop,
                    self._on_event,
                )
                self._runners.append(runner)
                runner.start()
            self._dispatch(started)
        finally:
            self._stop.set()
            for runner in self._runners:
                runner.thread.join(timeout=self.config.drain_timeout_s + 15.0)
                runner.capture.stop()
            self._drain()
            self._connection.close()
            if self._outputs is not None:
                self._outputs.close()
                self._recorded = self._outputs.recorded()
        return WatchReport(tuple(r.summary() for r in self._runners), time.monotonic() - started)

    def _dispatch(self, started: float) -> None:
        deadline = None if self.config.duration_s is None else started + self.config.duration_s
        running = len(self._runners)
        while running:
            if deadline is not None and time.monotonic() >= deadline and not self._stop.is_set():
                logger.info("duration of %gs reached: stopping", self.config.duration_s)
                self.stop()
            try:
                kind, payload = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if kind == _SOURCE_DONE:
                running -= 1
            self._handle(kind, payload)

    def _drain(self) -> None:
        while True:
            try:
                kind, payload = self._results.get_nowait()
            except queue.Empty:
                return
            self._handle(kind, payload)

    def _handle(self, kind: str, payload: object) -> None:
        assert self._outputs is not None
        if kind == _SOURCE_DONE:
            assert isinstance(payload, _SourceRunner)
            self._outputs.source_done(payload.source_id)
            return
        assert isinstance(payload, WatchResult)
        runner = next(r for r in self._runners if r.source_id == payload.classification.source_id)
        self._outputs.write(payload, runner.record_fps())
        if self._on_result is not None:
            self._on_result(payload)


__all__ = [
    "ServerUnavailableError",
    "SourceOutcome",
    "SourceSummary",
    "WatchConfig",
    "WatchError",
    "WatchReport",
    "WatchResult",
    "Watcher",
    "record_paths",
    "source_ids",
]
