"""``client.host_port``: the one ``HOST:PORT`` parser, good and bad inputs in one table."""

from __future__ import annotations

import re

import pytest

from client.host_port import LOOPBACK, format_host_port, parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),  # every interface only when written down
        ("localhost:0", ("localhost", 0)),
        ("metrics.example:80", ("metrics.example", 80)),
        ("[::1]:9100", ("::1", 9100)),
        ("[::]:65535", ("::", 65535)),
        ("[fe80::1%eth0]:8080", ("fe80::1%eth0", 8080)),
        (":9100", (LOOPBACK, 9100)),  # no host: loopback, never every interface
        (":0", (LOOPBACK, 0)),
        ("9100", "expected HOST:PORT (e.g. 127.0.0.1:9100), got '9100'"),
        ("", "expected HOST:PORT"),
        ("host:", "expected HOST:PORT"),
        (":", "expected HOST:PORT"),
        ("host:http", "expected HOST:PORT"),
        ("host:-1", "expected HOST:PORT"),
        ("host: 80", "expected HOST:PORT"),
        ("host:²", "expected HOST:PORT"),  # isdigit() but not int()
        ("host:٣", "expected HOST:PORT"),  # an Arabic-Indic 3: digits are ASCII only
        ("[::1]", "expected HOST:PORT"),
        ("host:65536", "port must be 0..65535, got 65536"),
        ("host:99999999999999999999", "port must be 0..65535"),
        ("::1:9100", "an IPv6 address needs brackets"),
        ("[::1:9100", "an IPv6 address needs brackets"),
        ("[]:9100", "empty IPv6 address"),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=re.escape(expected)):
            parse_host_port(text)
    else:
        assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:9100", "[::1]:0", "[::]:65535", "host:80"])
def test_format_is_the_inverse_of_parse(text: str) -> None:
    assert format_host_port(*parse_host_port(text)) == text
