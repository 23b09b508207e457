"""A Prometheus registry served over HTTP at ``HOST:PORT``: one place for the server's
``--metrics-address`` and the watcher's (both parse the address with
:func:`client.host_port.parse_host_port`).

The client package is the base layer, so both ``streaming`` and ``camera_tools`` can use it.
``prometheus-client`` is imported only when serving starts: ``import client`` never loads it,
and each caller says in its own words when it is missing.

Example:
    >>> from prometheus_client import CollectorRegistry  # doctest: +SKIP
    >>> endpoint = serve_registry(CollectorRegistry(), "127.0.0.1", 0)  # doctest: +SKIP
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
