"""Small helpers every test suite shares: a free port, waiting for a condition, a process's memory.

One copy each, imported as ``from tests.support import ...`` (the rootdir is on ``sys.path``).
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for programs that cannot bind port 0 and report it.

    Another program may take it before ours binds it: prefer port 0 where the program says which
    port it bound (``serve`` does, in its banner: tests/serve_process.py).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something true; return that.

    Raises ``AssertionError`` with ``message`` (a string, or a callable read only then, for the
    state at the time of failure) once ``timeout`` seconds have passed. Exceptions from
    ``predicate`` propagate: a predicate that may fail while the system starts catches them itself.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s: {text}")
        time.sleep(interval)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def peak_rss_bytes(pid: int) -> int:
    """The process's resident high-water mark (Linux ``VmHWM``): catches short spikes too."""
    return _status_kib(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (Linux ``VmRSS``)."""
    return _status_kib(pid, "VmRSS") * 1024


def reset_peak_rss(pid: int) -> None:
    """Start the high-water mark again from the current RSS (``VmHWM := VmRSS``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def publish_version(root: Path, number: int, model_path: Path, labels: Sequence[str]) -> Path:
    """Copy a model into ``root/<number>/`` by the model directory's ready rule: model, then labels."""
    directory = root / str(number)
    directory.mkdir()
    shutil.copyfile(model_path, directory / f"model{model_path.suffix}")
    (directory / "labels.txt").write_text("\n".join(labels) + "\n")
    return directory
