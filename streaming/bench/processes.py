"""Child processes of the benchmark: servers (with an RSS sampler), attacks and one-shot workers.

Every child runs with a deadline and is terminated, then killed, when it overruns, so a hung
server or client can never make ``bench`` run unbounded.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)


class BenchError(RuntimeError):
    """A benchmark process failed or overran its deadline."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cpu_ticks(stat_text: str) -> int:
    """User + system clock ticks from the text of ``/proc/PID/stat``."""
    fields = stat_text.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return int(fields[11]) + int(fields[12])


def last_json_line(output: bytes) -> dict[str, Any] | None:
    """The JSON object a worker prints last on stdout, or None if it printed nothing."""
    lines = output.decode(errors="replace").strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else None


def run_json(args: list[str], timeout_s: float, log_path: Path) -> dict[str, Any]:
    """Run a worker that prints one JSON line last; its stderr goes to ``log_path``."""
    logger.debug("running %s", " ".join(args))
    with log_path.open("ab") as log:
        try:
            done = subprocess.run(
                args,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=timeout_s,
                env=child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(
                f"{args[2]} overran its {timeout_s:.0f} s deadline (log: {log_path})"
            ) from exc
    data = last_json_line(done.stdout)
    if done.returncode != 0 or data is None:
        raise BenchError(f"{args[2]} failed with exit code {done.returncode} (log: {log_path})")
    return data


@dataclass
class RssSampler:
    """Samples a process's resident memory every ``period_s`` in a thread, tagged by phase."""

    pid: int
    period_s: float = 0.25
    phase: str = "start"
    samples: list[tuple[float, str, int]] = field(default_factory=list)
    cpu: list[tuple[float, str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        hz = os.sysconf("SC_CLK_TCK")
        statm = Path(f"/proc/{self.pid}/statm")
        stat = Path(f"/proc/{self.pid}/stat")
        while not self._stop.wait(self.period_s):
            try:
                resident = int(statm.read_text().split()[1]) * page
                cpu = cpu_ticks(stat.read_text()) / hz
            except (OSError, IndexError, ValueError):
                return  # the process ended
            self.samples.append((time.monotonic(), self.phase, resident))
            self.cpu.append((time.monotonic(), self.phase, cpu))

    def cores(self, phase: str) -> float:
        """Mean cores the process used during ``phase`` (CPU seconds over wall seconds)."""
        points = [(t, c) for t, p, c in self.cpu if p == phase]
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return 0.0
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])

    def peak(self, phase: str | None = None) -> int:
        values = [rss for _, p, rss in self.samples if phase is None or p == phase]
        return max(values, default=0)

    def series(self, phase: str) -> list[tuple[float, int]]:
        return [(t, rss) for t, p, rss in self.samples if p == phase]


class ChildProcess:
    """A process started from ``args`` (a server, an attack); ready once ``ready_text`` appears.

    Its memory is sampled while it runs (``sample_rss``); leaving the ``with`` block stops it.
    A worker that ends on its own and prints a JSON line last is awaited with :meth:`wait_json`.
    """

    def __init__(
        self,
        args: list[str],
        ready_text: str,
        log_path: Path,
        start_timeout_s: float = 120.0,
        *,
        sample_rss: bool = True,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.args = args
        self._cwd = cwd  # the source tree a `python -m` child imports (compare_trees)
        self._env = {**child_env(), **(extra_env or {})}
        self._ready_text = ready_text
        self._log_path = log_path
        self._timeout = start_timeout_s
        self._sample_rss = sample_rss
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.rss: RssSampler | None = None
        self._drainer: threading.Thread | None = None
        self._output = bytearray()  # stdout after the ready line: a worker's JSON comes last

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        """None while the process runs (a server that crashed has one)."""
        assert self._process is not None
        return self._process.poll()

    def __enter__(self) -> ChildProcess:
        self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self._log, env=self._env, cwd=self._cwd
        )
        self._wait_ready()
        if self._sample_rss:
            self.rss = RssSampler(self._process.pid)
            self.rss.start()
        return self

    def ask_to_stop(self) -> None:
        """SIGTERM: a server drains and exits, a worker ends early and prints its result."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def wait_json(self, timeout_s: float) -> dict[str, Any]:
        """Wait (bounded) for the process to end on its own; the JSON line it printed last."""
        assert self._process is not None
        try:
            code = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(
                f"{self.args[2]} overran its {timeout_s:.0f} s deadline (log: {self._log_path})"
            ) from exc
        if self._drainer is not None:
            self._drainer.join(timeout=5)  # ends at EOF, once the child has exited
        data = last_json_line(bytes(self._output))
        if code != 0 or data is None:
            raise BenchError(f"{self.args[2]} failed with exit code {code} (log: {self._log_path})")
        return data

    def _wait_ready(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self._timeout
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        seen = b""
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                if self._process.poll() is not None:
                    break
                continue
            chunk = os.read(self._process.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            if self._ready_text.encode() in seen:
                self._output += seen.split(self._ready_text.encode(), 1)[1]
                # Keep draining stdout so the child never blocks on a full pipe.
                self._drainer = threading.Thread(target=self._drain_stdout, daemon=True)
                self._drainer.start()
                return
        self.__exit__(None, None, None)
        raise BenchError(f"{' '.join(self.args)} did not start (log: {self._log_path})")

    def _drain_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while chunk := os.read(self._process.stdout.fileno(), 4096):
            self._output += chunk
            del self._output[: -(1 << 20)]  # a chatty server must not grow this without bound

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.rss is not None:
            self.rss.stop()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        if self._drainer is not None:
            self._drainer.join(timeout=5)  # ends at EOF, once the child has exited
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        if self._log is not None:
            self._log.close()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
