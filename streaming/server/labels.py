"""Label files: the old pickled ``{label: index}`` dict (loaded safely), ``.txt`` and ``.json``."""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streaming.server.server_errors import LabelsError

logger = logging.getLogger(__name__)

_SAFE_BUILTINS = frozenset({"dict", "list", "tuple", "str", "int"})


class _RestrictedUnpickler(pickle.Unpickler):
    """Refuses every global except plain containers, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        raise LabelsError(
            f"labels pickle refers to {module}.{name}; only dicts of str to int are allowed"
        )


def load_labels(path: Path) -> tuple[str, ...]:
    """Read labels in model output order.

    Accepts the old ``-ohe`` file (a pickled ``{label: index}`` dict), a ``.txt`` file with one
    label per line, or ``.json`` holding a list or a ``{label: index}`` object.

    Raises:
        LabelsError: unreadable, unsafe, or not a consistent label list.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".txt":
        text = raw.decode("utf-8-sig", errors="strict")
        labels = [line.strip() for line in text.splitlines() if line.strip()]
        return _checked(labels, path)
    if suffix == ".json":
        try:
            return _from_object(json.loads(raw), path)
        except json.JSONDecodeError as exc:
            raise LabelsError(f"labels file {path} is not valid JSON: {exc}") from exc
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw)).load()
    except LabelsError:
        raise
    except Exception as exc:  # any malformed pickle: report it as a labels problem
        raise LabelsError(f"labels file {path} is not a pickled label dict: {exc}") from exc
    return _from_object(obj, path)


def _from_object(obj: object, path: Path) -> tuple[str, ...]:
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) and isinstance(v, int) for k, v in obj.items()):
            raise LabelsError(f"labels file {path} must map label strings to integer indices")
        indices = sorted(obj.values())
        if indices != list(range(len(obj))):
            raise LabelsError(f"labels file {path}: indices must be 0..{len(obj) - 1} without gaps")
        by_index = {v: k for k, v in obj.items()}
        return _checked([by_index[i] for i in range(len(obj))], path)
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        if not all(isinstance(x, str) for x in obj):
            raise LabelsError(f"labels file {path} must list strings")
        return _checked(list(obj), path)
    raise LabelsError(f"labels file {path} holds a {type(obj).__name__}, expected a dict or list")


def _checked(labels: list[str], path: Path) -> tuple[str, ...]:
    if not labels:
        raise LabelsError(f"labels file {path} holds no labels")
    if len(set(labels)) != len(labels):
        raise LabelsError(f"labels file {path} repeats a label")
    return tuple(labels)


def default_labels(count: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(count))


def match_labels(labels: tuple[str, ...] | None, num_outputs: int, source: str) -> tuple[str, ...]:
    """Check that the labels fit the model's outputs (or invent names when there are none)."""
    if labels is None:
        logger.warning(
            "no labels file given: naming the %d outputs class_0..class_%d",
            num_outputs,
            num_outputs - 1,
        )
        return default_labels(num_outputs)
    if len(labels) != num_outputs:
        raise LabelsError(
            f"{source} has {len(labels)} labels but the model has {num_outputs} outputs; "
            "pass the labels file that was made with this model"
        )
    return labels
