"""A one-line progress bar for ``classify``, with per-file messages printed above it."""

from __future__ import annotations

import threading
import time
from typing import TextIO

_MIN_IMAGES = 5  # fewer than this finish before a bar is worth drawing
_REDRAW_S = 0.1
_BAR_WIDTH = 30


class Progress:
    """Draws only when ``out`` is a terminal; messages are always written. Thread-safe."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._started = 0.0
        self._last_draw = 0.0
        self._enabled = False
        self._drawn = False

    def start(self, total: int) -> None:
        self._total = total
        self._started = time.monotonic()
        isatty = getattr(self._out, "isatty", None)
        self._enabled = total > _MIN_IMAGES and callable(isatty) and bool(isatty())

    def update(self) -> None:
        """One more image done (classified or failed)."""
        with self._lock:
            self._done += 1
            now = time.monotonic()
            if self._enabled and (now - self._last_draw >= _REDRAW_S or self._done == self._total):
                self._last_draw = now
                self._draw(now)

    def message(self, text: str) -> None:
        with self._lock:
            self._clear()
            self._out.write(text + "\n")
            if self._enabled:
                self._draw(time.monotonic())

    def close(self) -> None:
        with self._lock:
            self._clear()
            self._enabled = False

    def _draw(self, now: float) -> None:
        filled = _BAR_WIDTH * self._done // max(self._total, 1)
        rate = self._done / max(now - self._started, 1e-9)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        self._out.write(f"\r[{bar}] {self._done}/{self._total} {rate:.1f} images/s")
        self._out.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self._out.write("\r\033[K")
            self._out.flush()
            self._drawn = False
