"""Exceptions of the trainer; the CLIs turn them into one error line and exit code 2."""

from __future__ import annotations

from typing import Any


class TrainingError(Exception):
    """Base class: training or evaluation cannot go on."""


class DataError(TrainingError):
    """The inputs leave nothing usable (after the bad parts were skipped and reported)."""


class MissingExtraError(TrainingError):
    """A training-only dependency is not installed; the message names the extra."""


def import_tensorflow() -> Any:
    """TensorFlow, or :class:`MissingExtraError` naming the extra that brings it."""
    from streaming.server.tensorflow_runtime import import_tensorflow as import_quietly

    try:
        tf = import_quietly()
    except ImportError as exc:
        raise MissingExtraError(
            "training needs TensorFlow: pip install 'stream-classification[train]'"
        ) from exc
    return tf


def require_extra(module: str) -> None:
    """Import ``module`` or raise :class:`MissingExtraError` naming the ``train`` extra."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is needed for training: pip install 'stream-classification[train]'"
        ) from exc
