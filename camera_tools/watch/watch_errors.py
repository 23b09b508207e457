"""Exceptions raised by the watch application."""

from __future__ import annotations

from camera_tools.camera_errors import CameraToolsError


class WatchError(CameraToolsError):
    """The watcher cannot start."""


class ServerUnavailableError(WatchError):
    """The classification server could not be reached at start."""


class MetricsUnavailableError(WatchError):
    """``--metrics-address`` cannot be served: prometheus-client is missing or the address is unusable."""
