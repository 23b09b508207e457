"""The first screen of ``serve``: our banner and log lines, not TensorFlow's C++ start-up chatter.

TensorFlow writes absl's "All log messages before absl::InitializeLog() ..." notice, "Could not
find cuda drivers" and an ``E0000 ... cuInit`` line straight to the stderr file descriptor while it
starts; ``streaming.server.tensorflow_runtime`` catches them and logs them at DEBUG. Its wheel also
carries a second copy of that start-up (the profiler plugin), which must stay unloaded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support import free_port

pytestmark = pytest.mark.slow

NATIVE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\))"
)
TENSORFLOW_WORDS = re.compile(r"oneDNN|TF_ENABLE_ONEDNN|cuda|cuInit", re.IGNORECASE)


def start_and_stop(tiny_model: Any, address: str, *front_flags: str) -> tuple[str, str, list[str]]:
    """Run ``serve`` until it answers, read its memory map, stop it: (stdout, stderr, maps)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", *front_flags, "serve",
         "-la", str(tiny_model.model_path), "-ohe", str(tiny_model.labels_path), "-ip", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        maps_file = Path(f"/proc/{process.pid}/maps")
        maps = maps_file.read_text().splitlines() if maps_file.exists() else []
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "serving" in out  # the banner
    return out, err, maps


def mapped_libraries(maps: list[str], name: str) -> set[str]:
    """Shared objects (``x.so``, ``x.so.2``) whose path contains ``name``."""
    paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    return {path for path in paths if ".so" in Path(path).name and name in path}


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("front_flags", "tensorflow_lines_shown"),
    [
        ((), False),  # the default: INFO, text
        (("--log-format", "json"), False),
        (("--log-level", "WARNING"), False),
        (("--log-level", "DEBUG"), True),  # then they are ours, one record per line
    ],
)
def test_tensorflow_starts_once_and_quietly(
    tiny_model: Any,
    front_flags: tuple[str, ...],
    tensorflow_lines_shown: bool,
) -> None:
    # given `serve` started with the environment a user has (no TF_CPP_MIN_LOG_LEVEL)
    out, err, maps = start_and_stop(tiny_model, f"127.0.0.1:{free_port()}", *front_flags)
    lines = err.splitlines()

    # then no TensorFlow/absl line reaches the terminal as it was written
    raw = [line for line in lines if NATIVE_LINE.match(line)]
    if not tensorflow_lines_shown:
        assert raw == [], raw
        assert not [line for line in lines if TENSORFLOW_WORDS.search(line)], err
    else:
        ours = [
            line for line in lines if "streaming.server.tensorflow_runtime: tensorflow: " in line
        ]
        assert ours, err  # the caught start-up lines, as DEBUG records
        # At most one copy of the start-up ran: one absl notice, one CUDA probe (none with a GPU).
        for marker in ("absl::InitializeLog", "cudart_stub", "cuInit"):
            assert sum(marker in line for line in lines) <= 1, (marker, err)
    if "json" in front_flags:
        assert all(json.loads(line)["logger"] for line in lines), err

    # and TensorFlow's platform layer is loaded once: not its second copy in the profiler plugin
    if maps:
        assert mapped_libraries(maps, "libtensorflow_framework")
        assert not mapped_libraries(maps, "_pywrap_profiler_plugin")
