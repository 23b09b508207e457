"""`stream-classify label`: what stops it from starting is said in one line, exit status 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streaming.cli import main

from .collected import write_collected


@pytest.mark.parametrize(
    ("setup", "flags", "error"),
    [
        ("none", [], "has no collected.jsonl: is it a `watch --collect` folder?"),
        ("collected", ["--web", "8090"], "expected HOST:PORT"),
        ("collected", ["--new-labels", "ok,../bad"], "'../bad' cannot be a label"),
        ("collected", ["--lease-s", "0"], "the lease must be > 0 seconds"),
        ("collected", ["--web-token", ""], "the web token must not be empty"),
        ("busy", [], "cannot serve the label page on 127.0.0.1:"),
    ],
)
def test_cannot_start(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    flags: list[str],
    error: str,
) -> None:
    folder = tmp_path / "collected"
    folder.mkdir()
    if setup != "none":
        write_collected(folder, 2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        web = ["--web", f"127.0.0.1:{busy.getsockname()[1]}"] if setup == "busy" else []
        code = main(["label", str(folder), "--dataset", str(tmp_path / "out"), *web, *flags])
    assert code == 2
    assert error in capsys.readouterr().err


def test_orders_are_choices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["label", str(tmp_path), "--dataset", str(tmp_path / "o"), "--order", "random"])
    assert "invalid choice: 'random'" in capsys.readouterr().err
