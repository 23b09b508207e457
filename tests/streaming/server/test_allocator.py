"""The server's malloc arena cap (streaming/server/allocator.py), in fresh interpreters: it changes the
process's allocator for good."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

_PROBE = "from streaming.server.allocator import limit_malloc_arenas; print(limit_malloc_arenas())"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        pytest.param({}, "True", id="capped"),
        pytest.param({"MALLOC_ARENA_MAX": "4"}, "False", id="operator-choice-stands"),
    ],
)
def test_the_arena_cap_is_set_unless_the_environment_chose(
    environment: dict[str, str], expected: str
) -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("arenas are glibc's")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | environment
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
