"""A Prometheus registry served over HTTP at ``HOST:PORT``: one place for the server's
``--metrics-address`` and the watcher's.

The client package is the base layer, so both ``streaming`` and ``camera_tools`` can use it.
``prometheus-client`` is imported only when serving starts: ``import client`` never loads it,
and each caller says in its own words when it is missing.

Example:
    >>> from prometheus_client import CollectorRegistry  # doctest: +SKIP
    >>> host, port = parse_host_port("127.0.0.1:0")
    >>> endpoint = serve_registry(CollectorRegistry(), host, port)  # doctest: +SKIP
    >>> endpoint.port  # the bound port, never 0  # doctest: +SKIP
    40123
    >>> endpoint.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

ANY_INTERFACE = "0.0.0.0"


def parse_host_port(text: str, *, default_host: str | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) to host and port.

    Args:
        text: The address as given.
        default_host: The host of ``:PORT`` (empty host); None makes an empty host an error.

    >>> parse_host_port("127.0.0.1:9100")
    ('127.0.0.1', 9100)
    >>> parse_host_port("[::1]:0")
    ('::1', 0)
    >>> parse_host_port(":9100", default_host=ANY_INTERFACE)
    ('0.0.0.0', 9100)

    Raises:
        ValueError: No port, a port that is not ASCII digits or is over 65535, or an empty host
            without ``default_host``.
    """
    host, sep, port_text = text.rpartition(":")
    # isdigit() alone accepts "²", which int() then refuses with a message of its own.
    if not sep or not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        if default_host is None:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        host = default_host
    return host, port


class MetricsEndpoint:
    """A running ``/metrics`` endpoint (from :func:`serve_registry`): its bound port and ``stop``."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port = int(server.server_port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket (a second call does nothing more)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)


def serve_registry(registry: CollectorRegistry, host: str, port: int) -> MetricsEndpoint:
    """Serve ``registry`` at ``http://host:port/metrics`` on a daemon thread (``port=0``: any free one).

    Raises:
        ImportError: prometheus-client is not installed.
        OSError: The address cannot be bound (taken, or not an address of this machine).
    """
    from prometheus_client.exposition import start_http_server

    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsEndpoint(server, thread)
