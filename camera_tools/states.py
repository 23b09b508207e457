"""Lifecycle of a stream: its states, the event that announces each change, and how it is logged.

Capture (:class:`~camera_tools.capture.VideoStream`) publishes these for each source, and the
watch application for its server connection, so both speak one vocabulary to their listeners.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass


class SourceState(enum.Enum):
    """Lifecycle of a :class:`VideoStream`; ENDED and FAILED are final."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    # The source answers but has no stream (a page not live yet, ended, or without video).
    OFFLINE = "offline"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (SourceState.ENDED, SourceState.FAILED)


@dataclass(frozen=True)
class SourceEvent:
    """A state change of a stream, published once per change.

    Attributes:
        source_id: Source identifier, credentials redacted.
        state: The new state.
        previous: The state before, ``None`` for the first event.
        at: Wall-clock time of the change.
        attempt: Reconnect attempt number (0 outside reconnects).
        delay_s: Wait before the next attempt, for RECONNECTING and OFFLINE.
        reason: Short human-readable cause, credentials redacted.
    """

    source_id: str
    state: SourceState
    previous: SourceState | None
    at: float
    attempt: int = 0
    delay_s: float | None = None
    reason: str = ""


_STATE_LEVELS = {
    SourceState.STALLED: logging.WARNING,
    SourceState.RECONNECTING: logging.WARNING,
    SourceState.OFFLINE: logging.WARNING,
    SourceState.FAILED: logging.ERROR,
}


def announce_state(
    event: SourceEvent,
    on_event: Callable[[SourceEvent], None] | None,
    log: logging.Logger,
) -> None:
    """Log a state change on ``log`` (the publisher's logger) and hand it to the callback.

    A failing callback is logged, not raised: a listener's bug must not stop a capture.
    """
    level = _STATE_LEVELS.get(event.state, logging.INFO)
    if event.delay_s is not None:
        log.log(
            level,
            "%s: %s (attempt %d in %.2fs): %s",
            event.source_id,
            event.state.value,
            event.attempt,
            event.delay_s,
            event.reason,
        )
    else:
        reason = f": {event.reason}" if event.reason else ""
        log.log(level, "%s: %s%s", event.source_id, event.state.value, reason)
    if on_event is not None:
        try:
            on_event(event)
        except Exception:
            log.exception("%s: on_event callback failed", event.source_id)
