"""Where the machine's CPU goes during a load run: a whole-machine ``perf`` profile, by role.

``perf record -a`` samples every CPU for a few seconds in the middle of a run; each sample is
put in one of these roles: the model's threads (server threads spending most of their samples
in TensorFlow's libraries or its JIT kernels), the server's other threads (gRPC, event loop,
batching), the load generator, idle, and everything else. Shares times the core count give
cores, comparable with the model's cores when it runs alone (row 1).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections import Counter, defaultdict
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

ROLES = ("model", "server", "load generator", "idle", "other")
# TensorFlow and its kernels; oneDNN JIT code shows as a perf map file or as unknown.
_MODEL_LIBRARIES = (
    "libtensorflow",
    "_pywrap_tensorflow",
    "libdnnl",
    "[JIT]",
    "/perf-",
    "[unknown]",
)


def perf_works() -> bool:
    """``perf`` is installed and may sample the whole machine (root or a low perf_event_paranoid)."""
    if shutil.which("perf") is None:
        return False
    try:
        done = subprocess.run(
            ["perf", "record", "-a", "-o", os.devnull, "--", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def breakdown(
    samples: list[tuple[int, int, str]], server_pid: int, loadgen_pids: set[int]
) -> dict[str, float]:
    """Share of samples per role, from ``(pid, tid, dso)`` samples."""
    per_thread: dict[int, Counter[str]] = defaultdict(Counter)
    pid_of: dict[int, int] = {}
    for pid, tid, dso in samples:
        per_thread[tid][dso] += 1
        pid_of[tid] = pid
    counts: Counter[str] = Counter()
    for tid, dsos in per_thread.items():
        total = sum(dsos.values())
        pid = pid_of[tid]
        if pid == 0:
            role = "idle"
        elif pid == server_pid:
            in_model = sum(n for dso, n in dsos.items() if any(m in dso for m in _MODEL_LIBRARIES))
            role = "model" if in_model * 2 >= total else "server"
        elif pid in loadgen_pids:
            role = "load generator"
        else:
            role = "other"
        counts[role] += total
    total = sum(counts.values()) or 1
    return {role: counts[role] / total for role in ROLES}


def _read_samples(data: Path) -> list[tuple[int, int, str]]:
    done = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "pid,tid,ip,dso"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    samples = []
    for line in done.stdout.splitlines():
        # "  1234/1240   7f00deadbeef (/usr/lib/libc.so.6)"
        parts = line.split(None, 2)
        if len(parts) < 2 or "/" not in parts[0]:
            continue
        pid, tid = parts[0].split("/", 1)
        dso = parts[2].strip().strip("()") if len(parts) == 3 else "?"
        samples.append((int(pid), int(tid), dso))
    return samples


def _loadgen_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"streaming.bench.loadgen" in cmdline:
                pids.add(int(entry.name))
    return pids


class CpuProfiler:
    """Profiles the machine for ``seconds`` starting ``delay_s`` after entering the block.

    Example:
        >>> with CpuProfiler(Path("row5.perf"), server_pid, delay_s=4, seconds=3) as profile:
        ...     run_load()                                    # doctest: +SKIP
        >>> profile.result()  # {"model": 0.73, "server": 0.06, ...} or None
    """

    def __init__(self, out: Path, server_pid: int, delay_s: float, seconds: float) -> None:
        self._out = out
        self._server_pid = server_pid
        self._seconds = seconds
        self._loadgen: set[int] = set()
        self._recorded = False
        self._timer = threading.Timer(delay_s, self._record)
        self._timer.daemon = True

    def __enter__(self) -> CpuProfiler:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        self._timer.join(self._seconds + 30)

    def _record(self) -> None:
        self._loadgen = _loadgen_pids()
        try:
            done = subprocess.run(
                [
                    "perf",
                    "record",
                    "-a",
                    "-F",
                    "499",
                    "-o",
                    str(self._out),
                    "--",
                    "sleep",
                    str(self._seconds),
                ],
                capture_output=True,
                timeout=self._seconds + 20,
                check=False,
            )
            self._recorded = done.returncode == 0
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("perf record failed: %s", exc)

    def result(self) -> dict[str, float] | None:
        if not self._recorded:
            return None
        samples = _read_samples(self._out)
        if not samples:
            return None
        return breakdown(samples, self._server_pid, self._loadgen)
