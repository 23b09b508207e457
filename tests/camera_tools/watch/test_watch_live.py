"""``watch`` with its live outputs and connection flags, end to end: alerts through a hook command
and a webhook, TLS with a token, the RTSP re-stream read back. Real servers, real videos."""

from __future__ import annotations

import argparse
import http.server
import json
import select
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_tools.overlay import label_color
from camera_tools.watch import watch_cli
from tests.camera_tools.videos import for_seconds, write_video
from tests.client.grpc_servers import TokenInterceptor, aio_server, server_credentials
from tests.tls_material import TlsMaterial, make_tls_material

pytestmark = pytest.mark.slow

FPS = 10
SIZE = (320, 240)
BAR_COLOURS = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192),
               (0, 0, 192), (192, 0, 0)]  # fmt: skip
STREAM_CLASSIFY = Path(sys.executable).with_name("stream-classify")


def colour_bars(width: int, height: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    edges = np.linspace(0, width, len(BAR_COLOURS) + 1).astype(int)
    for colour, x0, x1 in zip(BAR_COLOURS, edges, edges[1:], strict=False):
        image[:, x0:x1] = colour
    return image


def write_stretches(path: Path, stretches: list[tuple[np.ndarray, float]]) -> Path:
    return write_video(path, for_seconds(stretches, FPS), FPS)


def black_then_bars(path: Path, black_s: float, bars_s: float) -> Path:
    width, height = SIZE
    black = np.zeros((height, width, 3), np.uint8)
    return write_stretches(path, [(black, black_s), (colour_bars(width, height), bars_s)])


def run_watch(*argv: str | Path | int) -> int:
    parser = argparse.ArgumentParser()
    watch_cli.add_arguments(parser)
    return watch_cli.run(parser.parse_args([str(a) for a in argv]))


def csv_rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1  # minus the header


class WebhookReceiver:
    """A local HTTP server that records every POSTed JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        received = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.mark.timeout(120)
def test_black_for_five_seconds_raises_one_alert_and_clears_it_once(
    embedded_server: object,
    webhook: WebhookReceiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a clip black for 7 s, then colour bars, played at its own pace (alerts run on time)
    clip = black_then_bars(tmp_path / "black.mp4", black_s=7.0, bars_s=3.0)
    events, hook_log, frames = tmp_path / "events.jsonl", tmp_path / "hook.log", tmp_path / "f.csv"
    hook = f'sh -c \'printf "%s " "$ALERT_KIND" >> {hook_log}; cat >> {hook_log}\''

    # when it is watched with a black:5 alert and every alert output
    code = run_watch(
        clip, "--server", embedded_server.address, "--realtime", "--csv", frames,  # type: ignore[attr-defined]
        "--alert", "black:5", "--events", events, "--on-alert", hook, "--webhook", webhook.url,
    )  # fmt: skip

    # then one raise and one clear reach the events file, the hook and the webhook
    assert code == 0
    assert csv_rows(frames) == 100
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["kind"], e["rule"], e["source"]) for e in logged] == [
        ("raised", "black:5", str(clip)),
        ("cleared", "black:5", str(clip)),
    ]
    assert logged[0]["duration_s"] >= 5.0 and logged[0]["label"] == "black"
    hook_lines = hook_log.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in hook_lines] == ["raised", "cleared"]
    assert [json.loads(line.split(" ", 1)[1]) for line in hook_lines] == logged
    assert webhook.bodies == logged
    out = capsys.readouterr().out
    assert out.count("ALERT raised black:5") == 1 and out.count("ALERT cleared black:5") == 1


@pytest.mark.timeout(120)
def test_a_failing_hook_and_a_dead_webhook_never_stop_watch(
    embedded_server: object, tmp_path: Path
) -> None:
    # given a webhook address where nothing listens, and a hook command that fails
    dead = WebhookReceiver()
    dead.close()
    clip = black_then_bars(tmp_path / "black.mp4", black_s=3.0, bars_s=1.5)
    events, frames = tmp_path / "events.jsonl", tmp_path / "f.csv"

    # when an alert is raised and cleared
    code = run_watch(
        clip, "--server", embedded_server.address, "--realtime", "--csv", frames,  # type: ignore[attr-defined]
        "--alert", "black:1", "--events", events, "--on-alert", "sh -c 'exit 3'",
        "--webhook", dead.url,
    )  # fmt: skip

    # then watch still classified every frame and ended normally
    assert code == 0
    assert csv_rows(frames) == 45
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert kinds == ["raised", "cleared"]


# -- connection flags -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "target", ["{host}:{port}", "dns:///localhost:{port}", "ipv4:{host}:{port}"]
)
def test_watch_over_tls_with_the_token_from_the_environment(
    tls: TlsMaterial,
    video_30f_10fps: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    # given a TLS server that refuses calls without the token
    monkeypatch.setenv("STREAM_CLASSIFY_TOKEN", "s3cret")
    recorder = TokenInterceptor(required="s3cret")
    frames = tmp_path / "frames.csv"
    with aio_server(
        credentials=server_credentials(tls, mutual=False), interceptors=(recorder,)
    ) as address:
        host, port = address.rsplit(":", 1)
        # when watch connects with the CA's certificate and any gRPC target form
        code = run_watch(
            video_30f_10fps, "--server", target.format(host=host, port=port),
            "--tls-ca", tls.ca, "--csv", frames,
        )  # fmt: skip

    # then every frame went through, and every call carried the token inside TLS
    assert code == 0
    assert csv_rows(frames) == 30
    assert {method for method, _ in recorder.seen} == {"GetModelInfo", "Classify"}
    assert {token for _, token in recorder.seen} == {"Bearer s3cret"}


@pytest.mark.timeout(60)
def test_watch_with_a_wrong_token_cannot_start(
    tls: TlsMaterial, video_30f_10fps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with aio_server(
        credentials=server_credentials(tls, mutual=False),
        interceptors=(TokenInterceptor(required="right"),),
    ) as address:
        code = run_watch(
            video_30f_10fps, "--server", address, "--tls-ca", tls.ca, "--token", "wrong",
            "--connect-timeout", "5",
        )  # fmt: skip
    assert code == watch_cli.EXIT_CANNOT_START
    err = capsys.readouterr().err
    assert "wrong or missing token" in err and "wrong" not in err.replace("wrong or missing", "")


def test_watch_with_a_missing_tls_file_cannot_start(
    video_30f_10fps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_watch(video_30f_10fps, "--tls-ca", tmp_path / "nope.pem")
    assert code == watch_cli.EXIT_CANNOT_START
    assert "nope.pem" in capsys.readouterr().err


# -- the RTSP re-stream ---------------------------------------------------------------------


def read_line(process: subprocess.Popen[str], prefix: str, timeout_s: float) -> str:
    """The first stdout line of ``process`` starting with ``prefix`` (bounded wait)."""
    assert process.stdout is not None
    for _ in range(200):  # bounded: lines before the one we want
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        assert ready, f"no {prefix!r} line within {timeout_s} s"
        line = process.stdout.readline()
        assert line, f"watch ended before printing {prefix!r}"
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no {prefix!r} line")


def read_back(url: str, attempts: int = 15) -> np.ndarray | None:
    """One decoded frame of an RTSP URL (the mount appears with the first frame: retry)."""
    for _ in range(attempts):
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        try:
            if capture.isOpened():
                for _ in range(30):
                    ok, image = capture.read()
                    if ok:
                        return image
        finally:
            capture.release()
        threading.Event().wait(0.5)
    return None


@pytest.mark.timeout(120)
def test_restream_through_watch_carries_the_overlay(server_factory: object, tmp_path: Path) -> None:
    from camera_tools.restream import SYSTEM_PYTHON, RestreamUnavailableError, RtspRestreamer

    try:  # skip where GStreamer's RTSP server is missing (the error names the packages)
        RtspRestreamer(port=0, python=SYSTEM_PYTHON).close()
    except RestreamUnavailableError as exc:
        pytest.skip(str(exc))
    # given a blue clip (the tiny model's "blue") whose badge colour stands out from the scene
    server = server_factory()  # type: ignore[operator]
    scene = np.full((SIZE[1], SIZE[0], 3), (255, 0, 0), np.uint8)
    clip = write_stretches(tmp_path / "blue.mp4", [(scene, 60.0)])
    badge = label_color("blue")
    assert np.abs(np.array(badge) - scene[0, 0]).max() > 80

    # when watch re-streams it
    process = subprocess.Popen(
        [str(STREAM_CLASSIFY), "watch", str(clip), "--server", server.address, "--realtime",
         "--restream", "rtsp://127.0.0.1:0/", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = read_line(process, "re-stream of", timeout_s=60)
        url = line.rsplit(": ", 1)[1]
        assert url.startswith("rtsp://127.0.0.1:")
        decoded = read_back(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            assert process.stdout is not None
            process.stdout.close()

    # then the decoded video shows the blue scene with the label's badge at the top left
    assert decoded is not None, "no frame read back from the re-stream"
    cv2.imwrite(str(tmp_path / "restream.png"), decoded)
    assert decoded.shape == (SIZE[1], SIZE[0], 3)
    assert np.abs(decoded[150:220, 150:300].astype(int) - scene[0, 0]).max(axis=2).mean() < 30
    near = np.abs(decoded[:30, :80].astype(int) - badge).max(axis=2) < 40
    assert near.mean() > 0.25
    assert process.returncode == 0


# -- the overlay of recordings ----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_recording_has_the_badge_and_the_label_strip(
    server_factory: object, tmp_path: Path
) -> None:
    # given a green clip (the tiny model's "green")
    server = server_factory()  # type: ignore[operator]
    scene = np.full((SIZE[1], SIZE[0], 3), (0, 255, 0), np.uint8)
    clip = write_stretches(tmp_path / "green.mp4", [(scene, 3.0)])
    record = tmp_path / "annotated.mp4"

    # when it is recorded
    assert run_watch(clip, "--server", server.address, "--record", record) == 0

    # then the last frame has the label's badge at the top left and its strip along the bottom
    capture = cv2.VideoCapture(str(record))
    last = None
    for _ in range(100):  # bounded: the clip has 30 frames
        ok, image = capture.read()
        if not ok:
            break
        last = image
    capture.release()
    assert last is not None
    colour = np.array(label_color("green"))
    badge = np.abs(last[:30, :80].astype(int) - colour).max(axis=2) < 40
    assert badge.mean() > 0.25
    strip = last[-4:, -40:].astype(int)  # the newest seconds are at the right end
    assert np.abs(strip - colour).max(axis=2).mean() < 40
    assert np.abs(last[100:140, 150:250].astype(int) - scene[0, 0]).max(axis=2).mean() < 30


# -- a stalled browser ------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_stalled_viewer_never_slows_classification(
    server_factory: object, tmp_path: Path
) -> None:
    # given watch with its web view on a clip played at its own pace
    server = server_factory()  # type: ignore[operator]
    width, height = SIZE
    clip = write_stretches(tmp_path / "bars.mp4", [(colour_bars(width, height), 6.0)])
    frames = tmp_path / "frames.csv"
    process = subprocess.Popen(
        [str(STREAM_CLASSIFY), "watch", str(clip), "--server", server.address, "--realtime",
         "--csv", str(frames), "--web", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    stalled = socket.socket()
    try:
        url = read_line(process, "web view:", timeout_s=60).removeprefix("web view: ")
        with urllib.request.urlopen(url + "api/sources", timeout=10) as response:
            (source,) = json.load(response)["sources"]
        # when a viewer opens the video and never reads a byte of it
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        address = urllib.parse.urlsplit(url)
        stalled.connect((address.hostname, address.port))
        stalled.sendall(f"GET /stream/{source['slug']}.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        code = process.wait(timeout=90)
    finally:
        stalled.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()

    # then every frame was classified and watch ended normally
    assert code == 0
    assert csv_rows(frames) == 60
