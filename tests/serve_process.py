"""`python -m streaming serve` as a real process on 127.0.0.1 port 0, its ports read from its banner.

The one wrapper for every suite that needs the server in its own process (memory, signals,
replicas behind a proxy, the CLI's output). Start several with :func:`launch_serve` and wait for
each with :meth:`ServeProcess.wait_ready`, so their model loads overlap; stop with
:meth:`ServeProcess.stop` (or :func:`stop_process`), which always leaves the process gone.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import peak_rss_bytes, reset_peak_rss, rss_bytes

REPO = Path(__file__).resolve().parents[1]


def stop_process(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15
) -> int:
    """Signal, wait up to ``timeout``, then kill: the process is gone when this returns."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    return process.returncode


@dataclass
class ServeProcess:
    """A launched ``serve``; ``port`` and ``metrics_port`` are known once :meth:`wait_ready` returns.

    stdout is a text pipe whose banner lines :meth:`wait_ready` has read into ``banner``; stderr is
    a text pipe, or the file ``log`` when one was given.
    """

    process: subprocess.Popen[str]
    log: Path | None = None
    banner: str = ""
    port: int = 0
    metrics_port: int | None = None
    _wants_metrics: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> ServeProcess:
        """Read stdout until the banner's ``address:`` line (and ``metrics:``, when asked for).

        ``serve`` prints the banner once it listens, so a client may connect when this returns.
        """
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not self._banner_complete():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no serve banner after {timeout:g} s:\n{self._tail()}")
            ready, _, _ = select.select([descriptor], [], [], min(remaining, 1.0))
            if not ready:
                continue
            # os.read, not readline: a buffered reader could hold lines select() cannot see.
            chunk = os.read(descriptor, 65536)
            if not chunk:
                self.process.wait(10)
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self._tail()}")
            self.banner += chunk.decode(errors="replace")
        # "  address: 127.0.0.1:0 (port 40123, plaintext, no tokens)"
        match = re.search(r"^\s*address: .*\(port (\d+)", self.banner, re.MULTILINE)
        assert match, f"no port in the banner: {self.banner!r}"
        self.port = int(match.group(1))
        metrics = re.search(r"^\s*metrics: http://.*:(\d+)/metrics", self.banner, re.MULTILINE)
        self.metrics_port = int(metrics.group(1)) if metrics else None
        return self

    def _banner_complete(self) -> bool:
        lines = [line.strip() for line in self.banner.splitlines(keepends=True) if "\n" in line]
        keys = {line.partition(":")[0] for line in lines}
        return "address" in keys and ("metrics" in keys or not self._wants_metrics)

    def _tail(self) -> str:
        if self.log is not None:
            return self.log.read_text()[-3000:]
        if self.process.poll() is not None and self.process.stderr is not None:
            return self.process.stderr.read()[-3000:]
        return self.banner

    def rss_bytes(self) -> int:
        return rss_bytes(self.process.pid)

    def peak_rss_bytes(self) -> int:
        return peak_rss_bytes(self.process.pid)

    def reset_peak_rss(self) -> None:
        reset_peak_rss(self.process.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        return stop_process(self.process, sig, timeout)


def serve_command(
    model_path: Path, labels_path: Path, *flags: str, front: tuple[str, ...] = ()
) -> list[str]:
    """``python -m streaming [front...] serve`` on 127.0.0.1 port 0 with a model and its labels."""
    return [
        sys.executable, "-m", "streaming", *front, "serve",
        "-la", str(model_path), "-ohe", str(labels_path), "-ip", "127.0.0.1:0", *flags,
    ]  # fmt: skip


def launch_serve(
    model_path: Path,
    labels_path: Path,
    *flags: str,
    front: tuple[str, ...] = (),
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> ServeProcess:
    """Start ``serve`` (``flags`` after the subcommand, ``front`` before it) without waiting.

    A later ``-ip`` in ``flags`` wins over the default 127.0.0.1:0. stderr goes to ``log`` when
    given (a long run's log must not fill a pipe nobody reads), else to a pipe. ``env`` adds to
    the environment.
    """
    command = serve_command(model_path, labels_path, *flags, front=front)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if log is None:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
        )
    else:
        with log.open("w") as err:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=env
            )
    return ServeProcess(process, log, _wants_metrics="--metrics-address" in flags)
