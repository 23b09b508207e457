"""The live outputs (web view, RTSP re-stream, alerts) as a watch observer: :class:`LiveObserver`.

:class:`~camera_tools.live.LiveOutputs` is part of the camera library and knows nothing of the
watch application; this adapter turns the watcher's observer calls into its calls. Every call
returns at once: the web view and the re-stream only drop the frame into a latest-frame slot
that their own threads encode, and alert outputs send from their own threads, so a slow
browser, player or webhook never slows classification.
"""

from __future__ import annotations

from camera_tools.live import LiveOutputs
from camera_tools.states import SourceEvent
from camera_tools.watch.observers import ClassifiedFrame, WatchObserver
from camera_tools.watch.source_summary import SourceCounters, SourceSummary
from camera_tools.web import DOWN_STATES, SourceStats


def stats_from_counters(counters: SourceCounters) -> SourceStats:
    """The numbers a web tile shows, from a source's counters."""
    return SourceStats(
        fps=round(counters.mean_fps, 1),
        latency_ms=counters.latency_p50_ms,
        classified=counters.classified,
        dropped=counters.dropped,
        reconnects=counters.source_reconnects + counters.server_reconnects,
    )


class LiveObserver(WatchObserver):
    """Feeds a :class:`~camera_tools.live.LiveOutputs` from the watcher.

    Args:
        live: The outputs the flags asked for; closed with this observer.
        server_id: The ``source_id`` of the server connection's state changes
            (:attr:`Watcher.server_id <camera_tools.watch.Watcher.server_id>`): not a source, so
            it gets no tile, and the sources' own states already say when they stop.
    """

    def __init__(self, live: LiveOutputs, *, server_id: str) -> None:
        self.live = live
        self._server_id = server_id
        # Frames are kept in flight only for outputs that show video; alerts need labels alone.
        self.wants_images = live.wants_images
        self._down: set[str] = set()

    def on_frame(self, frame: ClassifiedFrame) -> None:
        result = frame.classification
        # Answers to frames sent before a source went down arrive after its down state; they
        # must not show it (or clear its down alert) as up. The capture announces CONNECTED
        # before any frame read after a reconnect.
        if result.source_id in self._down:
            return
        self.live.on_frame(result.source_id, frame.image, result)

    def on_state(self, event: SourceEvent) -> None:
        if event.source_id == self._server_id:
            return
        if event.state.value in DOWN_STATES:
            self._down.add(event.source_id)
        else:
            self._down.discard(event.source_id)
        self.live.on_state(event.source_id, event.state, event.reason)

    def on_counters(self, counters: SourceCounters) -> None:
        self.live.on_stats(counters.source, stats_from_counters(counters))

    def on_source_finished(self, summary: SourceSummary) -> None:
        self.live.on_stats(summary.source, stats_from_counters(summary))

    def close(self) -> None:
        self.live.close()
