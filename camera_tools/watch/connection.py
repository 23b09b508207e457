"""The one classification-server connection that every watched source shares.

Losing the server makes every source's stream fail at once; the first source loop to notice
calls :meth:`ServerConnection.recover`, which reconnects with capped exponential backoff while
the others wait on its lock, so N failing streams cause one reconnect, not N. Its state changes
are published like a source's, under :func:`server_id`.

Behind a balancer (a proxy, or ``round_robin`` over several addresses) losing one replica is not
losing the server: :meth:`~ServerConnection.recover` first asks the server, through the same
balancer, whether it still answers, and keeps the connection (and every other source's stream)
when it does; the caller then simply reopens its own stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from camera_tools.backoff import Backoff
from camera_tools.redact import redact_url
from camera_tools.states import SourceEvent, SourceState, announce_state
from camera_tools.watch.watch_config import WatchConfig
from camera_tools.watch.watch_errors import ServerUnavailableError
from client import ClassifierClientError, ModelInfo, StreamClient

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 2.0  # a server that answers at all answers GetModelInfo well within this


def server_id(server: str) -> str:
    """The id under which the connection to ``server`` publishes its state changes."""
    return f"server {server}"


def fetch_model_info(config: WatchConfig, timeout_s: float = _PROBE_TIMEOUT_S) -> ModelInfo:
    """The server's model as it is now, asked on a short-lived connection of its own.

    The shared connection's :attr:`~client.StreamClient.model_info` is the model of when it
    connected; after a model swap, only a new ``GetModelInfo`` tells the new labels.

    Raises:
        ClassifierClientError: The server did not answer within ``timeout_s``.
    """
    client = StreamClient(
        config.server,
        connect_timeout=timeout_s,
        client_id=config.client_id,
        credentials=config.credentials,
        token=config.token,
        load_balancing=config.load_balancing,
    )
    try:
        return client.model_info
    finally:
        client.close()


class ServerConnection:
    """One :class:`StreamClient` shared by every source, replaced when the server is lost.

    A generation number tells a worker whether the connection it saw fail has already been
    replaced by another worker, so N failing streams cause one reconnect, not N.
    """

    def __init__(
        self,
        config: WatchConfig,
        stop: threading.Event,
        on_event: Callable[[SourceEvent], None] | None,
    ) -> None:
        self._config = config
        self._stop = stop
        self._on_event = on_event
        self._lock = threading.Lock()
        self._client: StreamClient | None = None
        self._generation = 0
        self._state: SourceState | None = None
        self.failed_reason = ""
        self.name = server_id(config.server)

    def connect(self) -> None:
        """First connection: waits up to the connect timeout for a server that is starting."""
        self._set_state(SourceState.CONNECTING)
        try:
            client = self._new_client(wait_for_ready=True)
        except ClassifierClientError as exc:
            self._set_state(SourceState.FAILED, reason=exc.details)
            raise ServerUnavailableError(str(exc)) from exc
        with self._lock:
            self._client = client
        self._set_state(SourceState.CONNECTED, reason=_describe(client))

    def lease(self) -> tuple[StreamClient, int] | None:
        """The current client and its generation; ``None`` once given up or closed."""
        with self._lock:
            if self._client is None:
                return None
            return self._client, self._generation

    def recover(self, generation: int, reason: str) -> None:
        """Replace the client of ``generation`` after a failure, unless the server still answers.

        A no-op when another source already replaced that client, or when the server answers a
        probe: then only the caller's replica was lost, and the caller reopens its stream.
        """
        with self._lock:
            if generation != self._generation or self._client is None:
                return
            if self._answers():
                logger.info("%s: still answers (%s); only one replica was lost", self.name, reason)
                return
            self._client.close()  # cancels the other sources' dead streams too
            self._client = None
            self._set_state(SourceState.STALLED, reason=reason)
            backoff = Backoff(self._config.reconnect)
            while not self._stop.is_set():
                delay = backoff.next_delay()
                if delay is None:
                    self.failed_reason = (
                        f"gave up after {backoff.attempt} reconnect attempts ({reason})"
                    )
                    self._set_state(SourceState.FAILED, reason=self.failed_reason)
                    return
                self._set_state(
                    SourceState.RECONNECTING, attempt=backoff.attempt, delay_s=delay, reason=reason
                )
                if self._stop.wait(delay):
                    return
                try:
                    client = self._new_client(wait_for_ready=False)
                except ClassifierClientError as exc:
                    reason = exc.details
                    logger.debug("%s: attempt %d failed: %s", self.name, backoff.attempt, exc)
                    continue
                self._client = client
                self._generation += 1
                self._set_state(SourceState.CONNECTED, reason=_describe(client))
                return

    def _answers(self) -> bool:
        """Whether the server, through a new channel and the balancer, answers ``GetModelInfo``."""
        try:
            probe = self._new_client(wait_for_ready=False, timeout=_PROBE_TIMEOUT_S)
        except ClassifierClientError as exc:
            logger.debug("%s: probe failed: %s", self.name, exc)
            return False
        probe.close()
        return True

    def _new_client(self, *, wait_for_ready: bool, timeout: float | None = None) -> StreamClient:
        config = self._config
        return StreamClient(
            config.server,
            connect_timeout=config.connect_timeout_s if timeout is None else timeout,
            wait_for_ready=wait_for_ready,
            client_id=config.client_id,
            credentials=config.credentials,
            token=config.token,
            load_balancing=config.load_balancing,
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _set_state(
        self,
        state: SourceState,
        *,
        attempt: int = 0,
        delay_s: float | None = None,
        reason: str = "",
    ) -> None:
        previous, self._state = self._state, state
        if previous is state and state is not SourceState.RECONNECTING:
            return
        reason = redact_url(reason)
        event = SourceEvent(self.name, state, previous, time.time(), attempt, delay_s, reason)
        announce_state(event, self._on_event, logger)


def _describe(client: StreamClient) -> str:
    info = client.model_info
    return f"model {info.model_name or '?'} ({len(info.labels)} labels, input {info.input_width}x{info.input_height})"
