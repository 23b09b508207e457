"""``JsonLogFormatter``: one JSON object per log record, on one line."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.logformat import JsonLogFormatter


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the formatter into a buffer, cut off from the root logger."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("tests.logformat")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_record_is_one_object_with_utc_time_level_logger_and_message(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = log
    before = dt.datetime.now(dt.UTC)
    logger.warning("lost %s after %d frames", "cam1", 12)
    after = dt.datetime.now(dt.UTC)

    [record] = records(buffer)
    assert list(record) == ["time", "level", "logger", "message"]
    assert record["level"] == "WARNING" and record["logger"] == "tests.logformat"
    assert record["message"] == "lost cam1 after 12 frames"
    assert record["time"].endswith("Z")
    at = dt.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    assert before - dt.timedelta(milliseconds=1) <= at <= after


def test_extra_fields_follow_and_never_replace_the_standard_keys(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = log
    logger.info(
        "frame answered",
        extra={"source": "cam1", "seq": 7, "path": Path("/tmp/x"), "level": "forged"},
    )
    [record] = records(buffer)
    assert record["level"] == "INFO"  # an extra field cannot pass for the level
    assert record["source"] == "cam1" and record["seq"] == 7
    assert record["path"] == "/tmp/x"  # not JSON-serialisable: written as its str()


def test_exceptions_and_stacks_travel_as_text_inside_the_one_line(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = log
    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("decode failed")
    logger.debug("here", stack_info=True)

    failed, here = records(buffer)
    assert len(buffer.getvalue().splitlines()) == 2
    assert failed["level"] == "ERROR" and failed["message"] == "decode failed"
    assert (
        failed["exception"].startswith("Traceback")
        and "ValueError: bad frame" in failed["exception"]
    )
    assert "stack" in here and "test_exceptions_and_stacks" in here["stack"]
    assert "exception" not in here


@pytest.mark.parametrize(
    "hostile",
    [
        'cam "1"\n{"level": "CRITICAL", "message": "forged"}',
        "line\r\nbreak and \x1b[31mred terminal\x1b[0m and \x00 nul",
        "unicode \u2028 line separator, \u00e9t\u00e9, \U0001f4f7",
    ],
)
def test_client_and_source_strings_stay_escaped_on_one_ascii_line(
    log: tuple[logging.Logger, io.StringIO], hostile: str
) -> None:
    logger, buffer = log
    logger.warning("%s: stalled", hostile, extra={"source": hostile})

    text = buffer.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.isascii() and "\x1b" not in text and "\r" not in text
    [record] = records(buffer)
    assert record["message"] == f"{hostile}: stalled" and record["source"] == hostile
