"""How long ``stream-classify serve`` takes from the command to answering health checks SERVING.

Each start is a fresh process with the embedded model and default flags, as a user types it; the
clock runs from just before the process is created to the first health answer SERVING (the
overall service, ``""``), polled every 50 ms. Most of it is importing TensorFlow, loading and
warming up the model. The row reports the median of a few starts (the first one may also pay
for a cold page cache).

Alone: ``python -m streaming.bench.startup_row --starts 3`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from streaming.bench.processes import BenchError, free_port, python_module
from streaming.bench.results import Row

_POLL_S = 0.05


def time_to_serving(log_path: Path, timeout_s: float = 180.0) -> float:
    """Seconds from starting ``serve`` to its first health answer SERVING; the server is stopped."""
    address = f"127.0.0.1:{free_port()}"
    args = python_module("streaming", "serve", "-ip", address)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # no TF_CPP_MIN_LOG_LEVEL unless the user has one
    with log_path.open("ab") as log, grpc.insecure_channel(address) as channel:
        # The method itself: the typing stubs of grpc_health's HealthStub declare no methods.
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        started = time.monotonic()
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            while True:
                elapsed = time.monotonic() - started
                if process.poll() is not None:
                    raise BenchError(
                        f"serve exited with code {process.returncode} (log: {log_path})"
                    )
                if elapsed > timeout_s:
                    raise BenchError(f"serve not SERVING after {timeout_s:.0f} s (log: {log_path})")
                try:
                    answer = check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - started
                except grpc.RpcError:
                    pass  # not listening yet
                time.sleep(_POLL_S)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def startup_row(log_dir: Path, starts: int = 3) -> Row:
    """The start-up row: median seconds to SERVING over ``starts`` fresh processes."""
    if starts < 1:
        raise ValueError(f"starts must be >= 1, got {starts}")
    seconds = [time_to_serving(log_dir / "server-startup.log") for _ in range(starts)]
    median = statistics.median(seconds)
    return Row(
        key="startup",
        name="11. Start-up, `serve` to SERVING",
        setup=f"embedded model, default flags; median of {starts} starts",
        extra={"seconds_median": round(median, 2), "seconds": [round(s, 2) for s in seconds]},
        note=f"{median:.1f} s to SERVING (min {min(seconds):.1f}, max {max(seconds):.1f})",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sc-startup-") as scratch:
        row = startup_row(Path(scratch), args.starts)
    print(json.dumps(row.to_json()), flush=True)  # noqa: T201 - the process's output is this JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
