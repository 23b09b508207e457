"""``serve --processes N``: N server processes on one port, under a small supervisor.

One event loop and one model thread per process are the ceiling of a many-core host, so N
processes share the listening port through SO_REUSEPORT, each with its own model instance on
the same device (Triton's instance groups): the kernel spreads *connections* over them, so a
stream (an HTTP/2 stream on one connection) stays on its process, with its window.

The supervisor (this module, in the process ``serve`` started) imports neither TensorFlow nor
gRPC's server: forking after their threads start is unsafe, so each server process is a fresh
interpreter (``python -m streaming.server.process_worker``) given its settings on stdin.

- **Port.** The supervisor checks the address is free (a plain bind), then keeps a socket bound
  to it with SO_REUSEPORT for its whole run, so port 0 becomes one real port that every process
  binds and that stays reserved while a process restarts. The banner (the address and its port)
  is printed once every process has reported ready through its pipe.
- **Limits.** ``--memory-budget``, ``--frame-budget``, ``--max-streams`` and
  ``--legacy-max-windows`` are the server's (the pod's) and divided among the processes,
  rounded up; everything else (batch, workers, window, grace...) is per process. Each process
  runs the model with ``--intra-op-threads`` threads, cores ÷ N unless given.
- **Metrics.** With ``--metrics-address`` the processes run prometheus-client's multiprocess
  mode in a fresh directory (removed at exit) and the supervisor serves the one endpoint,
  summing them (see :class:`streaming.server.server_metrics.ServerMetrics`).
- **Signals.** SIGTERM/SIGINT are forwarded (each process drains its streams within
  ``--grace``), leftovers are killed ``EXIT_MARGIN_S`` later; the exit status is 0 when every
  process drained and exited 0, else 1. SIGHUP is forwarded.
- **A process that dies** unexpectedly is logged with its exit status and restarted after a
  backoff (:class:`RestartBackoff`); the others serve meanwhile. A process that fails before it
  was ever ready at start-up stops the whole server (exit 2): a bad flag or model would fail
  every time.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import pickle
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from streaming.server.process_worker import ReadyReport, WorkerSpec
from streaming.server.serve_config import ServerConfig, parse_host_port
from streaming.server.server_errors import ConfigError

if TYPE_CHECKING:
    from client.metrics_http import MetricsEndpoint

logger = logging.getLogger(__name__)

# After --grace, how long the processes get to exit before they are killed (a process drains
# within the grace; this covers its own exit: TensorFlow's and gRPC's teardown).
EXIT_MARGIN_S = 5.0
_TICK_S = 0.2  # how often the supervisor looks for exited processes


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a pod's
    CPU limit), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity is the limit
    return max(1, cores)


def _share(total: int, processes: int) -> int:
    return max(1, math.ceil(total / processes))


def process_config(config: ServerConfig, port: int, cores: int) -> ServerConfig:
    """One process's settings: its share of the server's limits, the real port, SO_REUSEPORT.

    >>> c = process_config(ServerConfig(address="127.0.0.1:0", processes=2, max_streams=5), 4242, 4)
    >>> c.address, c.max_streams, c.memory_budget_bytes == 2**29, c.model.intra_op_threads
    ('127.0.0.1:4242', 3, True, 2)
    """
    from client.host_port import format_host_port

    n = config.processes
    host, _ = parse_host_port(config.address)
    model = config.model
    if model.intra_op_threads == 0:
        model = replace(model, intra_op_threads=max(1, cores // n))
    return replace(
        config,
        address=format_host_port(host, port),
        model=model,
        memory_budget_bytes=_share(config.memory_budget_bytes, n),
        frame_budget=_share(config.frame_budget, n) if config.frame_budget else 0,
        max_streams=_share(config.max_streams, n),
        legacy_max_windows=_share(config.legacy_max_windows, n),
        metrics_address=None,  # the supervisor serves the one endpoint
        processes=1,
        shared_port=True,
    )


def reserve_port(address: str) -> tuple[socket.socket, int]:
    """A socket bound to ``address`` with SO_REUSEPORT (not listening), and its port.

    The address is first bound without SO_REUSEPORT, so a port another server listens on fails
    here as it does for one process, instead of being silently shared.

    Raises:
        ConfigError: the address is taken or not an address of this machine.
    """
    if address.startswith("unix:"):
        raise ConfigError("--processes needs a TCP address, not a unix socket")
    host, port = parse_host_port(address)
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            # As gRPC binds: connections in TIME_WAIT do not make the port taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
            port = int(probe.getsockname()[1])
        held = socket.socket(family, kind, proto)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((where[0], port, *where[2:]))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from exc
    return held, port


@dataclass(frozen=True)
class RestartBackoff:
    """How long to wait before restarting a process that died: doubling from ``first_s`` up to
    ``max_s``; a process that had run ``stable_s`` before dying starts the count again.

    >>> backoff = RestartBackoff()
    >>> [backoff.delay(n) for n in (1, 2, 3, 6, 7)]
    [1.0, 2.0, 4.0, 30.0, 30.0]
    """

    first_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds before the restart after ``failures`` deaths in a row (``failures`` >= 1)."""
        return min(self.max_s, self.first_s * 2.0 ** max(0, failures - 1))

    def failures_after(self, failures: int, ran_s: float) -> int:
        """The count of deaths in a row once a process that ran ``ran_s`` seconds died."""
        return 1 if ran_s >= self.stable_s else failures + 1


