"""Exceptions raised by the watch application."""

from __future__ import annotations

from camera_tools.errors import CameraToolsError


class WatchError(CameraToolsError):
    """The watcher cannot start."""


class ServerUnavailableError(WatchError):
    """The classification server could not be reached at start."""
