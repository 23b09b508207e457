"""Prometheus metrics of a watch run: :class:`WatchMetrics`, an observer served over HTTP.

Every series is labelled by ``source``, the watcher's short id of a source (credentials
redacted), so their number is bounded by the command line. Names (prefix
``stream_classify_watch_``):

* ``frames_read_total``, ``frames_classified_total``, ``frames_failed_total`` (answered with an
  error), ``frames_dropped_total`` (live frames never classified): counters.
* ``reconnects_total{cause="source"|"server"}``: reopens of the source itself, and of its
  stream after losing the server.
* ``classification_latency_seconds``: histogram of send-to-answer time.
* ``source_state{state}``: 1 for the source's current :class:`~camera_tools.states.SourceState`,
  0 for the others (enum style); all 0 before the first state change.
* ``label{label}``: 1 for the source's current window-averaged label (one series per source:
  the previous label's series is removed when it changes); ``label_score``: its score.
* ``server_state{server, state}``: the shared server connection's state, enum style.

Classified frames and latency follow each answer; frames read, failed, dropped and reconnects
come from the counters the watcher publishes every ``counters_interval_s`` and at each source's
end, so they lag by at most that interval.

``prometheus-client`` is optional (the ``metrics`` extra) and imported only when metrics are
asked for.

Example:
    >>> metrics = WatchMetrics(config)  # doctest: +SKIP
    >>> port = metrics.serve("127.0.0.1:0")  # doctest: +SKIP
    >>> Watcher(config, observers=[metrics]).run()  # closes metrics at the end  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from camera_tools.states import SourceEvent, SourceState
from camera_tools.watch.connection import server_id
from camera_tools.watch.observers import ClassifiedFrame, WatchObserver
from camera_tools.watch.source_summary import SourceCounters, SourceSummary
from camera_tools.watch.watch_config import WatchConfig, source_ids
from camera_tools.watch.watch_errors import MetricsUnavailableError
from client.host_port import format_host_port, parse_host_port
from client.metrics_http import MetricsEndpoint, serve_registry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge

logger = logging.getLogger(__name__)

PREFIX = "stream_classify_watch_"
# From a model call on a local GPU (ms) to a congested remote server (seconds).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_INSTALL_HINT = "pip install prometheus-client (or the package's 'metrics' extra)"
_SERVER_JOIN_S = 5.0


class WatchMetrics(WatchObserver):
    """Keeps Prometheus metrics of a watch run in a private registry; :meth:`serve` exposes them.

    Args:
        config: The run's configuration: its sources get their series from the start (at 0),
            and its server names the connection's state changes.

    Raises:
        MetricsUnavailableError: prometheus-client is not installed.
    """

    def __init__(self, config: WatchConfig) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise MetricsUnavailableError(
                f"metrics need prometheus-client, which is not installed: {_INSTALL_HINT}"
            ) from exc
        # Private: a process that runs several watchers (tests, embedders) keeps them apart.
        self.registry: CollectorRegistry = prom.CollectorRegistry(auto_describe=True)
        self._server = config.server
        self._server_id = server_id(config.server)

        def counter(name: str, doc: str, *labels: str) -> prom.Counter:
            return prom.Counter(PREFIX + name, doc, ("source", *labels), registry=self.registry)

        def gauge(name: str, doc: str, *labels: str) -> prom.Gauge:
            return prom.Gauge(PREFIX + name, doc, labels, registry=self.registry)

        self._read = counter("frames_read_total", "Frames read from the source, skipped ones too.")
        self._classified = counter("frames_classified_total", "Frames answered with a label.")
        self._failed = counter("frames_failed_total", "Frames answered with an error.")
        self._dropped = counter(
            "frames_dropped_total", "Live frames never classified (replaced, dropped or lost)."
        )
        self._reconnects = counter(
            "reconnects_total",
            "Reopens of the source (cause=source) or of its stream after losing the server.",
            "cause",
        )
        self._latency = prom.Histogram(
            PREFIX + "classification_latency_seconds",
            "Time from sending a frame to its answer.",
            ("source",),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._source_state = gauge(
            "source_state", "1 for the source's current capture state, 0 for the others.",
            "source", "state",
        )  # fmt: skip
        self._label = gauge(
            "label", "1 for the source's current window-averaged label.", "source", "label"
        )
        self._score = gauge("label_score", "Score of the source's current label.", "source")
        self._server_state = gauge(
            "server_state", "1 for the server connection's current state, 0 for the others.",
            "server", "state",
        )  # fmt: skip
        self._labels: dict[str, str] = {}
        self._seen: dict[tuple[str, str], int] = {}  # (source, counter) -> last published total
        self._http: MetricsEndpoint | None = None
        self._closed = False
        # Every series of every source from the start: a missing series reads as "no data",
        # not as 0, in rate() and alerts.
        for source in source_ids(config.sources):
            for metric in (self._read, self._classified, self._failed, self._dropped):
                metric.labels(source)
            for cause in ("source", "server"):
                self._reconnects.labels(source, cause)
            self._latency.labels(source)
            self._set_state(self._source_state, source, None)
        self._set_state(self._server_state, self._server, None)

    def serve(self, address: str) -> int:
        """Serve ``/metrics`` at ``address`` (``HOST:PORT``, ``:PORT`` loopback, port 0 any free
        one) on a thread.

        Returns:
            The bound port.

        Raises:
            MetricsUnavailableError: The address is malformed or cannot be bound.
        """
        if self._http is not None:
            raise RuntimeError("metrics are already served")
        try:
            host, port = parse_host_port(address)
            self._http = serve_registry(self.registry, host, port)  # __init__ imported prometheus
        except (ValueError, OSError) as exc:
            raise MetricsUnavailableError(f"cannot serve metrics at {address}: {exc}") from exc
        logger.info("metrics at http://%s/metrics", format_host_port(host, self._http.port))
        return self._http.port

    def on_frame(self, frame: ClassifiedFrame) -> None:
        result = frame.classification
        source = result.source_id
        self._classified.labels(source).inc()
        self._latency.labels(source).observe(frame.latency_s)
        previous = self._labels.get(source)
        if previous != result.label:
            if previous is not None:
                self._label.remove(source, previous)
            self._label.labels(source, result.label).set(1)
            self._labels[source] = result.label
        self._score.labels(source).set(result.score)

    def on_state(self, event: SourceEvent) -> None:
        if event.source_id == self._server_id:
            self._set_state(self._server_state, self._server, event.state)
        else:
            self._set_state(self._source_state, event.source_id, event.state)

    def on_counters(self, counters: SourceCounters) -> None:
        source = counters.source
        self._advance(self._read.labels(source), source, "read", counters.frames_read)
        self._advance(self._failed.labels(source), source, "failed", counters.errors)
        self._advance(self._dropped.labels(source), source, "dropped", counters.dropped)
        self._advance(
            self._reconnects.labels(source, "source"), source, "source", counters.source_reconnects
        )
        self._advance(
            self._reconnects.labels(source, "server"), source, "server", counters.server_reconnects
        )

    def on_source_finished(self, summary: SourceSummary) -> None:
        self.on_counters(summary)

    def close(self) -> None:
        """Stop serving (idempotent); the registry keeps its values for whoever still reads it."""
        if self._closed:
            return
        self._closed = True
        if self._http is not None:
            self._http.stop(timeout=_SERVER_JOIN_S)

    def _advance(self, counter: Counter, source: str, name: str, total: int) -> None:
        """Bring ``counter`` to ``total``: the watcher publishes running totals, not increments."""
        last = self._seen.get((source, name), 0)
        if total > last:
            counter.inc(total - last)
            self._seen[(source, name)] = total

    @staticmethod
    def _set_state(gauge: Gauge, owner: str, state: SourceState | None) -> None:
        for candidate in SourceState:
            gauge.labels(owner, candidate.value).set(1 if candidate is state else 0)
