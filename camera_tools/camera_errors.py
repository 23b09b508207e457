"""Exceptions raised by :mod:`camera_tools`."""

from __future__ import annotations


class CameraToolsError(Exception):
    """Base class of every error raised by camera_tools."""


class SourceError(CameraToolsError):
    """A frame source cannot be recognised, opened or read."""


class SourceOfflineError(SourceError):
    """The source is there but has nothing to read now: a web page with no video, a broadcast
    not live yet or over. Capture reports it as the OFFLINE state and retries on its backoff."""


class PageSupportUnavailableError(SourceError):
    """A web page is to be read but yt-dlp is not installed (the package's ``live`` extra)."""


class SinkError(CameraToolsError):
    """A sink cannot write its output."""


class DisplayUnavailableError(SinkError):
    """No window can be shown: no screen, or an OpenCV build without GUI support."""
