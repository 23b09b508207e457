"""Attributing whole-machine perf samples to the model, the server, the load generator and idle."""

from __future__ import annotations

import pytest

from streaming.bench.profile import breakdown

SERVER, LOADGEN, OTHER = 100, 200, 300
TF = "/venv/site-packages/tensorflow/libtensorflow_cc.so.2"
JIT = "/tmp/perf-100.map"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
PYTHON = "/usr/lib/libpython3.11.so.1.0"


def samples(pid: int, tid: int, **per_dso: int) -> list[tuple[int, int, str]]:
    names = {"tf": TF, "jit": JIT, "libc": LIBC, "python": PYTHON, "kernel": "[kernel.kallsyms]"}
    return [(pid, tid, names[dso]) for dso, n in per_dso.items() for _ in range(n)]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            samples(SERVER, 101, tf=5, jit=3, libc=2), {"model": 1.0}, id="tf-thread-with-its-libc"
        ),
        pytest.param(
            samples(SERVER, 100, python=6, tf=4), {"server": 1.0}, id="event-loop-touching-tf"
        ),
        pytest.param(samples(0, 0, kernel=4), {"idle": 1.0}, id="idle"),
        pytest.param(
            samples(LOADGEN, 201, python=1) + samples(OTHER, 301, kernel=1),
            {"load generator": 0.5, "other": 0.5},
            id="load-generator-and-the-rest",
        ),
    ],
)
def test_samples_are_attributed_by_thread(
    given: list[tuple[int, int, str]], expected: dict[str, float]
) -> None:
    shares = breakdown(given, SERVER, {LOADGEN})
    assert shares == pytest.approx({role: expected.get(role, 0.0) for role in shares})
    assert sum(shares.values()) == pytest.approx(1.0)


def test_no_samples_give_zero_shares() -> None:
    assert set(breakdown([], SERVER, set()).values()) == {0.0}
