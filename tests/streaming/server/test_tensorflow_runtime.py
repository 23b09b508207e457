"""The pieces that keep TensorFlow's start-up quiet and single, without TensorFlow (unit tier).

``serve`` itself is tested end to end in test_serve_startup.py.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from streaming.server.tensorflow_runtime import (
    NATIVE_LINE,
    DeferredExtension,
    defer_extension,
    native_stderr_to_log,
)


@pytest.mark.parametrize(
    ("line", "native"),
    [
        (
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
            True,
        ),
        (
            "I0000 00:00:1796375732.071814   13485 cudart_stub.cc:31] Could not find cuda drivers",
            True,
        ),
        (
            "E0000 00:00:1796375744.648708   13485 cuda_platform.cc:52] failed call to cuInit: x",
            True,
        ),
        ("W1204 09:15:46.441000  1234 loader.cc:12] some warning", True),
        ("To enable the following instructions: AVX2 FMA, in other operations, rebuild", True),
        ("2026-12-04 09:15:46,441 INFO streaming.server: listening on 127.0.0.1:0", False),
        ('{"time": "2026-12-04T09:15:46Z", "level": "INFO", "message": "I0000"}', False),
        ("Traceback (most recent call last):", False),
        ("I0000 is not a log line", False),
    ],
)
def test_native_line_pattern(line: str, native: bool) -> None:
    assert bool(NATIVE_LINE.match(line)) is native


def test_native_lines_become_debug_records_others_are_written_back(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="streaming.server.tensorflow_runtime")
    with native_stderr_to_log("tensorflow"):
        os.write(2, b"I0000 00:00:1796375732.071814   13485 cudart_stub.cc:31] no cuda\n")
        os.write(2, b"a line of someone else\n")
        print("python's own stderr", file=sys.stderr)

    err = capfd.readouterr().err
    assert "cudart_stub" not in err
    assert "a line of someone else" in err and "python's own stderr" in err
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "cudart_stub.cc:31] no cuda" in caplog.records[0].getMessage()


def test_caught_lines_are_handed_on_when_the_import_fails(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ImportError), native_stderr_to_log("tensorflow"):
        os.write(2, b"ImportError context the user needs\n")
        raise ImportError("no tensorflow")
    assert "ImportError context the user needs" in capfd.readouterr().err
    os.write(2, b"after\n")  # file descriptor 2 is the real one again
    assert capfd.readouterr().err == "after\n"


def test_deferred_extension_loads_on_first_use_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a module that records being imported, put off
    (tmp_path / "heavy_thing.py").write_text("import sys\nsys.heavy_loads += 1\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "heavy_loads", 0, raising=False)
    monkeypatch.delitem(sys.modules, "heavy_thing", raising=False)
    assert defer_extension("heavy_thing")
    import heavy_thing  # what TensorFlow's profiler client does at import

    # then nothing is loaded by importing it or looking at its dunders
    assert isinstance(heavy_thing, DeferredExtension)
    assert not hasattr(heavy_thing, "__file__")
    assert sys.heavy_loads == 0  # type: ignore[attr-defined]

    # when a name is used, then it is loaded once and the names are the real module's
    assert heavy_thing.VALUE == 42
    assert heavy_thing.VALUE == 42
    assert sys.heavy_loads == 1  # type: ignore[attr-defined]
    assert sys.modules["heavy_thing"] is not heavy_thing
    with pytest.raises(AttributeError):
        _ = heavy_thing.MISSING
    assert not defer_extension("heavy_thing")  # already there: left alone
