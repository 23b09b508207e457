"""The watch application's runner: :class:`Watcher` classifies several sources at once.

Lifecycle of :meth:`Watcher.run`: check the display (before anything is opened), connect to
the server (waiting up to ``connect_timeout_s`` for one that is starting), open the configured
outputs, start one :class:`~camera_tools.watch.source_loop.SourceLoop` per source, then deliver
what the loops publish to the observers until every source has finished, ``duration_s`` has
passed or :meth:`Watcher.stop` is called. On the way out: stop the loops (they wait up to
``drain_timeout_s`` for answers in flight), deliver what is left, close the connection and the
observers.

Threads: each loop publishes into one queue from its own threads; the thread that calls
:meth:`Watcher.run` is the only one that calls observers, so sinks and OpenCV windows are
touched from one thread.

Example:
    >>> config = WatchConfig(sources=("clip.mp4", "rtsp://cam/live"), server="127.0.0.1:1234")
    >>> report = Watcher(config, observers=[ConsoleLines(sys.stdout)]).run()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from camera_tools.sinks import Sink, check_display
from camera_tools.states import SourceEvent
from camera_tools.watch.connection import ServerConnection, server_id
from camera_tools.watch.observers import ClassifiedFrame, ObserverGroup, WatchObserver
from camera_tools.watch.outputs import ConfiguredOutputs
from camera_tools.watch.source_loop import Publication, SourceLoop
from camera_tools.watch.source_summary import SourceSummary, WatchReport
from camera_tools.watch.watch_config import WatchConfig, source_ids

logger = logging.getLogger(__name__)

_POLL_S = 0.2  # how often the dispatcher rechecks the duration and the counters' schedule
_JOIN_MARGIN_S = 15.0  # past the drain timeout, how long a source loop may take to wind down


class Watcher:
    """Classifies several sources at once, each on its own stream of one server connection.

    Args:
        config: Sources, server, policies and outputs.
        observers: Receive every classified frame, state change and counters, after the
            configured outputs (see :mod:`camera_tools.watch.observers`).
        sinks: More sinks to write every :class:`~camera_tools.sinks.Classification` to.

    Example:
        >>> watcher = Watcher(WatchConfig(("clip.mp4",), "127.0.0.1:1234", segments_path=Path("s.csv")))
        >>> report = watcher.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        config: WatchConfig,
        *,
        observers: Sequence[WatchObserver] = (),
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.config = config
        self._extra_observers = tuple(observers)
        self._extra_sinks = tuple(sinks)
        self._stop = threading.Event()
        self._published: queue.Queue[Publication] = queue.Queue()
        self._connection = ServerConnection(config, self._stop, self._published.put)
        self._observers = ObserverGroup(self._extra_observers)
        self._loops: list[SourceLoop] = []
        self._recorded: dict[str, tuple[Path, int]] = {}

    @property
    def server_id(self) -> str:
        """The ``source_id`` of the server connection's state changes."""
        return server_id(self.config.server)

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
        outputs: ConfiguredOutputs | None = None
        try:
            if self.config.display:
                check_display()  # before connecting or opening anything
            self._connection.connect()
            outputs = ConfiguredOutputs(self.config, extra=self._extra_sinks, on_quit=self.stop)
            self._observers = ObserverGroup([outputs, *self._extra_observers])
            ids = source_ids(self.config.sources)
            for spec, source_id in zip(self.config.sources, ids, strict=True):
                loop = SourceLoop(
                    spec,
                    source_id,
                    self.config,
                    self._connection,
                    self._published.put,
                    self._stop,
                    keep_images=self._observers.wants_images,
                )
                loop.start()  # a spec that names no source raises here: no thread to join
                self._loops.append(loop)
            self._dispatch(started)
        finally:
            self._stop.set()
            for loop in self._loops:
                loop.thread.join(timeout=self.config.drain_timeout_s + _JOIN_MARGIN_S)
                loop.capture.stop()
            try:
                self._deliver_remaining()
            finally:  # an observer that fails on the last frames must not leave files open
                self._connection.close()
                self._observers.close()
                if outputs is not None:
                    self._recorded = outputs.recorded()
        return WatchReport(
            tuple(loop.summary() for loop in self._loops), time.monotonic() - started
        )

    def _dispatch(self, started: float) -> None:
        """Deliver publications until every loop has finished; stop at ``duration_s``."""
        deadline = None if self.config.duration_s is None else started + self.config.duration_s
        interval = self.config.counters_interval_s
        next_counters = time.monotonic() + interval
        running = {loop.source_id for loop in self._loops}
        while running:
            now = time.monotonic()
            if deadline is not None and now >= deadline and not self._stop.is_set():
                logger.info("duration of %gs reached: stopping", self.config.duration_s)
                self.stop()
            if now >= next_counters:
                next_counters = now + interval
                for loop in self._loops:
                    if loop.source_id in running:
                        self._observers.on_counters(loop.tally.snapshot(loop.capture.stats()))
            try:
                item = self._published.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, SourceSummary):
                running.discard(item.source)
            self._deliver(item)

    def _deliver_remaining(self) -> None:
        while True:
            try:
                item = self._published.get_nowait()
            except queue.Empty:
                return
            self._deliver(item)

    def _deliver(self, item: Publication) -> None:
        if isinstance(item, ClassifiedFrame):
            self._observers.on_frame(item)
        elif isinstance(item, SourceEvent):
            self._observers.on_state(item)
        else:
            self._observers.on_source_finished(item)
