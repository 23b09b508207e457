"""Command-line flags of the web view: ``--web HOST:PORT`` and ``--web-token``."""

from __future__ import annotations

import argparse


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (loopback) or ``[::1]:PORT`` → (host, port).

    Raises:
        ValueError: Not an address with a port in 0-65535.

    Example:
        >>> parse_bind("127.0.0.1:8080"), parse_bind(":9000"), parse_bind("[::1]:80")
        (('127.0.0.1', 8080), ('127.0.0.1', 9000), ('::1', 80))
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def _bind(text: str) -> tuple[str, int]:
    try:
        return parse_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("web view")
    group.add_argument(
        "--web",
        type=_bind,
        metavar="HOST:PORT",
        help="serve a live page of every source (e.g. 127.0.0.1:8080; loopback unless a "
        "host is given, then use --web-token)",
    )
    group.add_argument(
        "--web-token",
        metavar="TOKEN",
        help="require ?token=TOKEN or 'Authorization: Bearer TOKEN' on every web request",
    )
