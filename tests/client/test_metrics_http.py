"""``client.metrics_http``: a registry served on loopback and stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from client.metrics_http import serve_registry
from tests.metrics_scrape import scrape

ROOT = Path(__file__).resolve().parents[2]


def test_serves_the_registry_on_the_bound_port_until_stopped() -> None:
    # given a registry with one counted sample, served on any free port
    registry = CollectorRegistry()
    Counter("probe_events", "Events.", registry=registry).inc(3)
    endpoint = serve_registry(registry, "127.0.0.1", 0)
    try:
        # then the bound port is a real one and answers with the registry
        assert endpoint.port > 0
        assert "probe_events_total 3.0" in scrape(endpoint.port)
    finally:
        # when stopped (twice: the second does nothing more)
        endpoint.stop()
        endpoint.stop()
    # then nothing listens there any more
    with pytest.raises(urllib.error.URLError):
        scrape(endpoint.port)


def test_a_taken_port_is_an_os_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve_registry(CollectorRegistry(), "127.0.0.1", taken.getsockname()[1])


def test_importing_it_loads_no_prometheus_client() -> None:
    # A fresh interpreter: only serving imports prometheus-client, so the client needs none.
    code = "import sys, client.metrics_http; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
