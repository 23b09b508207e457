"""The live state behind the web view, fed by the watch runner.

:class:`WebHub` is the observer: the runner calls :meth:`~WebHub.publish_frame`,
:meth:`~WebHub.publish_state`, :meth:`~WebHub.publish_stats` and :meth:`~WebHub.publish_alert`
from its own threads; none of them blocks on a browser. Frames are only accepted for encoding
while someone views that source and at most ``max_fps`` times a second; one encoder thread
resizes, annotates and JPEG-encodes them and drops the result into each viewer's latest-frame
slot, so a stalled viewer only ever holds one stale frame.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from camera_tools.alerts import AlertEvent
from camera_tools.overlay import OverlayPainter, label_color_hex, short_source_name
from camera_tools.redact import redact_url
from camera_tools.sinks.base import Classification, unique_slug

logger = logging.getLogger(__name__)

# States in which a source is not delivering frames: the page says "reconnecting…" (or
# "offline…" for a page with nothing to play now).
DOWN_STATES = frozenset({"connecting", "reconnecting", "stalled", "offline", "failed"})
_SSE_QUEUE = 256  # events a slow page may fall behind before the oldest are dropped
_UPDATE_INTERVAL_S = 0.5  # score-only changes reach the page at most this often per source
_CHANGE_INTERVAL_S = 0.1  # label changes too, so a flickering label cannot flood the pages
_TIMELINE_RESOLUTION = 1000  # timeline stretches shorter than its span / this are merged
_MAX_SEGMENTS = 2000  # per source timeline: a hard bound on every update's size


@dataclass(frozen=True)
class SourceStats:
    """Numbers a tile shows; the runner publishes them every second or so.

    Attributes:
        fps: Classified frames per second (recent).
        latency_ms: Send-to-answer latency (recent median), ``None`` before the first answer.
        classified: Frames classified so far.
        dropped: Live frames never classified.
        reconnects: Source reconnects so far.
    """

    fps: float = 0.0
    latency_ms: float | None = None
    classified: int = 0
    dropped: int = 0
    reconnects: int = 0


class FrameSlot:
    """The newest JPEG for one viewer: a new frame replaces one not yet sent."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self.closed = False

    def put(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_newer(self, seen: int, timeout_s: float) -> tuple[int, bytes | None]:
        """Block until a frame newer than sequence ``seen`` arrives (or timeout/close)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seen or self.closed, timeout_s)
            if self._seq > seen and self._jpeg is not None:
                return self._seq, self._jpeg
            return seen, None


class EventQueue:
    """Server-Sent Events waiting for one page; the oldest are dropped past a bound."""

    def __init__(self, max_events: int = _SSE_QUEUE) -> None:
        self._cond = threading.Condition()
        self._events: collections.deque[str] = collections.deque(maxlen=max_events)
        self.closed = False

    def put(self, message: str) -> None:
        with self._cond:
            self._events.append(message)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def take(self, timeout_s: float) -> list[str]:
        """All waiting messages, after waiting up to ``timeout_s`` for one."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._events) or self.closed, timeout_s)
            out = list(self._events)
            self._events.clear()
            return out


def sse_message(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Source:
    """What the hub knows about one source (guarded by the hub's lock)."""

    def __init__(self, source_id: str, slug: str) -> None:
        self.id = source_id
        self.slug = slug
        self.name = short_source_name(source_id)
        self.label: str | None = None
        self.score: float | None = None
        self.model_version = ""
        self.state = "connecting"
        self.detail = ""
        self.stats = SourceStats()
        self.alerts: dict[str, AlertEvent] = {}
        self.timeline: collections.deque[list[Any]] = collections.deque(maxlen=_MAX_SEGMENTS)
        self.viewers: list[FrameSlot] = []
        self.last_accepted = float("-inf")
        self.last_update_sent = float("-inf")
        self.pending: tuple[np.ndarray, Classification] | None = None
        self.frames_encoded = 0

    def snapshot(self, now: float, timeline_seconds: float) -> dict[str, Any]:
        labels = {segment[0] for segment in self.timeline}
        if self.label is not None:
            labels.add(self.label)
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "label": self.label,
            "score": self.score,
            "model_version": self.model_version,
            "state": self.state,
            "detail": self.detail,
            "down": self.state in DOWN_STATES,
            "stats": asdict(self.stats),
            "alerts": sorted(self.alerts),
            "timeline": [list(segment) for segment in self.timeline],
            "colors": {label: label_color_hex(label) for label in sorted(labels)},
            "viewers": len(self.viewers),
            "now": now,
            "timeline_seconds": timeline_seconds,
        }


class WebHub:
    """Live state of every source for the web view; thread-safe.

    Args:
        sources: Source ids to show from the start (others appear when first published).
        max_fps: Web frames encoded per source and second, at most.
        max_total_fps: Web frames encoded per second over all watched sources: with many
            sources open each gets a share, so the web view's cost stays bounded (3.5-9 ms
            of CPU per 640 px frame depending on the CPU: 40 fps cost watch 14% of its
            classification throughput on a slow 2-core machine, 24 fps keeps it under 10%).
        max_width: Web frames are scaled down to this width.
        jpeg_quality: JPEG quality, 0-100.
        timeline_seconds: How far back the page's timeline reaches.
        annotate: Draw the overlay on web frames (pass raw frames); ``False`` when the
            runner publishes frames it has already annotated.
        clock: Wall clock, injectable for tests.
    """

    def __init__(
        self,
        sources: Iterable[str] = (),
        *,
        max_fps: float = 10.0,
        max_total_fps: float = 24.0,
        max_width: int = 640,
        jpeg_quality: int = 75,
        timeline_seconds: float = 600.0,
        annotate: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_fps <= 0 or max_total_fps <= 0 or max_width < 16 or not 0 <= jpeg_quality <= 100:
            raise ValueError(
                "max_fps and max_total_fps must be > 0, max_width >= 16 and jpeg_quality in [0, 100]"
            )
        self.max_fps = max_fps
        self.max_total_fps = max_total_fps
        self._watched = 0  # sources with at least one viewer
        self.max_width = max_width
        self.jpeg_quality = jpeg_quality
        self.timeline_seconds = timeline_seconds
        self._clock = clock
        self._painter = OverlayPainter(clock=clock) if annotate else None
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._sources: dict[str, _Source] = {}
        self._by_slug: dict[str, _Source] = {}
        self._pages: list[EventQueue] = []
        self._closed = False
        for source in sources:
            self.add_source(source)
        self._encoder = threading.Thread(target=self._encode_loop, name="web-encoder", daemon=True)
        self._encoder.start()

    # -- the observer interface (called by the watch runner) --------------------------------

    def add_source(self, source: str) -> str:
        """Show a tile for ``source`` (idempotent); return its URL slug."""
        with self._lock:
            return self._source(source).slug

    def publish_frame(self, source: str, image: np.ndarray, classification: Classification) -> None:
        """A classified frame: updates label, score and timeline; encodes only if watched."""
        now = self._clock()
        with self._lock:
            entry = self._source(source)
            changed = (
                classification.label != entry.label
                or classification.model_version != entry.model_version
            )
            entry.label, entry.score = classification.label, classification.score
            entry.model_version = classification.model_version
            if entry.state in DOWN_STATES:
                entry.state, entry.detail, changed = "connected", "", True
            self._extend_timeline(entry, classification.label, now)
            if self._painter is not None:
                self._painter.observe(entry.id, classification.label, now)
            if entry.viewers and now - entry.last_accepted >= self._frame_interval():
                entry.last_accepted = now
                entry.pending = (image, classification)
                self._work.notify()
            since_sent = now - entry.last_update_sent
            if since_sent >= _UPDATE_INTERVAL_S or (changed and since_sent >= _CHANGE_INTERVAL_S):
                self._send_update(entry, now)

    def publish_state(self, source: str, state: str, detail: str = "") -> None:
        """The source's capture state changed (a ``SourceState`` value: ``reconnecting``...)."""
        now = self._clock()
        with self._lock:
            entry = self._source(source)
            entry.state, entry.detail = state, redact_url(detail)
            self._send_update(entry, now)

    def publish_stats(self, source: str, stats: SourceStats) -> None:
        """The source's numbers (fps, latency, drops, reconnects); every second or so."""
        now = self._clock()
        with self._lock:
            entry = self._source(source)
            entry.stats = stats
            self._send_update(entry, now)

    def publish_alert(self, event: AlertEvent) -> None:
        """An alert was raised or cleared: the tile is highlighted while any is active."""
        now = self._clock()
        with self._lock:
            entry = self._source(event.source)
            if event.active:
                entry.alerts[event.rule] = event
            else:
                entry.alerts.pop(event.rule, None)
            self._broadcast(sse_message("alert", event.to_dict()))
            self._send_update(entry, now)

    # -- what the HTTP server uses ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            return {
                "now": now,
                "sources": [s.snapshot(now, self.timeline_seconds) for s in self._sources.values()],
            }

    def slugs(self) -> list[str]:
        with self._lock:
            return list(self._by_slug)

    def open_viewer(self, slug: str) -> FrameSlot | None:
        """Register an MJPEG viewer of source ``slug``; ``None`` for an unknown source."""
        with self._lock:
            entry = self._by_slug.get(slug)
            if entry is None or self._closed:
                return None
            slot = FrameSlot()
            if not entry.viewers:
                self._watched += 1
            entry.viewers.append(slot)
            entry.last_accepted = float("-inf")  # the new viewer gets the very next frame
            return slot

    def close_viewer(self, slug: str, slot: FrameSlot) -> None:
        with self._lock:
            entry = self._by_slug.get(slug)
            if entry is not None and slot in entry.viewers:
                entry.viewers.remove(slot)
                if not entry.viewers:
                    entry.pending = None
                    self._watched -= 1

    def open_page(self) -> EventQueue:
        """Register a Server-Sent Events listener; it starts with a snapshot."""
        queue = EventQueue()
        queue.put(sse_message("snapshot", self.snapshot()))
        with self._lock:
            if self._closed:
                queue.close()
            else:
                self._pages.append(queue)
        return queue

    def close_page(self, queue: EventQueue) -> None:
        with self._lock:
            if queue in self._pages:
                self._pages.remove(queue)

    def frames_encoded(self, source: str) -> int:
        with self._lock:
            entry = self._sources.get(source)
            return 0 if entry is None else entry.frames_encoded

    def close(self) -> None:
        """Wake and end every viewer and page, stop the encoder."""
        with self._lock:
            self._closed = True
            for entry in self._sources.values():
                for slot in entry.viewers:
                    slot.close()
            for page in self._pages:
                page.close()
            self._work.notify_all()
        self._encoder.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------

    def _source(self, source: str) -> _Source:
        entry = self._sources.get(source)
        if entry is None:
            slug = unique_slug(source, self._by_slug)
            entry = self._sources[source] = self._by_slug[slug] = _Source(source, slug)
        return entry

    def _frame_interval(self) -> float:
        fps = min(self.max_fps, self.max_total_fps / max(1, self._watched))
        return 1.0 / fps

    def _extend_timeline(self, entry: _Source, label: str, now: float) -> None:
        timeline = entry.timeline
        # A stretch too short to see on the page's timeline absorbs the next label: a
        # flickering source keeps its timeline (and every update carrying it) small.
        too_short = self.timeline_seconds / _TIMELINE_RESOLUTION
        if timeline and (timeline[-1][0] == label or now - timeline[-1][1] < too_short):
            timeline[-1][2] = now
        else:
            if timeline:
                timeline[-1][2] = now  # the previous stretch lasted until this frame
            timeline.append([label, now, now])
        while timeline and timeline[0][2] < now - self.timeline_seconds:
            timeline.popleft()

    def _send_update(self, entry: _Source, now: float) -> None:
        entry.last_update_sent = now
        self._broadcast(sse_message("source", entry.snapshot(now, self.timeline_seconds)))

    def _broadcast(self, message: str) -> None:
        for page in self._pages:
            page.put(message)

    def _encode_loop(self) -> None:
        while True:
            with self._work:
                self._work.wait_for(
                    lambda: self._closed or any(s.pending for s in self._sources.values())
                )
                if self._closed:
                    return
                work = []
                for entry in self._sources.values():
                    if entry.pending is not None:
                        work.append((entry, *entry.pending))
                        entry.pending = None
            for entry, image, classification in work:
                try:
                    jpeg = self._encode(entry, image, classification)
                except (cv2.error, ValueError):
                    logger.exception("cannot encode a web frame of %s", entry.id)
                    continue
                with self._lock:
                    entry.frames_encoded += 1
                    viewers = list(entry.viewers)
                for slot in viewers:
                    slot.put(jpeg)

    def _encode(self, entry: _Source, image: np.ndarray, classification: Classification) -> bytes:
        height, width = image.shape[:2]
        if width > self.max_width:
            size = (self.max_width, max(1, round(height * self.max_width / width)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if self._painter is not None:
            with self._lock:
                fps = entry.stats.fps or None
            image = self._painter.paint(
                image,
                source=entry.id,
                label=classification.label,
                score=classification.score,
                fps=fps,
                observe=False,
            )
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buffer.tobytes()
