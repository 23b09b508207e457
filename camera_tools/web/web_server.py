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

import logging
from urllib.parse import urlsplit

from camera_tools.web.hub import WebHub
from camera_tools.web.local_http import BackgroundHttp, TokenHandler, WebServerError, static_asset

__all__ = ["WebServer", "WebServerError"]

logger = logging.getLogger(__name__)

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_BOUNDARY = "frame"
_WAIT_S = 1.0  # how often a streaming handler rechecks for shutdown
_KEEPALIVE_S = 15.0  # SSE comment interval, so proxies and browsers keep the connection


class _Handler(TokenHandler[WebHub]):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        # The script and style hold no data, and a page cannot add the token to their URLs.
        if not self.admitted(url.query, public=url.path.startswith("/static/")):
            return
        path = url.path
        try:
            if path in _STATIC:
                name, content_type = _STATIC[path]
                self.send_body(200, static_asset("camera_tools.web", name), content_type)
            elif path == "/api/sources":
                self.send_json(200, self.app.snapshot())
            elif path == "/events":
                self._serve_events()
            elif path.startswith("/stream/") and path.endswith(".mjpg"):
                self._serve_mjpeg(path[len("/stream/") : -len(".mjpg")])
            else:
                self.send_plain(404, f"no such page: {path}")
        except (ConnectionError, TimeoutError):
            logger.debug("viewer %s went away from %s", self.client_address, path)

    def _serve_mjpeg(self, slug: str) -> None:
        hub = self.app
        slot = hub.open_viewer(slug)
        if slot is None:
            self.send_plain(404, f"no source {slug!r}; known: {', '.join(hub.slugs())}")
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
        hub = self.app
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
        self.hub = hub
        self._http = BackgroundHttp(_Handler, hub, host=host, port=port, token=token)
        self.host = host
        self.port = self._http.port

    @property
    def url(self) -> str:
        return self._http.url

    def close(self) -> None:
        """Stop accepting, end every stream, close the hub."""
        self._http.stopping.set()
        self.hub.close()
        self._http.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