def describe_exit(code: int) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` (Popen's negative codes are signals)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int | None
    started: float
    report: ReadyReport | None = None
    buffer: bytearray = field(default_factory=bytearray)


@dataclass
class SupervisorResult:
    """What the banner needs once every process is ready."""

    report: ReadyReport  # the first process's
    pids: tuple[int, ...]
    port: int
    metrics_port: int | None
    config: ServerConfig  # the server's, as given
    process_config: ServerConfig  # each process's


class Supervisor:
    """Starts, watches, restarts and stops the server processes (see the module docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        log_level: str = "INFO",
        log_format: str = "text",
        backoff: RestartBackoff = RestartBackoff(),
        cores: int | None = None,
    ) -> None:
        if config.processes < 2:
            raise ValueError("the supervisor runs two or more processes")
        self.config = config
        self._log_level = log_level
        self._log_format = log_format
        self._backoff = backoff
        self._cores = cores or available_cores()
        self._children: dict[int, _Child] = {}
        self._failures: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}
        self._selector = selectors.DefaultSelector()
        self._signals: list[int] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._held: socket.socket | None = None
        self._metrics_dir: str | None = None
        self._metrics: MetricsEndpoint | None = None
        self.port = 0
        self.process_config: ServerConfig | None = None

    # Start-up ---------------------------------------------------------------------------

    def run(self, on_ready: Callable[[SupervisorResult], None] | None = None) -> int:
        """Serve until SIGTERM/SIGINT; the exit status (0 drained, 1 not cleanly, 2 start-up)."""
        previous = self._install_signals()
        try:
            try:
                self._prepare()
                failed = self._start_all()
                if failed is not None:
                    return failed
            except ConfigError as exc:
                logger.error("%s", exc)
                return 2
            reports = [child.report for child in self._children.values()]
            first = reports[0]
            assert first is not None and self.process_config is not None
            if on_ready is not None:
                on_ready(
                    SupervisorResult(
                        first,
                        tuple(c.process.pid for c in self._children.values()),
                        self.port,
                        None if self._metrics is None else self._metrics.port,
                        self.config,
                        self.process_config,
                    )
                )
            self._supervise()
            return self._shut_down()
        finally:
            self._kill_all()
            self._cleanup()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(-1)

    def _prepare(self) -> None:
        self._held, self.port = reserve_port(self.config.address)
        self.process_config = process_config(self.config, self.port, self._cores)
        metrics_at = self.config.metrics_host_port
        if metrics_at is not None:
            self._metrics_dir = tempfile.mkdtemp(prefix="sc-metrics-")
            self._metrics = _serve_multiprocess_metrics(self._metrics_dir, *metrics_at)
        logger.info(
            "starting %d server processes on port %d (%d cores, %d intra-op threads each)",
            self.config.processes,
            self.port,
            self._cores,
            self.process_config.model.intra_op_threads,
        )

    def _start_all(self) -> int | None:
        """Start every process and wait until each is ready: None, or the exit status when one
        failed to start (2) or a signal stopped the start (1)."""
        for index in range(self.config.processes):
            self._start(index)
        while not all(child.report is not None for child in self._children.values()):
            self._wait_events(_TICK_S)
            if any(signum != signal.SIGHUP for signum in self._signals):
                logger.warning("stopped while starting")
                return 1
            for child in self._children.values():
                code = child.process.poll()
                if code is not None and child.report is None:
                    logger.error(
                        "process %d (pid %d) failed to start: %s",
                        child.index,
                        child.process.pid,
                        describe_exit(code),
                    )
                    return 2
        return None

    def _start(self, index: int) -> None:
        assert self.process_config is not None
        read_fd, write_fd = os.pipe()
        spec = WorkerSpec(
            config=self.process_config,
            index=index,
            parent_pid=os.getpid(),
            ready_fd=write_fd,
            log_level=self._log_level,
            log_format=self._log_format,
        )
        env = dict(os.environ)
        if self._metrics_dir is not None:
            # Read by prometheus-client when the process imports it (before any metric exists).
            env["PROMETHEUS_MULTIPROC_DIR"] = self._metrics_dir
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "streaming.server.process_worker"],
                stdin=subprocess.PIPE,
                stdout=sys.stderr.fileno(),  # stdout is the supervisor's banner alone
                pass_fds=(write_fd,),
                env=env,
                # Its own process group: a terminal's Ctrl-C (or `timeout`) signals the group
                # of the supervisor only, which passes one SIGTERM on. A second signal would
                # end a process in the middle of its drain, as it does a lone server.
                process_group=0,
            )
        finally:
            os.close(write_fd)
        assert process.stdin is not None
        try:
            process.stdin.write(pickle.dumps(spec))
            process.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: seen as an exit before ready
        os.set_blocking(read_fd, False)
        self._selector.register(read_fd, selectors.EVENT_READ, index)
        self._children[index] = _Child(index, process, read_fd, time.monotonic())
        logger.debug("process %d started (pid %d)", index, process.pid)

    # Running ----------------------------------------------------------------------------

    def _supervise(self) -> None:
        while True:
            self._wait_events(_TICK_S)
            for signum in self._take_signals():
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: passed on to every process")
                    self._signal_all(signal.SIGHUP)
                else:
                    logger.info("%s: stopping every process", signal.Signals(signum).name)
                    return
            now = time.monotonic()
            for child in list(self._children.values()):
                code = child.process.poll()
                if code is not None:
                    self._child_died(child, code, now)
            for index, when in list(self._restart_at.items()):
                if now >= when:
                    del self._restart_at[index]
                    self._start(index)

    def _child_died(self, child: _Child, code: int, now: float) -> None:
        del self._children[child.index]
        self._unregister(child)
        self._mark_dead(child.process.pid)
        ran_s = now - child.started
        failures = self._backoff.failures_after(self._failures.get(child.index, 0), ran_s)
        self._failures[child.index] = failures
        delay = self._backoff.delay(failures)
        self._restart_at[child.index] = now + delay
        logger.error(
            "process %d (pid %d) %s %s after %.0f s: restarting it in %.0f s",
            child.index,
            child.process.pid,
            "died" if child.report is not None else "failed to start",
            describe_exit(code),
            ran_s,
            delay,
        )

    def _wait_events(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.fileobj == self._wake_r:
                with _suppress_blocking():
                    while os.read(self._wake_r, 512):
                        pass
                continue
            child = self._children.get(int(key.data))
            if child is not None:
                self._read_ready(child)

    def _read_ready(self, child: _Child) -> None:
        assert child.ready_fd is not None
        with _suppress_blocking():
            while chunk := os.read(child.ready_fd, 65536):
                child.buffer += chunk
            # EOF (the read loop ends on EAGAIN otherwise): the process wrote its report and
            # closed the pipe, or died; it is seen exiting on the next tick.
            self._unregister(child)
            try:
                report = pickle.loads(bytes(child.buffer))  # our own child wrote it
            except (pickle.UnpicklingError, EOFError, ValueError):
                return  # nothing, or cut short: it died before it was ready
            child.report = report
            if child.index in self._failures:
                logger.info("process %d restarted (pid %d)", child.index, report.pid)

    def _unregister(self, child: _Child) -> None:
        if child.ready_fd is not None:
            self._selector.unregister(child.ready_fd)
            os.close(child.ready_fd)
            child.ready_fd = None

    # Stopping ---------------------------------------------------------------------------

    def _shut_down(self) -> int:
        """Forward SIGTERM, wait the grace and a margin, kill leftovers; the exit status."""
        self._restart_at.clear()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_s + EXIT_MARGIN_S
        clean = True
        for child in list(self._children.values()):
            try:
                code = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error(
                    "process %d (pid %d) still running after the grace: killed",
                    child.index,
                    child.process.pid,
                )
                child.process.kill()
                child.process.wait(10)
                clean = False
                continue
            if code != 0 and child.report is not None:
                logger.error(
                    "process %d (pid %d) ended with %s",
                    child.index,
                    child.process.pid,
                    describe_exit(code),
                )
                clean = False
        logger.info("stopped %s", "cleanly" if clean else "with errors")
        return 0 if clean else 1

    def _signal_all(self, signum: int) -> None:
        for child in self._children.values():
            if child.process.poll() is None:
                child.process.send_signal(signum)

    def _kill_all(self) -> None:
        for child in self._children.values():
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait(10)
            self._unregister(child)

    def _mark_dead(self, pid: int) -> None:
        if self._metrics_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self._metrics_dir)

    def _cleanup(self) -> None:
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None
        if self._held is not None:
            self._held.close()
            self._held = None
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # Signals ----------------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        signal.set_wakeup_fd(self._wake_w)

        def record(signum: int, _frame: FrameType | None) -> None:
            self._signals.append(signum)

        return {
            signum: signal.signal(signum, record)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }

    def _take_signals(self) -> list[int]:
        taken, self._signals[:] = list(self._signals), []
        return taken


class _suppress_blocking:
    """Ends a non-blocking read loop quietly when the pipe is empty (EAGAIN)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        return isinstance(exc, BlockingIOError) or (
            isinstance(exc, OSError) and exc.errno == errno.EAGAIN
        )


def _serve_multiprocess_metrics(directory: str, host: str, port: int) -> MetricsEndpoint:
    """The one ``/metrics`` endpoint, summing what the processes write to ``directory``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from client.metrics_http import serve_registry

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    try:
        endpoint = serve_registry(registry, host, port)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    logger.info("metrics of every process on http://%s:%d/metrics", host, endpoint.port)
    return endpoint
