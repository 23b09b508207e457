from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import pytest

from camera_tools.alerts import AlertEvent, AlertKind
from camera_tools.overlay import label_color
from camera_tools.sinks.base import Classification
from camera_tools.web import SourceStats, WebHub, WebOptions, WebServer
from tests.support import wait_until

CAM = "rtsp://***@cam.local/live"  # ids reach the hub redacted
FILE = "/data/clips/studio-a.mp4"


def frame(value: int, width: int = 320, height: int = 180) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def result(source: str, label: str, index: int = 0, score: float = 0.9) -> Classification:
    return Classification(source, index, 1000.0 + index, label, score)


class Clock:
    """Real time unless a test moves it on by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[WebServer]:
    hub = WebHub([CAM, FILE], max_fps=1000.0, max_total_fps=1000.0, clock=clock)
    with WebServer(hub, port=0) as web:
        yield web


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def read_part(stream: IO[bytes]) -> bytes:
    """One JPEG from a multipart/x-mixed-replace stream."""
    line = stream.readline()
    while line in (b"\r\n", b"\n"):
        line = stream.readline()
    assert line.strip() == b"--frame", line
    headers = {}
    while (line := stream.readline()).strip():
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    return stream.read(int(headers["content-length"]))


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def publish_until(
    hub: WebHub, source: str, stop: threading.Event, value: Callable[[], int]
) -> None:
    index = 0
    while not stop.is_set() and index < 20_000:
        hub.publish_frame(source, frame(value()), result(source, "program", index))
        index += 1
        stop.wait(0.01)


def test_mjpeg_stream_yields_jpegs_that_follow_the_published_frames(
    server: WebServer, tmp_path: Path
) -> None:
    hub = server.hub
    brightness = [40]
    stop = threading.Event()
    publisher = threading.Thread(
        target=publish_until, args=(hub, CAM, stop, lambda: brightness[0]), daemon=True
    )
    publisher.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        slug = hub.add_source(CAM)
        connection.request("GET", f"/stream/{slug}.mjpg")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        first = decode(read_part(response))
        brightness[0] = 220
        for _ in range(200):  # bounded: the brighter frames arrive within a few parts
            later = decode(read_part(response))
            if later[90:, 200:].mean() > 200:
                break
    finally:
        stop.set()
        publisher.join(timeout=10)
        connection.close()
    assert first.shape == (180, 320, 3)
    assert abs(first[90:, 200:].mean() - 40) < 10  # the scene (away from the overlay)
    assert later[90:, 200:].mean() > 200
    cv2.imwrite(str(tmp_path / "web-frame.png"), first)
    # annotated: the badge in the label's colour (JPEG shifts colours a little)
    near = np.abs(first[:40, :120].astype(int) - label_color("program")).max(axis=2) < 40
    assert near.mean() > 0.3


def test_frames_are_encoded_only_while_someone_watches(server: WebServer) -> None:
    hub = server.hub
    for i in range(50):
        hub.publish_frame(FILE, frame(100), result(FILE, "black", i))
    assert hub.frames_encoded(FILE) == 0


def test_encoding_rate_is_shared_between_watched_sources(clock: Clock) -> None:
    hub = WebHub([CAM, FILE], max_fps=10.0, max_total_fps=10.0, clock=clock)
    try:
        viewers = [hub.open_viewer(hub.add_source(source)) for source in (CAM, FILE)]
        assert all(viewers)
        for step in range(40):  # 2 s at 20 fps per source
            clock.offset = step * 0.05
            for source in (CAM, FILE):
                hub.publish_frame(source, frame(step), result(source, "program", step))
        wait_until(
            lambda: hub.frames_encoded(CAM) >= 1 and hub.frames_encoded(FILE) >= 1, timeout=10
        )
        # 10 fps in all: each of the two watched sources gets 5 fps, 10 frames in 2 s
        assert hub.frames_encoded(CAM) <= 10 and hub.frames_encoded(FILE) <= 10
    finally:
        hub.close()


def test_sources_snapshot_and_states(server: WebServer, clock: Clock) -> None:
    hub = server.hub
    hub.publish_frame(CAM, frame(10), result(CAM, "black", 0, 0.75))
    clock.offset += 5
    hub.publish_frame(CAM, frame(10), result(CAM, "color_bars", 1))
    hub.publish_stats(CAM, SourceStats(fps=9.5, latency_ms=12.0, classified=2, reconnects=1))
    hub.publish_state(FILE, "reconnecting", "rtsp://u:pw@h/x refused")

    status, body = get(f"{server.url}api/sources")
    assert status == 200
    sources = {s["id"]: s for s in json.loads(body)["sources"]}
    cam = sources[CAM]
    assert cam["label"] == "color_bars" and cam["stats"]["fps"] == 9.5
    assert [segment[0] for segment in cam["timeline"]] == ["black", "color_bars"]
    assert cam["colors"]["black"].startswith("#") and cam["name"] == "cam.local/live"
    assert sources[FILE]["down"] is True and "pw" not in sources[FILE]["detail"]
    assert sources[FILE]["name"] == "studio-a.mp4"


def test_the_model_version_reaches_the_page_at_once(clock: Clock) -> None:
    # given: a source shown, its last update just sent
    hub = WebHub([CAM], clock=clock)
    page = hub.open_page()
    try:
        hub.publish_frame(CAM, frame(0), replace(result(CAM, "black", 0), model_version="1"))
        page.take(1.0)
        # when: the next frame, same label, comes from a new model version
        clock.offset += 0.2  # past the change interval, before the score-only one
        hub.publish_frame(CAM, frame(0), replace(result(CAM, "black", 1), model_version="2"))
        # then: the page hears of it, and the snapshot shows it
        sent = [json.loads(m.split("data: ", 1)[1]) for m in page.take(1.0) if "data: " in m]
        assert [d["model_version"] for d in sent if "model_version" in d] == ["2"]
        (source,) = hub.snapshot()["sources"]
        assert source["model_version"] == "2"
    finally:
        hub.close_page(page)
        hub.close()


def read_sse(stream: IO[bytes], wanted: Callable[[str, Any], bool], limit: int = 500) -> Any:
    event = ""
    for _ in range(limit):
        line = stream.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
            if wanted(event, data):
                return data
    raise AssertionError("event not seen")


def test_timeline_merges_flicker_too_short_to_see(clock: Clock) -> None:
    hub = WebHub([CAM], timeline_seconds=100.0, clock=clock)  # 0.1 s is one pixel of 1000
    try:
        for step, label in enumerate(["a", "b", "a", "b"] * 5):  # 20 ms flicker
            clock.offset = step * 0.02
            hub.publish_frame(CAM, frame(0), result(CAM, label, step))
        for step, label in enumerate(["c"] * 10 + ["d"] * 10):  # real changes, 1 s each
            clock.offset = 1 + step * 0.1
            hub.publish_frame(CAM, frame(0), result(CAM, label, 20 + step))
        (source,) = hub.snapshot()["sources"]
    finally:
        hub.close()
    labels = [segment[0] for segment in source["timeline"]]
    # 20 flickering frames over 0.4 s make at most one stretch per 0.1 s; real changes stay.
    assert labels[-2:] == ["c", "d"] and 2 <= len(labels[:-2]) <= 5
    assert source["label"] == "d"


def test_events_deliver_label_changes_and_alerts(server: WebServer) -> None:
    hub = server.hub
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "text/event-stream"
        snapshot = read_sse(response, lambda event, _: event == "snapshot")
        assert {s["id"] for s in snapshot["sources"]} == {CAM, FILE}

        hub.publish_frame(FILE, frame(0), result(FILE, "black", 0))
        changed = read_sse(response, lambda e, d: e == "source" and d["label"] == "black")
        assert changed["id"] == FILE

        alert = AlertEvent(AlertKind.RAISED, "black:5", FILE, 1005.0, 1000.0, 5.0, "black")
        hub.publish_alert(alert)
        assert read_sse(response, lambda e, _: e == "alert")["rule"] == "black:5"
        flagged = read_sse(response, lambda e, d: e == "source" and d["alerts"])
        assert flagged["alerts"] == ["black:5"]
    finally:
        connection.close()


def test_a_stalled_viewer_never_blocks_the_publisher(server: WebServer) -> None:
    hub = server.hub
    slug = hub.add_source(CAM)
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.sendall(f"GET /stream/{slug}.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_until(lambda: hub.snapshot()["sources"][0]["viewers"] == 1, timeout=10)
        # Noise frames do not compress: the stalled socket's buffers fill after a few.
        noise = np.random.default_rng(0).integers(0, 255, (360, 640, 3), np.uint8)
        for i in range(1000):
            hub.publish_frame(CAM, noise, result(CAM, "static", i))
        wait_until(lambda: hub.frames_encoded(CAM) >= 1, timeout=10)
        # And another viewer is still served meanwhile.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", f"/stream/{slug}.mjpg")
        response = connection.getresponse()
        hub.publish_frame(CAM, frame(50), result(CAM, "program", 1001))
        assert (
            cv2.imdecode(np.frombuffer(read_part(response), np.uint8), cv2.IMREAD_COLOR) is not None
        )
        connection.close()
    finally:
        stalled.close()


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("api/sources", {}, 401),
        ("api/sources?token=wrong", {}, 401),
        ("api/sources?token=s3cret", {}, 200),
        ("api/sources", {"Authorization": "Bearer s3cret"}, 200),
        ("", {"Authorization": "Bearer nope"}, 401),
        ("?token=s3cret", {}, 200),
    ],
)
def test_token_is_enforced(path: str, headers: dict[str, str], expected: int) -> None:
    with WebServer(WebHub([CAM]), port=0, token="s3cret") as web:
        status, _ = get(web.url + path, headers)
    assert status == expected


def test_page_and_static_files_ship_in_the_package(server: WebServer) -> None:
    status, page = get(server.url)
    assert status == 200 and b'src="static/app.js"' in page and b"http" not in page.lower()
    for name in ("app.js", "style.css"):
        status, body = get(f"{server.url}static/{name}")
        assert status == 200 and body
    assert get(f"{server.url}stream/nope.mjpg")[0] == 404
    assert get(f"{server.url}nope")[0] == 404


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", WebOptions("127.0.0.1", 8080)),
        (":0", WebOptions("127.0.0.1", 0)),  # no host: loopback, as for --metrics-address
        ("[::1]:9", WebOptions("::1", 9)),
        ("0.0.0.0:80", WebOptions("0.0.0.0", 80)),
        ("8080", ValueError),
        ("host:", ValueError),
        ("h:99999", ValueError),
        ("h:x", ValueError),
    ],
)
def test_web_options_at_an_address(text: str, expected: WebOptions | type[ValueError]) -> None:
    if isinstance(expected, WebOptions):
        assert WebOptions.at(text) == expected
    else:
        with pytest.raises(expected):
            WebOptions.at(text)


def test_web_token_is_kept_out_of_the_repr() -> None:
    options = WebOptions.at(":8080", token="s3cret")
    assert options.token == "s3cret" and "s3cret" not in repr(options)
