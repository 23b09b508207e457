"""How the watcher publishes what happens, and how outputs subscribe: :class:`WatchObserver`.

Every output of the watch application is an observer handed to
:class:`~camera_tools.watch.Watcher`: the built-in ones (console lines, CSV, segments, recording,
display; see :mod:`camera_tools.watch.outputs`) and the next ones (a web view, an alert engine,
Prometheus metrics). The per-source loops never call an output: they publish into one queue and
the watcher delivers, so a new output is a new observer, not an edit of the loop.

The interface (subclass :class:`WatchObserver` to inherit no-op defaults, or implement it
structurally)::

    class WatchObserver(Protocol):
        wants_images: bool = False
        def on_frame(self, frame: ClassifiedFrame) -> None: ...
        def on_state(self, event: SourceEvent) -> None: ...
        def on_counters(self, counters: SourceCounters) -> None: ...
        def on_source_finished(self, summary: SourceSummary) -> None: ...
        def close(self) -> None: ...

What each call carries:

* ``on_frame``: every frame the server answered with a label, in order per source
  (:class:`ClassifiedFrame`: label, score, frame index, capture time and file position, latency,
  the server's full :class:`~client.Prediction`). ``frame.image`` is the full-resolution BGR frame
  without overlay when *any* observer has ``wants_images = True``, else ``None`` (no frame is kept
  for nobody). The array is shared by every observer: copy it before drawing on it.
* ``on_state``: every state change, with its reason, of each source's capture
  (:class:`~camera_tools.capture.SourceState`: CONNECTING, CONNECTED = live, STALLED,
  RECONNECTING or OFFLINE (a page with nothing to play now) with attempt and
  delay, ENDED, FAILED) and of the shared server connection, whose
  ``event.source_id`` is :attr:`Watcher.server_id <camera_tools.watch.Watcher.server_id>`
  (``"server HOST:PORT"``). Credentials are already redacted.
* ``on_counters``: each running source's :class:`SourceCounters` (frames read, classified,
  errors, dropped, fps, latency p50/p95, reconnects) every ``WatchConfig.counters_interval_s``.
* ``on_source_finished``: once per source, when its loop ends: the final counters with the
  outcome (ENDED, STOPPED, FAILED) and the reason of a failure.
* ``close``: once, after the last call of the run, also when the run fails.

Threading: every call comes from the one thread that runs
:meth:`~camera_tools.watch.Watcher.run`, in the order things happened, so observers need no lock
and OpenCV windows stay on one thread. Keep the calls quick (they delay every other observer);
an observer doing slow work (network, disk) hands it to a thread of its own.

Errors: an exception raised by an observer ends the run, as a sink that cannot write does; an
observer that must never stop the watcher (a web view, say) catches its own errors.

Example:
    >>> class RedAlert(WatchObserver):
    ...     def on_frame(self, frame: ClassifiedFrame) -> None:
    ...         if frame.classification.label == "red":
    ...             logger.warning("red on %s", frame.classification.source_id)
    >>> watcher = Watcher(config, observers=[RedAlert()])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from camera_tools.sinks import Classification
from camera_tools.states import SourceEvent
from camera_tools.watch.source_summary import SourceCounters, SourceSummary
from client import Prediction

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ClassifiedFrame:
    """One frame answered with a label, as observers receive it.

    Attributes:
        classification: Window-averaged label and score, frame label, times.
        prediction: The server's full answer.
        image: The full-resolution BGR frame (without overlay) when an observer wants images,
            else ``None``.
        latency_s: Send to answer.
        live: Whether the source is live (times are wall clock) or a file (positions).
        playback_fps: Rate at which this source's classified frames play back as video: the
            source's nominal rate / (skip + 1), capped by ``max_fps``. What a recording uses.
    """

    classification: Classification
    prediction: Prediction
    image: np.ndarray | None
    latency_s: float
    live: bool
    playback_fps: float


class WatchObserver(Protocol):
    """Receives what the watcher publishes; see the module docstring for the contract.

    Every method has a no-op default, so a subclass overrides only what it needs.
    """

    wants_images: bool = False

    def on_frame(self, frame: ClassifiedFrame) -> None:
        """A frame was answered with a label."""
        return None

    def on_state(self, event: SourceEvent) -> None:
        """A source or the server connection changed state."""
        return None

    def on_counters(self, counters: SourceCounters) -> None:
        """A running source's counters, every ``counters_interval_s``."""
        return None

    def on_source_finished(self, summary: SourceSummary) -> None:
        """A source's loop ended; ``summary`` says how."""
        return None

    def close(self) -> None:
        """The run is over: flush and release everything."""
        return None


class ObserverGroup(WatchObserver):
    """Several observers as one, called in the order given."""

    def __init__(self, observers: Sequence[WatchObserver]) -> None:
        self._observers = tuple(observers)
        self.wants_images = any(o.wants_images for o in self._observers)

    def on_frame(self, frame: ClassifiedFrame) -> None:
        for observer in self._observers:
            observer.on_frame(frame)

    def on_state(self, event: SourceEvent) -> None:
        for observer in self._observers:
            observer.on_state(event)

    def on_counters(self, counters: SourceCounters) -> None:
        for observer in self._observers:
            observer.on_counters(counters)

    def on_source_finished(self, summary: SourceSummary) -> None:
        for observer in self._observers:
            observer.on_source_finished(summary)

    def close(self) -> None:
        """Close every observer, even when one fails (logged: the run is over either way)."""
        for observer in self._observers:
            try:
                observer.close()
            except Exception:
                logger.exception("error closing an output")
