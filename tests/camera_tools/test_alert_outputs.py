from __future__ import annotations

import http.server
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camera_tools.alert_outputs import (
    AlertOutputs,
    CommandAlertOutput,
    ConsoleAlertOutput,
    JsonlAlertOutput,
    WebhookAlertOutput,
)
from camera_tools.alerts import AlertEvent, AlertKind, event_from_dict
from camera_tools.backoff import BackoffPolicy
from tests.support import free_port, wait_until

FAST_RETRY = BackoffPolicy(initial_delay=0.01, max_delay=0.05, max_retries=3)


def event(kind: AlertKind = AlertKind.RAISED, source: str = "cam1") -> AlertEvent:
    return AlertEvent(kind, "black:5", source, 1005.0, 1000.0, 5.0, "black", "black for too long")


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self, fail_first: int) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.bodies: list[dict[str, object]] = []
        self.fail_first = fail_first
        self.requests = 0


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests += 1
        if self.server.requests <= self.server.fail_first:
            self.send_response(503)
        else:
            self.server.bodies.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_webhook_posts_json_and_retries_server_errors(receiver: Receiver) -> None:
    webhook = WebhookAlertOutput(
        f"http://127.0.0.1:{receiver.server_port}/hook", backoff=FAST_RETRY
    )
    try:
        webhook.send(event())
        webhook.send(event(AlertKind.CLEARED))
        wait_until(lambda: len(receiver.bodies) == 2, timeout=20)
    finally:
        webhook.close()
    assert [b["kind"] for b in receiver.bodies] == ["raised", "cleared"]
    assert event_from_dict(receiver.bodies[0]) == event()
    assert receiver.requests == 4  # two 503s retried
    assert webhook.sender.delivered == 2 and webhook.sender.failed == 0


def test_dead_webhook_never_blocks_nor_raises() -> None:
    webhook = WebhookAlertOutput(
        f"http://127.0.0.1:{free_port()}/hook", backoff=FAST_RETRY, max_queue=3
    )
    try:
        for i in range(200):  # far more than the queue holds: every call returns at once
            webhook.send(event(source=f"cam{i}"))
        assert webhook.sender.dropped > 0
        wait_until(lambda: webhook.sender.failed >= 1, timeout=20)
    finally:
        webhook.close()
    assert webhook.sender.delivered == 0


def test_command_gets_the_event_on_stdin_and_in_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "hook.json"
    script = (
        "import json, os, sys; "
        f"open({str(out)!r}, 'w').write(json.dumps({{'stdin': sys.stdin.read(), "
        "'rule': os.environ['ALERT_RULE'], 'kind': os.environ['ALERT_KIND'], "
        "'json': os.environ['ALERT_JSON']}))"
    )
    hook = CommandAlertOutput(f"{sys.executable} -c {json.dumps(script)}")
    try:
        hook.send(event())
        wait_until(lambda: hook.sender.delivered == 1, timeout=30)
    finally:
        hook.close()
    seen = json.loads(out.read_text())
    assert json.loads(seen["stdin"]) == event().to_dict()
    assert (seen["rule"], seen["kind"]) == ("black:5", "raised")
    assert json.loads(seen["json"])["source"] == "cam1"


@pytest.mark.parametrize(
    ("command", "timeout_s", "why"),
    [
        (f"{sys.executable} -c 'import sys; sys.exit(3)'", 10.0, "exited with 3"),
        ("/nonexistent/alert-hook", 10.0, "cannot run alert command"),
        # the kill is what is tested, so the timeout is kept short
        (f"{sys.executable} -c 'import time; time.sleep(60)'", 0.3, "ran over 0.3 s"),
    ],
    ids=["fails", "missing", "hangs"],
)
def test_failing_or_hanging_command_is_logged_and_never_raises(
    command: str, timeout_s: float, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = CommandAlertOutput(command, timeout_s=timeout_s, max_queue=2)
    outputs = AlertOutputs([hook])
    try:
        for i in range(50):
            outputs(event(source=f"cam{i}"))
        wait_until(lambda: hook.sender.failed >= 1, timeout=30)
    finally:
        outputs.close()
    assert hook.sender.dropped > 0
    assert "could not deliver" in caplog.text
    assert why in caplog.text


def test_console_and_jsonl_outputs(tmp_path: Path) -> None:
    console = io.StringIO()
    jsonl = JsonlAlertOutput(tmp_path / "sub" / "events.jsonl")
    outputs = AlertOutputs([ConsoleAlertOutput(console), jsonl])
    outputs(event())
    outputs(event(AlertKind.CLEARED))
    outputs.close()
    assert console.getvalue().splitlines()[0].startswith("ALERT raised black:5 on cam1")
    lines = (tmp_path / "sub" / "events.jsonl").read_text().splitlines()
    assert [event_from_dict(json.loads(line)).kind for line in lines] == [
        AlertKind.RAISED,
        AlertKind.CLEARED,
    ]


def test_an_output_that_raises_does_not_stop_the_others() -> None:
    seen: list[AlertEvent] = []

    def broken(_: AlertEvent) -> None:
        raise RuntimeError("boom")

    AlertOutputs([], extra=[broken, seen.append])(event())
    assert seen == [event()]


@pytest.mark.parametrize("url", ["ftp://x/", "127.0.0.1:80", ""])
def test_webhook_rejects_non_http_urls(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookAlertOutput(url)
