"""What every local page of the product shares: token check, plain/JSON replies, a background server.

The live view of ``watch --web`` (:mod:`camera_tools.web.web_server`) and the label page of
``stream-classify label`` are both built on it, so both behave the same way: stdlib only
(``ThreadingHTTPServer``, one thread per connection), loopback unless another host is asked
for, an optional token (``?token=`` or ``Authorization: Bearer``) on everything but the static
script and style, and a warning when a page without a token listens beyond loopback.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import json
import logging
import threading
from importlib import resources
from typing import Any, Generic, TypeVar

from camera_tools.camera_errors import CameraToolsError

logger = logging.getLogger(__name__)

App = TypeVar("App")

_POLL_S = 0.05  # how often the accept loop checks for shutdown (the stdlib default is 0.5 s)
_SOCKET_TIMEOUT_S = 30.0  # a client that reads nothing for this long is dropped
MAX_JSON_BYTES = 64 * 1024  # a request body larger than this is refused (413)


class WebServerError(CameraToolsError):
    """A page cannot be served (address in use, bad address)."""


class BadRequestError(ValueError):
    """A request the page's server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def static_asset(package: str, name: str) -> bytes:
    """``package``'s ``static/<name>`` (package data, so a page needs no CDN)."""
    return resources.files(package).joinpath("static", name).read_bytes()


class TokenHttpServer(http.server.ThreadingHTTPServer, Generic[App]):
    """A threading HTTP server holding the page's ``app`` (its state) and optional token."""

    daemon_threads = True
    block_on_close = False  # a client stuck in a write must not hold up shutdown

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[TokenHandler[App]],
        app: App,
        token: str | None,
    ) -> None:
        self.app = app
        self.token = token
        self.stopping = threading.Event()
        super().__init__(address, handler)


class TokenHandler(http.server.BaseHTTPRequestHandler, Generic[App]):
    """Request handler helpers: the token check and replies with a body."""

    server: TokenHttpServer[App]
    timeout = _SOCKET_TIMEOUT_S
    server_version = "stream-classify-web"

    @property
    def app(self) -> App:
        return self.server.app

    def authorised(self, query: str) -> bool:
        """Whether the request carries the server's token (always, when there is none)."""
        from urllib.parse import parse_qs

        token = self.server.token
        if token is None:
            return True
        given = parse_qs(query).get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = given or header[len("Bearer ") :]
        return hmac.compare_digest(given.encode(), token.encode())

    def admitted(self, query: str, *, public: bool = False) -> bool:
        """Whether to go on with the request (public, or with the token); else it answers 401."""
        if public or self.authorised(query):
            return True
        self.send_plain(401, "a token is needed: ?token=... or Authorization: Bearer ...")
        return False

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def send_plain(self, status: int, text: str) -> None:
        self.send_body(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def send_json(self, status: int, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode(), "application/json")

    def read_json(self) -> dict[str, Any]:
        """The request's JSON object body.

        Only ``Content-Type: application/json`` is read: a browser sends that type across
        origins only after a CORS preflight these servers never grant, so another site open in
        the same browser cannot post to a loopback page.

        Raises:
            BadRequestError: Another content type (415), too large (413), not a JSON object (400).
        """
        if self.headers.get_content_type() != "application/json":
            raise BadRequestError(415, "send JSON with Content-Type: application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_JSON_BYTES:
            raise BadRequestError(413, f"request body over {MAX_JSON_BYTES} bytes")
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadRequestError(400, "the body must be a JSON object")
        return data

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.client_address[0], format % args)


class BackgroundHttp(Generic[App]):
    """Serves ``handler`` over HTTP on a daemon thread until :meth:`close`.

    Args:
        handler: The request handler class (a :class:`TokenHandler` subclass).
        app: What the handlers serve (``self.app`` in a handler).
        host: Address to bind; loopback by default (use a token when binding elsewhere).
        port: Port; 0 picks a free one (see :attr:`port`).
        token: When set, the handlers' :meth:`TokenHandler.authorised` asks for it.
        what: What the page is, for log lines and errors (``web view``, ``label page``).

    Raises:
        WebServerError: The address cannot be bound.
        ValueError: An empty token.
    """

    def __init__(
        self,
        handler: type[TokenHandler[App]],
        app: App,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        what: str = "web view",
    ) -> None:
        if token is not None and not token:
            raise ValueError("the web token must not be empty")
        try:
            self.server: TokenHttpServer[App] = TokenHttpServer((host, port), handler, app, token)
        except OSError as exc:
            raise WebServerError(f"cannot serve the {what} on {host}:{port}: {exc}") from exc
        self.host = host
        self.port = int(self.server.server_address[1])
        # A short poll: close() waits for serve_forever to notice the shutdown.
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": _POLL_S},
            name=what.replace(" ", "-"),
            daemon=True,
        )
        self._thread.start()
        logger.info("%s on %s", what, self.url)
        if (
            token is None
            and not ipaddress.ip_address(str(self.server.server_address[0])).is_loopback
        ):
            logger.warning(
                "%s on %s without --web-token: anyone who can reach it can use it", what, self.url
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def stopping(self) -> threading.Event:
        """Set once :meth:`close` began: long-running handlers end when they see it."""
        return self.server.stopping

    def close(self) -> None:
        """Stop accepting and wait for the accept loop (handlers of open requests are daemons)."""
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
