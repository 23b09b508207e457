"""``client.metrics_http``: HOST:PORT parsing, and a registry served on loopback and stopped."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from client.metrics_http import ANY_INTERFACE, parse_host_port, serve_registry
from tests.metrics_scrape import scrape

ROOT = Path(__file__).resolve().parents[2]
BAD = ValueError


@pytest.mark.parametrize(
    ("text", "default_host", "expected"),
    [
        ("127.0.0.1:9100", None, ("127.0.0.1", 9100)),
        ("localhost:0", None, ("localhost", 0)),
        ("[::1]:9100", None, ("::1", 9100)),
        ("[::]:65535", None, ("::", 65535)),
        (":9100", ANY_INTERFACE, ("0.0.0.0", 9100)),
        ("[]:9100", ANY_INTERFACE, ("0.0.0.0", 9100)),
        ("host:80", ANY_INTERFACE, ("host", 80)),
        (":9100", None, "expected HOST:PORT, got ':9100'"),
        ("[]:9100", None, "expected HOST:PORT"),
        ("9100", ANY_INTERFACE, "expected HOST:PORT, got '9100'"),
        ("host:", None, "expected HOST:PORT"),
        ("host:http", None, "expected HOST:PORT"),
        ("host:-1", None, "expected HOST:PORT"),
        ("host:²", None, "expected HOST:PORT"),  # isdigit() but not int()
        ("host:٣", None, "expected HOST:PORT"),  # an Arabic-Indic 3: digits are ASCII only
        ("[::1]", None, "expected HOST:PORT"),
        ("host:65536", None, "port must be 0..65535, got 65536"),
        ("host:99999999999999999999", ANY_INTERFACE, "port must be 0..65535"),
    ],
)
def test_parse_host_port(text: str, default_host: str | None, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(BAD, match=re.escape(expected)):
            parse_host_port(text, default_host=default_host)
    else:
        assert parse_host_port(text, default_host=default_host) == expected


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
