"""What sinks receive, and the interface they share."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

_SLUG_INVALID = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Classification:
    """The result for one frame of one source.

    Attributes:
        source_id: Source identifier (credentials redacted).
        frame_index: Index of the frame in its source.
        captured_at: Wall-clock capture time (``time.time()``).
        label: The label to report (e.g. the window-averaged one).
        score: Score of ``label`` in [0, 1].
        position_s: Position in the file in seconds, when known.
        frame_label: The label of this frame alone, when it differs in meaning
            from ``label``.
        model_version: The server's model version that classified the frame
            (``""`` when unknown: an older server, or not from a server).
    """

    source_id: str
    frame_index: int
    captured_at: float
    label: str
    score: float
    position_s: float | None = None
    frame_label: str | None = None
    model_version: str = ""

    def __post_init__(self) -> None:
        if self.frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {self.frame_index}")
        if not math.isfinite(self.score):
            raise ValueError(f"score must be finite, got {self.score}")
        if not self.source_id:
            raise ValueError("source_id must not be empty")

    @property
    def time_s(self) -> float:
        """Position in the file when known, else capture time: the clock segments use."""
        return self.position_s if self.position_s is not None else self.captured_at


@runtime_checkable
class Sink(Protocol):
    """Consumes classified frames. Sinks are not thread-safe; call from one thread."""

    def write(self, result: Classification, image: np.ndarray | None = None) -> None:
        """Record one result; ``image`` is the (possibly overlaid) frame, if the sink needs one."""
        ...

    def close(self) -> None:
        """Flush and release everything; safe to call more than once."""
        ...


def slugify(text: str, *, max_length: int = 60) -> str:
    """Turn a source id into a file-name-safe slug (``rtsp://***@cam/live`` → ``rtsp-cam-live``).

    Args:
        text: Any string; pass a redacted id so no secret reaches a file name.
        max_length: Longest slug returned.
    """
    slug = _SLUG_INVALID.sub("-", text.lower().replace("***@", "")).strip("-")
    if len(slug) > max_length:
        # Long ids that share a prefix (paths in one folder) must still get distinct names.
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        slug = f"{slug[: max_length - 9].rstrip('-')}-{digest}"
    return slug or "source"


def unique_slug(text: str, taken: Collection[str]) -> str:
    """:func:`slugify` ``text``, adding ``-2``, ``-3``... when another source already has it.

    Example:
        >>> unique_slug("cam/a", {"cam-a"})
        'cam-a-2'
    """
    base = slugify(text)
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug
