"""Where alert events go: console, JSONL file, a command, a webhook.

Every output is called from the thread that raised the event (the watch runner), so none may
block or raise: the command and the webhook run on their own background thread behind a
bounded queue that drops the oldest event (counted, with a warning) when full, and every
failure is logged. :class:`AlertOutputs` fans one event out to all of them.
"""

from __future__ import annotations

import collections
import http.client
import logging
import os
import shlex
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from camera_tools.alerts import AlertEvent
from camera_tools.backoff import Backoff, BackoffPolicy
from camera_tools.camera_errors import SinkError
from camera_tools.redact import redact_url

logger = logging.getLogger(__name__)


class AlertOutput(Protocol):
    """Receives alert events; must not block for long nor raise."""

    def send(self, event: AlertEvent) -> None: ...

    def close(self) -> None: ...


class ConsoleAlertOutput:
    """One line per event on ``stream`` (the CLI's stdout)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def send(self, event: AlertEvent) -> None:
        self._stream.write(event.describe() + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""


class JsonlAlertOutput:
    """Appends one JSON object per event to a file (``--events PATH``), flushed at once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot open events file {self.path}: {exc}") from exc

    def send(self, event: AlertEvent) -> None:
        if self._file is None:
            raise SinkError(f"events file {self.path} is closed")
        self._file.write(event.to_json() + "\n")
        self._file.flush()  # events are rare and someone may be tailing the file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class BackgroundSender:
    """Runs ``deliver`` for each event on one daemon thread, behind a bounded queue.

    ``submit`` never blocks: when the queue is full the oldest waiting event is dropped and
    counted (a stale alert is worth less than the newest one).

    Args:
        name: Thread name and log prefix.
        deliver: Sends one event; may raise (logged) and may take long (the caller never waits).
        max_queue: Events waiting at most.
    """

    def __init__(
        self, name: str, deliver: Callable[[AlertEvent], None], *, max_queue: int = 100
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.name = name
        self._deliver = deliver
        self._max_queue = max_queue
        self._queue: collections.deque[AlertEvent] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, event: AlertEvent) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.dropped += 1
                logger.warning(
                    "%s: queue full (%d), dropped the oldest event (%d dropped so far)",
                    self.name,
                    self._max_queue,
                    self.dropped,
                )
            self._queue.append(event)
            self._cond.notify()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking events, let the one being delivered finish within ``timeout_s``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            logger.warning("%s: still delivering after %.1f s; left behind", self.name, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    if self._queue:
                        logger.warning(
                            "%s: closing with %d undelivered events", self.name, len(self._queue)
                        )
                    return
                event = self._queue.popleft()
            try:
                self._deliver(event)
                self.delivered += 1
            except Exception:  # one bad delivery must not end the thread
                self.failed += 1
                logger.exception("%s: could not deliver %s", self.name, event.describe())


class BackgroundAlertOutput:
    """An output whose delivery runs on a :class:`BackgroundSender` (``send`` never waits).

    Args:
        name: The sender's thread name and log prefix.
        deliver: Sends one event on the sender's thread.
        timeout_s: One delivery's bound; closing waits one second longer for it to finish.
        max_queue: Events waiting at most.
    """

    def __init__(
        self,
        name: str,
        deliver: Callable[[AlertEvent], None],
        *,
        timeout_s: float,
        max_queue: int,
    ) -> None:
        self.timeout_s = timeout_s
        self._sender = BackgroundSender(name, deliver, max_queue=max_queue)

    @property
    def sender(self) -> BackgroundSender:
        return self._sender

    def send(self, event: AlertEvent) -> None:
        self._sender.submit(event)

    def close(self) -> None:
        self._sender.close(timeout_s=self.timeout_s + 1)


def event_environment(event: AlertEvent) -> dict[str, str]:
    """The ``ALERT_*`` environment variables a hook command receives."""
    data = event.to_dict()
    env = {
        f"ALERT_{key.upper()}": "" if value is None else str(value) for key, value in data.items()
    }
    env["ALERT_JSON"] = event.to_json()
    return env


class CommandAlertOutput(BackgroundAlertOutput):
    """Runs a command per event (``--on-alert CMD``), off the caller's thread.

    The command line is split like a shell would (no shell runs it: wrap it in ``sh -c`` for
    pipes); it gets the event as JSON on stdin and as ``ALERT_*`` environment variables. A
    non-zero exit, a missing program or a command that outlives ``timeout_s`` (killed) is
    logged; watching goes on.
    """

    def __init__(self, command: str, *, timeout_s: float = 10.0, max_queue: int = 100) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("--on-alert needs a command")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        super().__init__("alert-command", self._run, timeout_s=timeout_s, max_queue=max_queue)

    def _run(self, event: AlertEvent) -> None:
        try:
            done = subprocess.run(
                self.argv,
                input=event.to_json() + "\n",
                text=True,
                env={**os.environ, **event_environment(event)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:  # run() has killed it
            raise SinkError(f"alert command {self.argv[0]} ran over {self.timeout_s:g} s") from None
        except OSError as exc:
            raise SinkError(f"cannot run alert command {self.argv[0]}: {exc}") from None
        if done.returncode != 0:
            raise SinkError(
                f"alert command {self.argv[0]} exited with {done.returncode}: "
                f"{done.stderr.strip()[-300:]}"
            )


WEBHOOK_BACKOFF = BackoffPolicy(initial_delay=0.5, max_delay=30.0, jitter=0.2, max_retries=5)
"""Webhook retries: about a minute of trying before an event is given up."""


class WebhookAlertOutput(BackgroundAlertOutput):
    """POSTs each event as JSON to a URL (``--webhook URL``), off the caller's thread.

    Failed posts (connection refused, timeout, HTTP status >= 300) are retried with
    ``backoff``; an event still failing when the retries run out is logged and dropped.
    Closing stops the retries at once.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        backoff: BackoffPolicy = WEBHOOK_BACKOFF,
        max_queue: int = 100,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--webhook needs an http:// or https:// URL, got {redact_url(url)!r}")
        self.url = url
        self.backoff = backoff
        self._stop = threading.Event()
        super().__init__(
            "alert-webhook", self._post_with_retries, timeout_s=timeout_s, max_queue=max_queue
        )

    def close(self) -> None:
        self._stop.set()  # a retry waiting out its backoff gives up at once
        super().close()

    def _post_with_retries(self, event: AlertEvent) -> None:
        tracker = Backoff(self.backoff)
        body = event.to_json().encode("utf-8")
        while True:
            try:
                self._post(body)
                return
            except (OSError, http.client.HTTPException) as exc:  # URLError/HTTPError are OSErrors
                delay = tracker.next_delay()
                if delay is None or self._stop.is_set():
                    raise SinkError(
                        f"webhook {redact_url(self.url)} failed after {tracker.attempt} retries: {exc}"
                    ) from None
                logger.info(
                    "webhook %s failed (%s); retry in %.1f s", redact_url(self.url), exc, delay
                )
                if self._stop.wait(delay):
                    raise SinkError(
                        f"webhook {redact_url(self.url)}: closed while retrying"
                    ) from None

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


class AlertOutputs:
    """Sends every event to every output; an output that raises is logged and skipped.

    Use as the :class:`~camera_tools.alerts.AlertMonitor`'s ``on_event`` callback (it is
    callable), and feed it to the web view too through ``extra``.
    """

    def __init__(
        self,
        outputs: Sequence[AlertOutput],
        *,
        extra: Sequence[Callable[[AlertEvent], None]] = (),
    ) -> None:
        self.outputs = list(outputs)
        self._extra = list(extra)

    def __call__(self, event: AlertEvent) -> None:
        logger.info("%s", event.describe())
        targets: list[Callable[[AlertEvent], None]] = [o.send for o in self.outputs]
        for send in [*targets, *self._extra]:
            try:
                send(event)
            except Exception:
                logger.exception("alert output failed for %s", event.describe())

    def close(self) -> None:
        for output in self.outputs:
            try:
                output.close()
            except Exception:
                logger.exception("closing alert output %s failed", type(output).__name__)
