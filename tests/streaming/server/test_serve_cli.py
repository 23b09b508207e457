"""`serve` flags that take sizes: --memory-budget."""

from __future__ import annotations

import argparse

import pytest

from streaming.server.serve_cli import add_arguments, serve_config
from streaming.server.serve_config import ServerConfig


def parse(*argv: str) -> ServerConfig:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return serve_config(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("512M", 512 * 2**20, id="mebibytes"),
        pytest.param("2G", 2 * 2**30, id="gibibytes"),
        pytest.param("1.5g", 3 * 2**29, id="fraction-lower-case"),
        pytest.param("64MiB", 64 * 2**20, id="mib-suffix"),
        pytest.param("300KB", 300 * 2**10, id="kb-suffix"),
        pytest.param("1000000", 1_000_000, id="plain-bytes"),
    ],
)
def test_memory_budget_takes_human_sizes(text: str, expected: int) -> None:
    assert parse("--memory-budget", text).memory_budget_bytes == expected


def test_memory_budget_defaults_to_one_gibibyte() -> None:
    assert parse().memory_budget_bytes == 2**30


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "lots", "1X", "inf", "nan"])
def test_memory_budget_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(argparse.ArgumentError, match="size"):
        parse(f"--memory-budget={text}")
