"""One server process of ``serve --processes N``: started by the supervisor as a fresh interpreter.

``python -m streaming.server.process_worker`` reads its :class:`WorkerSpec` (pickled) from
stdin, runs the server like ``serve`` does (its own model instance, the port shared with
SO_REUSEPORT) and, once it listens, writes its :class:`ReadyReport` (pickled) to the pipe the
supervisor passed and closes it: that is how the supervisor knows it is ready. Signals are
handled as by ``serve``: SIGTERM/SIGINT drain, SIGHUP re-reads credentials and checks the
model directory. It asks the kernel for SIGTERM when its parent dies, so a killed supervisor
leaves no server behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import pickle
import signal
import sys
from dataclasses import dataclass

from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import ConfigError
from streaming.server.server_values import ModelDescription

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # prctl option number (linux/prctl.h)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [process %(server_process)s]: %(message)s"


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor tells one server process (pickled on its stdin).

    Attributes:
        config: this process's settings (its share of the limits, the port, ``shared_port``).
        index: 0 to N-1, in log lines (``[process 1]``) and the supervisor's.
        parent_pid: the supervisor; the worker exits at once if it is already gone.
        ready_fd: the pipe's write end for the :class:`ReadyReport`.
        log_level: the front door's ``--log-level``.
        log_format: ``text`` or ``json``.
    """

    config: ServerConfig
    index: int
    parent_pid: int
    ready_fd: int
    log_level: str = "INFO"
    log_format: str = "text"


@dataclass(frozen=True)
class ReadyReport:
    """What a ready server process tells the supervisor: for the banner and the logs."""

    pid: int
    port: int
    description: ModelDescription
    version: str


class _ProcessIndex(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.server_process = self.index  # a field of its own in JSON logs
        return True


def _configure_logging(spec: WorkerSpec) -> None:
    from client.logformat import JsonLogFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ProcessIndex(spec.index))
    handler.setFormatter(
        JsonLogFormatter() if spec.log_format == "json" else logging.Formatter(LOG_FORMAT)
    )
    logging.basicConfig(level=spec.log_level, handlers=[handler])
    logging.captureWarnings(spec.log_format == "json")
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _die_with_parent(parent_pid: int) -> bool:
    """SIGTERM (a drain) when the supervisor dies; False when it is gone already."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor still stops its children when it exits normally
    return os.getppid() == parent_pid


def run(spec: WorkerSpec) -> int:
    """Serve until SIGTERM/SIGINT; the exit status as ``serve``'s (0, or 2 for a start-up error)."""
    # Before TensorFlow and gRPC start their threads (see streaming/server/allocator.py).
    from streaming.server.allocator import limit_malloc_arenas

    limit_malloc_arenas()
    from streaming.server.grpc_server import StreamServer, serve

    def report_ready(server: StreamServer) -> None:
        report = ReadyReport(
            pid=os.getpid(),
            port=server.port,
            description=server.classifier.description,
            version=server.models.current.version,
        )
        with os.fdopen(spec.ready_fd, "wb") as pipe:
            pipe.write(pickle.dumps(report))
        logger.info("ready (pid %d, port %d)", report.pid, report.port)

    try:
        asyncio.run(serve(spec.config, on_started=report_ready))
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    return 0


def main() -> int:
    # Trusted input: the supervisor that started this interpreter wrote it.
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)
    _configure_logging(spec)
    if not _die_with_parent(spec.parent_pid):
        logger.error("the supervisor (pid %d) is gone: not starting", spec.parent_pid)
        return 1
    try:
        code = run(spec)
    except KeyboardInterrupt:
        code = 130
    # Drained: every stream has its answers or its status. Skip the interpreter's teardown of
    # TensorFlow and gRPC, which can take seconds on a busy host and would count against the
    # supervisor's margin after --grace.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    # Through the package's module, not this __main__ copy: the pickled ReadyReport must name
    # streaming.server.process_worker for the supervisor to read it.
    from streaming.server import process_worker

    raise SystemExit(process_worker.main())
