"""Exceptions of :mod:`streaming.labelling`."""

from __future__ import annotations


class LabellingError(Exception):
    """Base class of every error raised by the label page."""


class SetupError(LabellingError):
    """The label page cannot start (no collected folder, bad label names): the command exits 2."""


class DecisionConflict(LabellingError):
    """A decision the replayed state no longer allows (the frame was decided by another page, or
    the decision to undo is gone): answered with 409, nothing is written, the page moves on."""


class UnknownFrame(LabellingError):
    """No collected frame has that id (answered with 404)."""


class UnknownLabel(LabellingError):
    """A label that is not on the page (answered with 400)."""
