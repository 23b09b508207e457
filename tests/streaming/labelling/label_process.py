"""``stream-classify label`` as its own process, for tests that kill it or drive it with a browser."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class LabelProcess:
    """Starts ``python -m streaming label DIR --dataset OUT --web 127.0.0.1:0`` and reads its URL."""

    def __init__(self, collected: Path, dataset: Path, *flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streaming", "label", str(collected), "--dataset",
             str(dataset), "--web", "127.0.0.1:0", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("label page: "):
            self.kill()
            raise AssertionError(f"label did not start: {line!r} {self.stderr()}")
        self.url = line.split(": ", 1)[1].strip()

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def call(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as when the machine or the process dies."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._close()

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it; returns what it printed."""
        if self.process.poll() is None:
            self.process.terminate()
        out, _ = self.process.communicate(timeout=20)
        return out

    def _close(self) -> None:
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
