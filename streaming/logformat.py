"""``--log-format json``: one JSON object per log line, for log collectors (Loki, Elasticsearch, ...).

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> handler = logging.StreamHandler(stream)
    >>> handler.setFormatter(JsonFormatter())
    >>> log = logging.getLogger("demo.json")
    >>> log.addHandler(handler); log.propagate = False
    >>> log.warning("stream %d closed", 7)
    >>> json.loads(stream.getvalue())["message"]
    'stream 7 closed'
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` plus ``exc_info`` when there is a traceback.

    The message is formatted with its arguments here, so the line is complete on its own; any
    newline inside it is escaped by JSON, so one record is always exactly one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def use_log_format(log_format: LogFormat) -> None:
    """Switch the root logger's handlers (set up by the CLI) to ``log_format``."""
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
