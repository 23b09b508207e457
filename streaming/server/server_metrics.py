"""Prometheus metrics of the server (``serve --metrics-address``), on a registry of their own.

Every label takes values from a closed enum, never a stream or client id, so the number of
series stays fixed however many streams come and go. Label children are bound once here, so a
call on the hot path is one dict lookup and one locked add.

Example:
    >>> metrics = ServerMetrics()
    >>> metrics.frame_received(Delivery.LOSSLESS)
    >>> metrics.value("stream_classify_frames_received_total", delivery="lossless")
    1.0
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from client.metrics_http import MetricsEndpoint, serve_registry
from streaming.server.server_errors import ConfigError
from streaming.server.server_values import Delivery
from streaming.server.temporal_cue import CueEffect

logger = logging.getLogger(__name__)

PREFIX = "stream_classify"

# Seconds: 0.5 ms to 10 s, dense where a batched model call and its queue wait live (ms to 100s of ms).
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Frames per model call: powers of two up to twice the largest useful --max-batch.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)


class DropReason(enum.Enum):
    """Why the server let a frame go unanswered on purpose (LIVE streams only)."""

    LIVE_REPLACED = "live_replaced"  # a newer frame of the same LIVE stream took its place
    BUDGET = "budget"  # the server-wide byte budget (--memory-budget) was full


class FailReason(enum.Enum):
    """Why a frame was answered with an error instead of a prediction."""

    BAD_FRAME = "bad_frame"  # undecodable, wrong size or shape: INVALID_ARGUMENT in-band
    MODEL_ERROR = "model_error"  # the model call raised: INTERNAL in-band


class RefusedReason(enum.Enum):
    """Why a model version was not swapped in (the served one stays)."""

    LOAD = "load"  # no model file, or it (or its labels) failed to load
    INPUT = "input"  # it takes images the server does not feed (another channel count)
    WARM_UP = "warm_up"  # its first call at the serving batch sizes failed


class LegacyOutcome(enum.Enum):
    """How one call of the old unary ``sc_service.inference`` API ended."""

    OK = "ok"
    BAD_REQUEST = "bad_request"
    REFUSED = "refused"  # draining or too many streams
    ERROR = "error"


def _label(delivery: Delivery) -> str:
    return delivery.name.lower()


# Multiprocess mode (``serve --processes N``): how often a process writes its load gauges,
# which a scrape of the parent cannot ask it for.
REFRESH_S = 1.0


class InfoGauge:
    """An info metric that also works in prometheus-client's multiprocess mode (``Info`` does not).

    A gauge named like ``Info``'s sample, 1 for the current label values: the series a scrape
    shows is the same. A value replaced is set to 0 rather than removed, because a process
    cannot remove what it wrote to its multiprocess file: with ``livemax`` the aggregate is 1
    for what any live process serves now and 0 for what they served earlier in the run.
    """

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._gauge = Gauge(
            f"{name}_info",
            documentation,
            list(labels),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._current: dict[str, str] | None = None
        self._lock = threading.Lock()

    def info(self, values: dict[str, str]) -> None:
        with self._lock:
            if self._current is not None and self._current != values:
                self._gauge.labels(**self._current).set(0)
            self._gauge.labels(**values).set(1)
            self._current = dict(values)


class ServerMetrics:
    """The server's metrics (names in docs/metrics.md), on a private registry.

    The registry is private so two servers in one process (tests, benchmarks) never share or
    clash over a metric. All methods are thread-safe: the batcher's threads and the event loop
    may both call them.

    In prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before it was
    imported: the children of ``serve --processes N``) each process writes its values to files
    the parent's endpoint sums: counters and histograms add up, gauges are summed over the live
    processes (the busy ratio is the busiest one's), info metrics are gauges (see
    :class:`InfoGauge`), and ``stream_classify_process_streams_open{pid}`` shows how the streams
    spread over the processes.
    """

    def __init__(self, multiprocess: bool | None = None) -> None:
        self.multiprocess = (
            bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
            if multiprocess is None
            else multiprocess
        )
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        received = Counter(
            f"{PREFIX}_frames_received",
            "Frames received from clients.",
            ["delivery"],
            registry=r,
        )
        answered = Counter(
            f"{PREFIX}_frames_answered",
            "Frames answered (with a prediction or an in-band error).",
            ["delivery"],
            registry=r,
        )
        dropped = Counter(
            f"{PREFIX}_frames_dropped",
            "Frames of LIVE streams dropped without an answer.",
            ["reason"],
            registry=r,
        )
        failed = Counter(
            f"{PREFIX}_frames_failed",
            "Frames answered with an in-band error.",
            ["reason"],
            registry=r,
        )
        cue_changes = Counter(
            f"{PREFIX}_temporal_cue_changes",
            "Streamed frames whose best label the temporal cue changed: veto (the frame repeated "
            "or moved the stream's previous one), boost (it changed like snow).",
            ["effect"],
            registry=r,
        )
        self._cue_changes = {effect: cue_changes.labels(effect.value) for effect in CueEffect}
        self._decodes_starved = Counter(
            f"{PREFIX}_decodes_starved",
            "Frames an idle-priority decoder had not decoded within a second, decoded at normal "
            "priority instead (other programs keep the cores busy: --decode-priority normal).",
            registry=r,
        )
        self._received = {d: received.labels(_label(d)) for d in Delivery}
        self._answered = {d: answered.labels(_label(d)) for d in Delivery}
        self._dropped = {reason: dropped.labels(reason.value) for reason in DropReason}
        self._failed = {reason: failed.labels(reason.value) for reason in FailReason}
        self._streams_open = Gauge(
            f"{PREFIX}_streams_open",
            "Classify streams open now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Per process, only where there are several: shows whether SO_REUSEPORT spread them.
        self._process_streams_open = (
            Gauge(
                f"{PREFIX}_process_streams_open",
                "Classify streams open now in each server process (serve --processes).",
                registry=r,
                multiprocess_mode="liveall",
            )
            if self.multiprocess
            else None
        )
        self._streams_opened = Counter(
            f"{PREFIX}_streams_opened",
            "Classify streams opened since the server started.",
            registry=r,
        )
        self._streams_ended_idle = Counter(
            f"{PREFIX}_streams_ended_idle",
            "Streams ended because their read kept memory reserved for a message they did not "
            "send while other streams waited for it (--room-timeout).",
            registry=r,
        )
        self._queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a frame waited between arrival and the start of its model call.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._model_call = Histogram(
            f"{PREFIX}_model_call_seconds",
            "Duration of one batched model call.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._frame_latency = Histogram(
            f"{PREFIX}_frame_latency_seconds",
            "Server-side latency of a frame, from received to answered.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Frames per model call.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self._busy = Gauge(
            f"{PREFIX}_model_busy_ratio",
            "Share of the last seconds the model spent in calls (0 to 1).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._held_frames = Gauge(
            f"{PREFIX}_held_frames",
            "Frames held by the server (queued, in a batch or unsent).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._frame_budget = Gauge(
            f"{PREFIX}_frame_budget",
            "Frames all streams together may hold (--frame-budget).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._held_bytes = Gauge(
            f"{PREFIX}_held_bytes",
            "Bytes of frame data held by the server.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._memory_budget = Gauge(
            f"{PREFIX}_memory_budget_bytes",
            "Bytes of frame data the server may hold.",
            registry=r,
            multiprocess_mode="livesum",
        )
        legacy = Counter(
            f"{PREFIX}_legacy_calls",
            "Calls of the old unary sc_service.inference API, by outcome.",
            ["outcome"],
            registry=r,
        )
        self._legacy = {outcome: legacy.labels(outcome.value) for outcome in LegacyOutcome}
        self._model_version: Info | InfoGauge = self._info(
            f"{PREFIX}_model_version", "The model version served now.", ("version",)
        )
        self._swaps = Counter(
            f"{PREFIX}_model_swaps",
            "Model versions swapped in under running streams.",
            registry=r,
        )
        refused = Counter(
            f"{PREFIX}_model_versions_refused",
            "Model versions refused (the served one stayed), by reason.",
            ["reason"],
            registry=r,
        )
        self._refused = {reason: refused.labels(reason.value) for reason in RefusedReason}
        self._model_load = Histogram(
            f"{PREFIX}_model_load_seconds",
            "Time to load a model version (and warm it up, for a swap).",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
            registry=r,
        )
        self._build: Info | InfoGauge = self._info(
            f"{PREFIX}_build",
            "Version, model and device of this server.",
            ("version", "model", "device", "labels"),
        )
        self._http: MetricsEndpoint | None = None
        self._refresher: threading.Thread | None = None
        self._stop_refresh = threading.Event()

    def _info(self, name: str, documentation: str, labels: Sequence[str]) -> Info | InfoGauge:
        if self.multiprocess:
            return InfoGauge(name, documentation, labels, self.registry)
        return Info(name, documentation, registry=self.registry)

    # Frames -------------------------------------------------------------------------------

    def frame_received(self, delivery: Delivery) -> None:
        self._received[delivery].inc()

    def frames_answered(self, delivery: Delivery, n: int = 1) -> None:
        self._answered[delivery].inc(n)

    def frame_dropped(self, reason: DropReason, n: int = 1) -> None:
        self._dropped[reason].inc(n)

    def frame_failed(self, reason: FailReason) -> None:
        self._failed[reason].inc()

    def cue_changes(self, effect: CueEffect, n: int) -> None:
        self._cue_changes[effect].inc(n)

    def decodes_starved(self, n: int) -> None:
        self._decodes_starved.inc(n)

    # Streams ------------------------------------------------------------------------------

    def stream_opened(self) -> None:
        self._streams_opened.inc()
        self._streams_open.inc()
        if self._process_streams_open is not None:
            self._process_streams_open.inc()

    def stream_ended_idle(self) -> None:
        self._streams_ended_idle.inc()

    def stream_closed(self) -> None:
        self._streams_open.dec()
        if self._process_streams_open is not None:
            self._process_streams_open.dec()

    # Batches and load ----------------------------------------------------------------------

    def observe_batch(
        self,
        size: int,
        queue_wait_s: Sequence[float],
        model_call_s: float,
        latency_s: Sequence[float] = (),
    ) -> None:
        """One model call: its size and duration, each frame's queue wait and (when answered) latency."""
        self._batch_size.observe(size)
        self._model_call.observe(model_call_s)
        for wait in queue_wait_s:
            self._queue_wait.observe(wait)
        for latency in latency_s:
            self._frame_latency.observe(latency)

    def watch(
        self,
        *,
        busy: Callable[[], float],
        held_frames: Callable[[], float],
        held_bytes: Callable[[], float],
        frame_budget: int,
        memory_budget: int,
    ) -> None:
        """Read the load gauges from the server when scraped (always current, nothing per frame).

        In multiprocess mode the scrape happens in another process, so a thread writes them
        every ``REFRESH_S`` instead.
        """
        self._frame_budget.set(frame_budget)
        self._memory_budget.set(memory_budget)
        readers: tuple[tuple[Gauge, Callable[[], float]], ...] = (
            (self._busy, lambda: min(1.0, max(0.0, busy()))),
            (self._held_frames, held_frames),
            (self._held_bytes, held_bytes),
        )
        if not self.multiprocess:
            for gauge, read in readers:
                gauge.set_function(read)
            return
        if self._refresher is not None:
            raise RuntimeError("the load gauges are already watched")

        def refresh() -> None:
            while True:
                for gauge, read in readers:
                    gauge.set(read())
                if self._stop_refresh.wait(REFRESH_S):
                    return

        self._refresher = threading.Thread(target=refresh, name="sc-metrics-refresh", daemon=True)
        self._refresher.start()

    def legacy_call(self, outcome: LegacyOutcome) -> None:
        self._legacy[outcome].inc()

    # Model versions -------------------------------------------------------------------------

    def serving_version(self, version: str, *, swapped: bool = False) -> None:
        """The served version changed (at start, or by a swap): one series, labelled by it."""
        self._model_version.info({"version": version})
        if swapped:
            self._swaps.inc()

    def version_refused(self, reason: RefusedReason) -> None:
        self._refused[reason].inc()

    def model_loaded(self, seconds: float) -> None:
        self._model_load.observe(seconds)

    def set_build_info(self, *, version: str, model: str, device: str, labels: int) -> None:
        self._build.info(
            {"version": version, "model": model, "device": device, "labels": str(labels)}
        )

    # Reading back --------------------------------------------------------------------------

    def value(self, sample_name: str, **labels: str) -> float | None:
        """One sample's current value (as exposed, e.g. ``..._total``), or None when absent."""
        return self.registry.get_sample_value(sample_name, labels)

    # HTTP endpoint -------------------------------------------------------------------------

    def start_http_server(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on a background thread; returns the bound port (``port=0`` picks one).

        Raises ConfigError when the address cannot be bound.
        """
        if self._http is not None:
            raise RuntimeError("the metrics endpoint is already running")
        try:
            self._http = serve_registry(self.registry, host, port)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        logger.info("metrics on http://%s:%d/metrics", host, self._http.port)
        return self._http.port

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the HTTP endpoint (if running) and close its socket; stop refreshing gauges."""
        self._stop_refresh.set()
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.join(timeout)
        endpoint, self._http = self._http, None
        if endpoint is not None:
            endpoint.stop(timeout)
