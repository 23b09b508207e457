"""Exceptions raised by :mod:`camera_tools`."""

from __future__ import annotations


class CameraToolsError(Exception):
    """Base class of every error raised by camera_tools."""


class SourceError(CameraToolsError):
    """A frame source cannot be recognised, opened or read."""


class SinkError(CameraToolsError):
    """A sink cannot write its output."""


class DisplayUnavailableError(SinkError):
    """No window can be shown: no screen, or an OpenCV build without GUI support."""
