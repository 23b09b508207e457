"""Capped exponential backoff, shared by frame sources and gRPC reconnects.

The policy is a frozen value; :class:`Backoff` is the small mutable tracker that
walks through it. Both are free of clocks and sleeps so they can be tested
deterministically; callers do the waiting (usually ``threading.Event.wait``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to wait before each reconnect attempt.

    The n-th delay (n starting at 0) is ``min(max_delay, initial_delay * multiplier**n)``,
    then spread by ``jitter``: a fraction in [0, 1] of the delay that is randomly
    removed, so many clients that lost the same server do not retry in lockstep.

    Attributes:
        initial_delay: First delay in seconds.
        max_delay: Cap on every delay in seconds.
        multiplier: Growth factor between attempts (>= 1).
        jitter: Fraction of each delay that may be randomly removed (0 = none).
        max_retries: Attempts allowed before giving up; ``None`` retries forever.

    Example:
        >>> policy = BackoffPolicy(initial_delay=1, max_delay=8, max_retries=5)
        >>> list(policy.delays())
        [1.0, 2.0, 4.0, 8.0, 8.0]
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.0
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay < 0:
            raise ValueError(f"initial_delay must be >= 0, got {self.initial_delay}")
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be >= initial_delay ({self.initial_delay})"
            )
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, got {self.max_retries}")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Delay in seconds before retry number ``attempt`` (0-based).

        Args:
            attempt: How many retries were already made since the last success.
            rand: Source of uniform numbers in [0, 1); injectable for tests.
        """
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # Cap the exponent too: multiplier**attempt overflows long before forever ends.
        base = self.initial_delay * self.multiplier ** min(attempt, 64)
        capped = min(self.max_delay, base)
        return capped * (1.0 - self.jitter * rand())

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """Yield the successive delays; endless when ``max_retries`` is ``None``."""
        attempt = 0
        while self.max_retries is None or attempt < self.max_retries:
            yield self.delay(attempt, rand)
            attempt += 1


NO_RETRY = BackoffPolicy(initial_delay=0.0, max_delay=0.0, max_retries=0)
"""A policy that never retries."""


class Backoff:
    """Tracks retries against a :class:`BackoffPolicy`.

    Call :meth:`next_delay` after each failure and :meth:`reset` after a success.
    Not thread-safe: one tracker per connection loop.

    Example:
        >>> backoff = Backoff(BackoffPolicy(initial_delay=1, max_delay=4, max_retries=2))
        >>> backoff.next_delay(), backoff.next_delay(), backoff.next_delay()
        (1.0, 2.0, None)
    """

    def __init__(self, policy: BackoffPolicy, *, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Retries made since the last :meth:`reset`."""
        return self._attempt

    def next_delay(self) -> float | None:
        """Return the delay before the next retry, or ``None`` when retries are exhausted."""
        if self.policy.max_retries is not None and self._attempt >= self.policy.max_retries:
            return None
        delay = self.policy.delay(self._attempt, self._rand)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures: the next delay is the initial one again."""
        self._attempt = 0
