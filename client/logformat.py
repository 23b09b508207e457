"""Log records as JSON lines: :class:`JsonLogFormatter`, for log collectors rather than people.

The client package is the base layer, so every command (``serve``, ``watch``, ``classify``)
formats its logs with this one class when asked for ``--log-format json``.

Example:
    >>> import logging
    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(JsonLogFormatter())
    >>> logging.getLogger().addHandler(handler)
    >>> logging.getLogger("camera").warning("lost %s", "cam1", extra={"attempt": 3})  # doctest: +SKIP
    {"time": "2026-11-28T13:23:10.123Z", "level": "WARNING", "logger": "camera", "message": "lost cam1", "attempt": 3}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonLogFormatter(logging.Formatter):
    """Formats each record as one JSON object on one line.

    Keys: ``time`` (ISO-8601 UTC, milliseconds), ``level``, ``logger``, ``message``,
    ``exception`` (the traceback text, when the record carries one), ``stack`` (with
    ``stack_info=True``), then every ``extra=`` field; an extra field never replaces one of
    those keys. Values JSON cannot carry are written as their ``str()``.

    Strings that come from clients or sources (ids, URLs, labels) are escaped by JSON itself,
    and the output is ASCII only, so no input can split a record, forge another one or send
    control characters to a terminal.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        }
        entry.update(
            time=_utc_iso(record.created),
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
        )
        if record.exc_info and not record.exc_text:
            # Cached on the record like logging.Formatter does, for the other handlers.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # Core keys first, in a fixed order, so the lines read well when a person looks too.
        core = ("time", "level", "logger", "message", "exception", "stack")
        ordered = {key: entry[key] for key in core if key in entry}
        ordered.update((key, value) for key, value in entry.items() if key not in ordered)
        return json.dumps(ordered, default=str, ensure_ascii=True)


def _utc_iso(timestamp: float) -> str:
    """``2026-11-28T13:23:10.123Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
