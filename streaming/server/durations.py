"""Running estimates of how long a model call and a batch preparation take.

The scheduler uses them to take a batch late while the model is busy (see ``scheduler``).
"""

from __future__ import annotations

_EMA = 0.2  # weight of the newest duration in the running estimates


class DurationEstimates:
    """Running estimates of model calls (per batch size) and of preparing a batch (per frame).

    Written by the worker threads, read by the scheduler; single float assignments need no lock.
    """

    def __init__(self) -> None:
        self._model_ns: dict[int, float] = {}
        self._prepare_ns_per_frame = 0.0

    def model_call(self, size: int, ns: int) -> None:
        old = self._model_ns.get(size)
        self._model_ns[size] = ns if old is None else old + _EMA * (ns - old)

    def prepared(self, size: int, ns: int) -> None:
        per_frame = ns / max(size, 1)
        old = self._prepare_ns_per_frame
        self._prepare_ns_per_frame = per_frame if old == 0 else old + _EMA * (per_frame - old)

    def timed(self, size: int) -> bool:
        """Whether a call of ``size`` frames or more has been timed, so ``model_ns`` is no guess."""
        return any(k >= size for k in list(self._model_ns))

    def model_ns(self, size: int) -> float:
        """Expected call time; errs short (a batch taken early only waits a little longer)."""
        known = self._model_ns
        if size in known:
            return known[size]
        sizes = list(known)  # a snapshot: the model thread may add a size meanwhile
        below = max((k for k in sizes if k < size), default=None)
        above = min((k for k in sizes if k > size), default=None)
        if below is not None and above is not None:
            share = (size - below) / (above - below)
            return known[below] + share * (known[above] - known[below])
        if below is not None:
            return known[below]
        if above is not None:
            return known[above] * size / above
        return 0.0

    def prepare_ns(self, size: int) -> float:
        return self._prepare_ns_per_frame * size
