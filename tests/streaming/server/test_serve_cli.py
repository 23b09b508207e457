"""`serve` flags: declared once on the config, the old spellings kept, the reference generated."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

import pytest

from streaming.server.config_flags import add_flags, flag
from streaming.server.serve_cli import (
    MARK_BEGIN,
    MARK_END,
    add_arguments,
    flags_markdown,
    serve_config,
    with_flags_table,
)
from streaming.server.serve_config import ServerConfig
from streaming.server.server_errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


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


# Every option string `serve` had before its flags were declared on the config: none may go.
EVERY_FLAG = [
    "--OHE",
    "--auth-tokens",
    "--config-timeout",
    "--room-timeout",
    "--decode-priority",
    "--device",
    "--frame-budget",
    "--gpu-memory-mb",
    "--grace",
    "--input-size",
    "--intra-op-threads",
    "--keepalive",
    "--keepalive-timeout",
    "--laddr",
    "--legacy-idle",
    "--legacy-max-images",
    "--legacy-max-windows",
    "--live-depth",
    "--log-format",
    "--max-batch",
    "--max-calls-per-connection",
    "--max-delay-ms",
    "--max-frame-pixels",
    "--max-frame-side",
    "--max-streams",
    "--max-top-k",
    "--max-window",
    "--mean",
    "--memory-budget",
    "--metrics-address",
    "--model-dir",
    "--model-poll-s",
    "--model-version",
    "--msg_len",
    "--null-model",
    "--onnx-layout",
    "--processes",
    "--receive-window",
    "--reflection",
    "--sc_window",
    "--scaling",
    "--server_ip",
    "--softmax",
    "--std",
    "--stream-buffer",
    "--temporal-cue",
    "--tls-cert",
    "--tls-client-ca",
    "--tls-key",
    "--top-k",
    "--workers",
    "-h",
    "--help",
    "-ip",
    "-la",
    "-msg",
    "-ohe",
    "-scw",
    "-wrk",
]
NOT_CONFIG = {"-h", "--help", "--log-format"}  # argparse's, and the front door's


def test_every_flag_of_today_is_still_accepted() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    spelled = {name for action in parser._actions for name in action.option_strings}
    assert spelled == set(EVERY_FLAG)


def test_no_flags_give_the_configs_defaults() -> None:
    assert parse() == ServerConfig()


@pytest.mark.parametrize(
    ("argv", "attribute", "expected"),
    [
        # the original server's short and long spellings
        (["-scw", "7"], "window", 7),
        (["--sc_window", "7"], "window", 7),
        (["-ip", "127.0.0.1:4321"], "address", "127.0.0.1:4321"),
        (["--server_ip", "[::1]:0"], "address", "[::1]:0"),
        (["-msg", "2048"], "max_message_bytes", 2048),
        (["--msg_len", "4096"], "max_message_bytes", 4096),
        (["-wrk", "3"], "workers", 3),
        (["--workers", "2"], "workers", 2),
        (["-ohe", "labels.pkl"], "model.labels_path", Path("labels.pkl")),
        (["--OHE", "labels.txt"], "model.labels_path", Path("labels.txt")),
        (["-la", "model.keras"], "model.model_path", Path("model.keras")),
        (["--laddr", "saved/"], "model.model_path", Path("saved")),
        # flags whose field has another name
        (["--grace", "2.5"], "grace_s", 2.5),
        (["--config-timeout", "1"], "config_timeout_s", 1.0),
        (["--room-timeout", "2.5"], "room_timeout_s", 2.5),
        (["--receive-window", "1M"], "receive_window_bytes", 2**20),
        (["--null-model", "4"], "model.null_classes", 4),
        (["--reflection", "off"], "security.reflection", False),
        (["--input-size", "64x32"], "model.input_size", (64, 32)),
        (["--onnx-layout", "nchw"], "model.onnx_layout", "nchw"),
        (["--decode-priority", "normal"], "decode_priority", "normal"),
        (["--mean", "0.5,0.25,0"], "model.mean", (0.5, 0.25, 0.0)),
        (["--metrics-address", ":9100"], "metrics_host_port", ("127.0.0.1", 9100)),
        (["--metrics-address", "0.0.0.0:9100"], "metrics_host_port", ("0.0.0.0", 9100)),
        (["--tls-cert", "c.pem", "--tls-key", "k.pem"], "security.tls", True),
        (["--model-dir", "models"], "model.model_dir", Path("models")),
        (["--model-dir", "m", "--model-poll-s", "0.5"], "model.model_poll_s", 0.5),
        (["--model-dir", "m", "--model-version", "3"], "model.model_version", 3),
        ([], "model.still_labels", ("static",)),
        (["--temporal-cue", "none"], "model.still_labels", ()),
        (["--temporal-cue", "static, snow"], "model.still_labels", ("static", "snow")),
        (["-la", "m.keras"], "model.still_labels", ()),
    ],
)
def test_flags_land_in_the_config(argv: list[str], attribute: str, expected: object) -> None:
    assert attrgetter(attribute)(parse(*argv)) == expected


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["-scw", "five"], argparse.ArgumentError, "invalid int value"),
        (["--reflection", "maybe"], argparse.ArgumentError, "expected on or off"),
        (["--scaling", "log"], argparse.ArgumentError, "invalid choice"),
        (["--onnx-layout", "chw"], argparse.ArgumentError, "invalid choice"),
        (["--decode-priority", "high"], argparse.ArgumentError, "invalid choice"),
        (["--input-size", "64"], argparse.ArgumentError, "expected WIDTHxHEIGHT"),
        (["--temporal-cue", "static,,snow"], argparse.ArgumentError, "comma-separated labels"),
        (["--metrics-address", "9100"], argparse.ArgumentError, "expected HOST:PORT"),
        (["--metrics-address", "::1:9100"], argparse.ArgumentError, "needs brackets"),
        (["-scw", "0"], ConfigError, "window=0"),
        (["--room-timeout", "0"], ConfigError, "room_timeout_s"),
        (["--tls-cert", "c.pem"], ConfigError, "--tls-cert and --tls-key go together"),
        (["--model-dir", "m", "-la", "x.keras"], ConfigError, "not both"),
        (["--model-version", "2"], ConfigError, "give --model-dir"),
        (["--model-dir", "m", "--model-version", "two"], argparse.ArgumentError, "invalid int"),
    ],
)
def test_bad_values_are_refused(argv: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        parse(*argv)


def test_a_config_built_in_code_is_checked_like_the_flags() -> None:
    with pytest.raises(ConfigError, match="decode_priority='high'"):
        ServerConfig(decode_priority="high")


def test_the_flag_reference_is_generated_from_the_declarations() -> None:
    # `make docs` rewrites it; a flag added, renamed or re-documented without it fails here.
    committed = (ROOT / "docs" / "serve-flags.md").read_text(encoding="utf-8")
    assert committed == with_flags_table(committed)
    table = flags_markdown()
    assert "| `-scw`, `--sc_window` | frames averaged per prediction (per stream) | 5 |" in table
    assert all(f"`{name}`" in table for name in EVERY_FLAG if name not in NOT_CONFIG)


def test_the_generated_block_needs_its_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        with_flags_table("# no markers here\n")
    assert with_flags_table(f"a\n{MARK_BEGIN}\nold\n{MARK_END}\nb\n").endswith(f"{MARK_END}\nb\n")


def test_two_declarations_may_not_share_a_destination() -> None:
    @dataclass(frozen=True)
    class Inner:
        port: int = field(default=1, metadata=flag("--inner-port", help="h", group="g"))

    @dataclass(frozen=True)
    class Outer:
        port: int = field(default=2, metadata=flag("--port", help="h", group="g"))
        inner: Inner = field(default_factory=Inner)

    with pytest.raises(ValueError, match="'port'"):
        add_flags(argparse.ArgumentParser(), Outer)
