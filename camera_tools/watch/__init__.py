"""The ``watch`` application: classify webcams, streams, files and folders through one server.

Built on the camera library (:mod:`camera_tools.capture`, sources, sinks, overlay) and the
client; nothing in the library imports it. Modules:

* :mod:`~camera_tools.watch.watch_config`: :class:`WatchConfig`, source ids.
* :mod:`~camera_tools.watch.runner`: :class:`Watcher` (connection, lifecycle, dispatch).
* :mod:`~camera_tools.watch.connection`: the shared server connection and its reconnects.
* :mod:`~camera_tools.watch.source_loop`: one source's send/receive loop and resends.
* :mod:`~camera_tools.watch.observers`: :class:`WatchObserver`, how outputs subscribe.
* :mod:`~camera_tools.watch.outputs`: the built-in outputs (sinks, console lines).
* :mod:`~camera_tools.watch.source_summary`: counters, summary per source, the summary table.
* :mod:`~camera_tools.watch.watch_metrics`: :class:`WatchMetrics`, Prometheus metrics of a run.
* :mod:`~camera_tools.watch.live_observer`: :class:`LiveObserver`, the web view, re-stream and
  alerts (:class:`~camera_tools.live.LiveOutputs`) as an observer.
* :mod:`~camera_tools.watch.collect_observer`: :class:`CollectObserver`, ``--collect`` (the
  :class:`~camera_tools.collect.Collector`) as an observer.
* :mod:`~camera_tools.watch.watch_cli`: ``stream-classify watch``.
"""

from __future__ import annotations

from camera_tools.watch.collect_observer import CollectObserver
from camera_tools.watch.live_observer import LiveObserver
from camera_tools.watch.observers import ClassifiedFrame, ObserverGroup, WatchObserver
from camera_tools.watch.outputs import ConfiguredOutputs, ConsoleLines, record_paths
from camera_tools.watch.runner import Watcher
from camera_tools.watch.source_summary import (
    SourceCounters,
    SourceOutcome,
    SourceSummary,
    WatchReport,
    format_summary,
)
from camera_tools.watch.watch_config import WatchConfig, source_ids
from camera_tools.watch.watch_errors import (
    MetricsUnavailableError,
    ServerUnavailableError,
    WatchError,
)
from camera_tools.watch.watch_metrics import WatchMetrics

__all__ = [
    "ClassifiedFrame",
    "CollectObserver",
    "ConfiguredOutputs",
    "ConsoleLines",
    "LiveObserver",
    "MetricsUnavailableError",
    "ObserverGroup",
    "ServerUnavailableError",
    "SourceCounters",
    "SourceOutcome",
    "SourceSummary",
    "WatchConfig",
    "WatchError",
    "WatchMetrics",
    "WatchObserver",
    "WatchReport",
    "Watcher",
    "format_summary",
    "record_paths",
    "source_ids",
]
