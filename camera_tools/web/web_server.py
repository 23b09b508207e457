"""The HTTP side of the web view: page, MJPEG streams, Server-Sent Events, JSON snapshot.

Stdlib only (``ThreadingHTTPServer``): one thread per connection, so a stalled browser only
blocks its own thread; the :class:`~camera_tools.web.hub.WebHub` never writes to a socket.

Routes:
    ``/``: the page; ``/static/<file>``: its script and style (package data, no CDN).
    ``/stream/<slug>.mjpg``: ``multipart/x-mixed-replace`` MJPEG for VLC, ffplay or ``<img>``.
    ``/events``: Server-Sent Events (``snapshot``, ``source``, ``alert``).
    ``/api/sources``: JSON snapshot of every source.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import json
import logging
import threading
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from camera_tools.camera_errors import CameraToolsError
from camera_tools.web.hub import WebHub

logger = logging.getLogger(__name__)

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_BOUNDARY = "frame"
_WAIT_S = 1.0  # how often a streaming handler rechecks for shutdown
_POLL_S = 0.05  # how often the accept loop checks for shutdown (the stdlib default is 0.5 s)
_KEEPALIVE_S = 15.0  # SSE comment interval, so proxies and browsers keep the connection
_SOCKET_TIMEOUT_S = 30.0  # a viewer that reads nothing for this long is dropped


class WebServerError(CameraToolsError):
    """The web view cannot start (address in use, bad address)."""


def _static(name: str) -> bytes:
    return resources.files("camera_tools.web").joinpath("static", name).read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = _SOCKET_TIMEOUT_S
    server_version = "stream-classify-web"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        # The script and style hold no data, and a page cannot add the token to their URLs.
        public = url.path.startswith("/static/")
        if not public and not self._authorised(url.query):
            self._send_plain(401, "a token is needed: ?token=... or Authorization: Bearer ...")
            return
        path = url.path
        try:
            if path in _STATIC:
                name, content_type = _STATIC[path]
                self._send_body(200, _static(name), content_type)
            elif path == "/api/sources":
                body = json.dumps(self.server.hub.snapshot()).encode()
                self._send_body(200, body, "application/json")
            elif path == "/events":
                self._serve_events()
            elif path.startswith("/stream/") and path.endswith(".mjpg"):
                self._serve_mjpeg(path[len("/stream/") : -len(".mjpg")])
            else:
                self._send_plain(404, f"no such page: {path}")
        except (ConnectionError, TimeoutError):
            logger.debug("viewer %s went away from %s", self.client_address, path)

    def _authorised(self, query: str) -> bool:
        token = self.server.token
        if token is None:
            return True
        given = parse_qs(query).get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = given or header[len("Bearer ") :]
        return hmac.compare_digest(given.encode(), token.encode())

    def _send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _send_plain(self, status: int, text: str) -> None:
        self._send_body(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def _serve_mjpeg(self, slug: str) -> None:
        hub = self.server.hub
        slot = hub.open_viewer(slug)
        if slot is None:
            self._send_plain(404, f"no source {slug!r}; known: {', '.join(hub.slugs())}")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-cache, no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            seen = 0
            while not slot.closed and not self.server.stopping.is_set():
                seen, jpeg = slot.wait_newer(seen, _WAIT_S)
                if jpeg is None:
                    continue
                head = (
                    f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            hub.close_viewer(slug, slot)

    def _serve_events(self) -> None:
        hub = self.server.hub
        page = hub.open_page()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            idle = 0.0
            while not page.closed and not self.server.stopping.is_set():
                messages = page.take(_WAIT_S)
                if messages:
                    idle = 0.0
                    self.wfile.write("".join(messages).encode())
                else:
                    idle += _WAIT_S
                    if idle >= _KEEPALIVE_S:
                        idle = 0.0
                        self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        finally:
            hub.close_page(page)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.client_address[0], format % args)


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a viewer stuck in a write must not hold up shutdown

    def __init__(self, address: tuple[str, int], hub: WebHub, token: str | None) -> None:
        self.hub = hub
        self.token = token
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class WebServer:
    """Serves a :class:`WebHub` over HTTP on a background thread.

    Args:
        hub: The live state to show.
        host: Address to bind; loopback by default (use a token when binding elsewhere).
        port: Port; 0 picks a free one (see :attr:`port`).
        token: When set, every request needs ``?token=`` or ``Authorization: Bearer``.

    Raises:
        WebServerError: The address cannot be bound.

    Example:
        >>> hub = WebHub(["rtsp://cam/live"])  # doctest: +SKIP
        >>> with WebServer(hub, port=8080) as server:  # doctest: +SKIP
        ...     print(server.url)
    """

    def __init__(
        self, hub: WebHub, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None
    ) -> None:
        if token is not None and not token:
            raise ValueError("the web token must not be empty")
        self.hub = hub
        try:
            self._server = _HttpServer((host, port), hub, token)
        except OSError as exc:
            raise WebServerError(f"cannot serve the web view on {host}:{port}: {exc}") from exc
        self.host = host
        self.port = int(self._server.server_address[1])
        # A short poll: close() (watch exiting) waits for serve_forever to notice the shutdown.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_S},
            name="web-server",
            daemon=True,
        )
        self._thread.start()
        logger.info("web view on %s", self.url)
        if (
            token is None
            and not ipaddress.ip_address(str(self._server.server_address[0])).is_loopback
        ):
            logger.warning(
                "web view on %s without --web-token: anyone who can reach it sees all", self.url
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop accepting, end every stream, close the hub."""
        self._server.stopping.set()
        self.hub.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
