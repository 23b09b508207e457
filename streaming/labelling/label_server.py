"""The HTTP side of the label page, on the same local server as ``watch --web``.

Routes (every one but ``/static/`` needs the token when one is set):
    ``GET /``: the page; ``GET /static/<file>``: its script and style (package data, no CDN).
    ``GET /api/state``: labels and counts.
    ``GET /api/image/<id>.jpg``: a collected frame.
    ``POST /api/show`` ``{"page", "direction": "current"|"next"|"prev", "after"}``: the frame
    to show, leased to the page.
    ``POST /api/decide`` ``{"page", "id", "action": "assign"|"skip", "label"}``: a decision;
    answers the next frame.
    ``POST /api/undo`` ``{"page", "id"?}``: take back a decision (the page's last one when no
    id is given); answers that frame.

Every POST answers ``{"frame", "state", "message", "decision"}``; 409 with the same body when
the decision is no longer possible (another page decided the frame first).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from camera_tools.web.local_http import BackgroundHttp, BadRequestError, TokenHandler, static_asset
from streaming.labelling.label_decisions import DIRECTIONS, Direction
from streaming.labelling.label_session import LabelSession, PageConflict
from streaming.labelling.labelling_errors import DecisionConflict, UnknownFrame, UnknownLabel

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8090
_STATIC = {
    "/": ("label.html", "text/html; charset=utf-8"),
    "/static/label.js": ("label.js", "text/javascript; charset=utf-8"),
    "/static/label.css": ("label.css", "text/css; charset=utf-8"),
}
_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_IMAGE_PREFIX, _IMAGE_SUFFIX = "/api/image/", ".jpg"


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequestError(400, f"{key!r} must be a non-empty string")
    return value


def _page(body: dict[str, Any]) -> str:
    page = _text(body, "page")
    assert page is not None
    if not _PAGE_ID.fullmatch(page):
        raise BadRequestError(400, "'page' must be 1-64 letters, digits, '-' or '_'")
    return page


class _Handler(TokenHandler[LabelSession]):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":  # browsers ask for it without the token
            self.send_body(204, b"", "image/x-icon")
            return
        # The script and style hold no data, and a page cannot add the token to their URLs.
        if not self.admitted(url.query, public=url.path.startswith("/static/")):
            return
        path = url.path
        try:
            if path in _STATIC:
                name, content_type = _STATIC[path]
                self.send_body(200, static_asset("streaming.labelling", name), content_type)
            elif path == "/api/state":
                self.send_json(200, self.app.state())
            elif path.startswith(_IMAGE_PREFIX) and path.endswith(_IMAGE_SUFFIX):
                frame_id = path[len(_IMAGE_PREFIX) : -len(_IMAGE_SUFFIX)]
                self.send_body(200, self.app.image(frame_id).read_bytes(), "image/jpeg")
            else:
                self.send_plain(404, f"no such page: {path}")
        except (UnknownFrame, FileNotFoundError) as exc:
            self.send_plain(404, str(exc))
        except (ConnectionError, TimeoutError):
            logger.debug("page %s went away from %s", self.client_address, path)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if not self.admitted(url.query):
            return
        try:
            body = self.read_json()
            page = _page(body)
            if url.path == "/api/show":
                direction = _direction(body.get("direction", "current"))
                view = self.app.show(page, direction, _text(body, "after", required=False))
            elif url.path == "/api/decide":
                frame_id = _text(body, "id")
                assert frame_id is not None
                action = body.get("action")
                if action == "assign":
                    label = _text(body, "label")
                elif action == "skip":
                    label = None
                else:
                    raise BadRequestError(400, "'action' must be 'assign' or 'skip'")
                view = self.app.decide(page, frame_id, label)
            elif url.path == "/api/undo":
                view = self.app.undo(page, _text(body, "id", required=False))
            else:
                self.send_plain(404, f"no such call: {url.path}")
                return
            self.send_json(200, view.to_json())
        except PageConflict as exc:
            self.send_json(409, {**exc.view.to_json(), "error": str(exc)})
        except DecisionConflict as exc:
            self.send_json(409, {"error": str(exc)})
        except BadRequestError as exc:
            self.send_json(exc.status, {"error": str(exc)})
        except (UnknownFrame, UnknownLabel) as exc:
            self.send_json(404 if isinstance(exc, UnknownFrame) else 400, {"error": str(exc)})
        except (ConnectionError, TimeoutError):
            logger.debug("page %s went away from %s", self.client_address, url.path)
        except OSError as exc:  # the dataset cannot be written (disk full, permissions)
            logger.error("cannot record a decision in %s: %s", self.app.settings.dataset, exc)
            self.send_json(500, {"error": f"cannot write the dataset: {exc}"})


def _direction(value: Any) -> Direction:
    for direction in DIRECTIONS:
        if direction == value:
            return direction
    raise BadRequestError(400, f"'direction' must be one of {DIRECTIONS}")


class LabelServer:
    """Serves a :class:`LabelSession` over HTTP on a background thread.

    Args:
        session: The labelling state.
        host: Address to bind; loopback by default (use a token when binding elsewhere).
        port: Port; 0 picks a free one (see :attr:`url`).
        token: When set, every request but the static files needs it.

    Raises:
        camera_tools.web.WebServerError: The address cannot be bound.
    """

    def __init__(
        self,
        session: LabelSession,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
    ) -> None:
        self.session = session
        self._http = BackgroundHttp(
            _Handler, session, host=host, port=port, token=token, what="label page"
        )
        self.port = self._http.port

    @property
    def url(self) -> str:
        return self._http.url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
