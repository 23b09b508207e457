"""The label page's HTTP API on a real local server: calls, conflicts, token, offline assets."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streaming.labelling.label_server import LabelServer
from streaming.labelling.label_session import LabelSession, LabelSettings

from .collected import Collected, write_collected

TOKEN = "s3cret"


@pytest.fixture
def collected(tmp_path: Path) -> Collected:
    return write_collected(tmp_path / "collected", 5)


@pytest.fixture
def label_server(tmp_path: Path, collected: Collected) -> Iterator[LabelServer]:
    session = LabelSession(LabelSettings(collected.folder, tmp_path / "out", ("ident",)))
    with LabelServer(session, port=0) as web:
        yield web
    session.close()


def request(
    url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    sent = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data, {**sent, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get_content_type()


def call(label_server: LabelServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, data, _ = request(label_server.url + path, body)
    return status, json.loads(data)


def test_a_labelling_round_trip(
    label_server: LabelServer, collected: Collected, tmp_path: Path
) -> None:
    first, second = collected.by_score()[:2]

    # the page asks what to show
    status, view = call(label_server, "api/show", {"page": "p1"})
    assert status == 200 and view["frame"]["id"] == first
    assert view["frame"]["image_url"] == f"api/image/{first}.jpg"
    assert view["state"]["labels"] == ["program", "black", "color_bars", "ident"]
    assert view["state"]["new_labels"] == ["ident"] and view["state"]["left"] == 5

    # its image
    status, jpeg, kind = request(label_server.url + view["frame"]["image_url"])
    assert status == 200 and kind == "image/jpeg" and jpeg[:2] == b"\xff\xd8"

    # a label: the answer is the next frame and the new counts
    status, view = call(
        label_server,
        "api/decide",
        {"page": "p1", "id": first, "action": "assign", "label": "ident"},
    )
    assert status == 200 and view["frame"]["id"] == second
    assert view["decision"]["id"] == first and view["state"]["counts"]["ident"] == 1
    assert (tmp_path / "out" / "ident" / f"{first}.jpg").exists()

    # another page deciding the same frame: 409, with a frame to go on with
    status, view = call(label_server, "api/decide", {"page": "p2", "id": first, "action": "skip"})
    assert status == 409 and "already labelled ident" in view["error"]
    assert view["frame"]["id"] not in (first, second)  # second is leased to p1

    # undo brings the frame back
    status, view = call(label_server, "api/undo", {"page": "p1"})
    assert status == 200 and view["frame"]["id"] == first and view["state"]["counts"]["ident"] == 0
    assert not (tmp_path / "out" / "ident" / f"{first}.jpg").exists()

    # the counts on their own
    status, state, kind = request(label_server.url + "api/state")
    assert status == 200 and kind == "application/json" and json.loads(state)["left"] == 5


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("api/show", {"page": "p", "direction": "up"}, 400, "'direction' must be one of"),
        ("api/show", {"page": "../x"}, 400, "'page' must be"),
        ("api/show", {}, 400, "'page' must be a non-empty string"),
        ("api/decide", {"page": "p", "id": "cam1-000000", "action": "delete"}, 400, "'action'"),
        ("api/decide", {"page": "p", "id": "cam1-000000", "action": "assign"}, 400, "'label'"),
        ("api/decide", {"page": "p", "id": "cam1-000000", "action": "assign", "label": "snow"},
         400, "not a label of this page"),
        ("api/decide", {"page": "p", "id": "nope", "action": "skip"}, 404, "no collected frame"),
        ("api/undo", {"page": "p"}, 409, "nothing to undo"),
        ("api/nope", {"page": "p"}, 404, None),
    ],
)  # fmt: skip
def test_bad_calls(
    label_server: LabelServer, path: str, body: dict[str, Any], status: int, error: str | None
) -> None:
    got, data, _ = request(label_server.url + path, body)
    assert got == status
    if error is not None:
        assert error in json.loads(data)["error"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        # a form post (what another site can send without a preflight) is refused
        (b"page=p", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b"page=p", {"Content-Type": "text/plain"}, 415),
        (b"[1, 2]", {}, 400),
        (b"{not json", {}, 400),
        (b"{}" + b" " * 70_000, {}, 413),
    ],
)
def test_only_json_objects_are_read(
    label_server: LabelServer, body: bytes, headers: dict[str, str], status: int
) -> None:
    assert request(label_server.url + "api/show", body, headers)[0] == status


def test_images_of_unknown_frames_are_404(label_server: LabelServer) -> None:
    assert request(label_server.url + "api/image/nope.jpg")[0] == 404
    assert request(label_server.url + "api/image/..%2F..%2Fetc%2Fpasswd.jpg")[0] == 404


@pytest.mark.parametrize(
    ("path", "body", "headers", "expected"),
    [
        ("api/state", None, {}, 401),
        ("api/state?token=wrong", None, {}, 401),
        ("api/state?token=s3cret", None, {}, 200),
        ("api/state", None, {"Authorization": "Bearer s3cret"}, 200),
        ("", None, {}, 401),
        ("?token=s3cret", None, {}, 200),
        ("static/label.js", None, {}, 200),  # holds no data; a page cannot add the token to it
        ("api/show", {"page": "p"}, {}, 401),
        ("api/show?token=s3cret", {"page": "p"}, {}, 200),
        ("api/image/cam1-000000.jpg", None, {}, 401),
    ],
)
def test_token_is_enforced(
    tmp_path: Path,
    collected: Collected,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    expected: int,
) -> None:
    session = LabelSession(LabelSettings(collected.folder, tmp_path / "out"))
    try:
        with LabelServer(session, port=0, token=TOKEN) as web:
            assert request(web.url + path, body, headers)[0] == expected
    finally:
        session.close()


def test_page_and_assets_ship_in_the_package_and_work_offline(label_server: LabelServer) -> None:
    status, page, kind = request(label_server.url)
    assert status == 200 and kind == "text/html"
    assert b'src="static/label.js"' in page and b'href="static/label.css"' in page
    for name in ("label.js", "label.css"):
        status, body, _ = request(f"{label_server.url}static/{name}")
        assert status == 200 and body
        # nothing fetched from elsewhere: no absolute URL in any asset
        assert b"http://" not in body and b"https://" not in body and b"//cdn" not in body
    assert b"http" not in page.lower()
    assert request(label_server.url + "nope")[0] == 404


def test_the_default_is_loopback_on_8090() -> None:
    import inspect

    from streaming.labelling.label_cli import DEFAULT_WEB

    parameters = inspect.signature(LabelServer).parameters
    assert parameters["host"].default == "127.0.0.1" and parameters["port"].default == 8090
    assert DEFAULT_WEB == "127.0.0.1:8090"


def test_a_dataset_that_cannot_be_written_answers_500_and_records_nothing(
    label_server: LabelServer,
    collected: Collected,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    first = collected.by_score()[0]
    decide = {"page": "p", "id": first, "action": "assign", "label": "black"}

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    # when the copy cannot be written
    with monkeypatch.context() as patch:
        patch.setattr(shutil, "copyfile", disk_full)
        status, view = call(label_server, "api/decide", decide)

    # then the page hears it and nothing was recorded
    assert status == 500 and "No space left on device" in view["error"]
    assert not (tmp_path / "out" / "decisions.jsonl").exists()
    assert not (tmp_path / "out" / "black").exists()
    # and once there is room, the same decision goes through
    assert call(label_server, "api/decide", decide)[0] == 200
