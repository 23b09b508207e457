from __future__ import annotations

import itertools
from typing import Any

import pytest

from camera_tools.backoff import NO_RETRY, Backoff, BackoffPolicy


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (BackoffPolicy(initial_delay=1, max_delay=8, max_retries=6), [1, 2, 4, 8, 8, 8]),
        (
            BackoffPolicy(initial_delay=0.5, max_delay=10, multiplier=3, max_retries=4),
            [0.5, 1.5, 4.5, 10],
        ),
        (BackoffPolicy(initial_delay=2, max_delay=2, multiplier=1, max_retries=3), [2, 2, 2]),
        (BackoffPolicy(initial_delay=0, max_delay=0, max_retries=2), [0, 0]),
        (NO_RETRY, []),
    ],
)
def test_policy_delays(policy: BackoffPolicy, expected: list[float]) -> None:
    assert list(policy.delays()) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("jitter", "rand", "expected"),
    [
        (0.0, 0.99, 4.0),
        (0.5, 0.0, 4.0),
        (0.5, 0.5, 3.0),
        (1.0, 0.75, 1.0),
    ],
)
def test_jitter_removes_a_random_fraction(jitter: float, rand: float, expected: float) -> None:
    policy = BackoffPolicy(initial_delay=1, max_delay=10, jitter=jitter)
    assert policy.delay(2, rand=lambda: rand) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_delay": -1},
        {"initial_delay": 5, "max_delay": 1},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"max_retries": -1},
    ],
)
def test_invalid_policy_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_unbounded_policy_retries_forever_without_overflow() -> None:
    policy = BackoffPolicy(initial_delay=1, max_delay=30)
    delays = list(itertools.islice(policy.delays(), 5000))
    assert len(delays) == 5000
    assert delays[-1] == 30


def test_backoff_gives_up_after_max_retries_and_reset_starts_over() -> None:
    # given
    backoff = Backoff(BackoffPolicy(initial_delay=1, max_delay=4, max_retries=3), rand=lambda: 0.0)
    # when
    first = [backoff.next_delay() for _ in range(4)]
    backoff.reset()
    # then
    assert first == [1, 2, 4, None]
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1


def test_backoff_drives_a_retry_loop_with_injected_sleep() -> None:
    """The watch command reconnects to gRPC like this; no real time passes."""
    slept: list[float] = []
    outcomes = iter([False, False, False, True])
    backoff = Backoff(BackoffPolicy(initial_delay=0.1, max_delay=0.3, jitter=0.5), rand=lambda: 0.5)

    while not next(outcomes):
        delay = backoff.next_delay()
        assert delay is not None
        slept.append(delay)

    assert slept == pytest.approx([0.075, 0.15, 0.225])
