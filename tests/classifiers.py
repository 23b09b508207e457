"""Wrappers around the real (tiny) classifier that change when or whether its calls return:
slow, failing on demand, or held at a gate. Shared by the server and client test suites."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np


class SlowClassifier:
    """The real classifier, made slow: every batch takes at least ``delay_s`` more, plus
    ``per_frame_s`` for each of its frames (a model whose calls grow with the batch)."""

    def __init__(self, inner: Any, delay_s: float, per_frame_s: float = 0.0) -> None:
        self._inner = inner
        self._delay_s = delay_s
        self._per_frame_s = per_frame_s
        self.description = inner.description

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        time.sleep(self._delay_s + self._per_frame_s * sum(len(g) for g in groups))
        return self._inner.predict(groups)

    def warm_up(self, max_batch: int) -> None:
        self._inner.warm_up(max_batch)


class FailingClassifier(SlowClassifier):
    """Fails every call while ``failing`` is set."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, 0.0)
        self.failing = True

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        if self.failing:
            raise RuntimeError("device lost")
        return self._inner.predict(groups)


class GatedClassifier:
    """The real classifier, whose calls wait while ``gate`` is closed (``entered`` is set once a
    call waits there); a gate the test never opens fails the call after ``timeout_s``."""

    def __init__(self, inner: Any, *, open_: bool = False, timeout_s: float = 30.0) -> None:
        self._inner = inner
        self._timeout_s = timeout_s
        self.description = inner.description
        self.gate = threading.Event()
        if open_:
            self.gate.set()
        self.entered = threading.Event()

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        if not self.gate.is_set():
            self.entered.set()
        if not self.gate.wait(self._timeout_s):
            raise RuntimeError("the test never opened the gate")
        return self._inner.predict(groups)

    def warm_up(self, max_batch: int) -> None:
        self._inner.warm_up(max_batch)
