"""The front door's ``--log-format json``: ``serve`` logs one JSON object per line on stderr.

(``watch`` with ``--log-format json`` is run in tests/camera_tools/watch/test_watch_metrics.py.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import grpc
import pytest

# At --log-level DEBUG, TensorFlow's C++ runtime writes these straight to the stderr file
# descriptor once it has started, outside Python's logging: no formatter can reach them. (Its
# start-up lines are caught and logged as records: tests/streaming/server/test_serve_startup.py.)
NATIVE_TENSORFLOW_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*)$"
)


@pytest.mark.timeout(180)
def test_serve_logs_json_lines(tiny_model: Any, free_port: Callable[[], int]) -> None:
    # given `stream-classify --log-format json serve`
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", "--log-format", "json", "--log-level", "DEBUG",
         "serve", "-la", str(tiny_model.model_path), "-ohe", str(tiny_model.labels_path),
         "-ip", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        # when it starts serving and is stopped with SIGTERM
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # then every line from Python's logging is one JSON object with the standard keys
    assert process.returncode == 0, err
    python_lines = [line for line in err.splitlines() if not NATIVE_TENSORFLOW_LINE.match(line)]
    records = [json.loads(line) for line in python_lines]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    messages = [(r["logger"], r["message"]) for r in records]
    assert any(
        logger == "streaming.server.grpc_server" and "listening on" in m for logger, m in messages
    )
    assert any(
        logger == "streaming.server.grpc_server" and "stopped" in m for logger, m in messages
    )
    assert "serving" in out  # the banner stays plain text on stdout
