"""``HOST:PORT`` for every address a command binds: one parser, one meaning.

Used by ``serve --metrics-address``, ``watch --metrics-address`` and ``watch --web``. An empty
host (``:9100``) means loopback, never every interface: opening a port to the network is a
decision the user writes down (``0.0.0.0:9100``, ``[::]:9100``). It lives in ``client``, the
base layer, so the server and the camera tools share it.
"""

from __future__ import annotations

LOOPBACK = "127.0.0.1"


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6, ``:PORT`` for loopback) to host and port.

    Port 0 asks the system for a free port.

    >>> parse_host_port("0.0.0.0:9100")
    ('0.0.0.0', 9100)
    >>> parse_host_port("[::1]:0")
    ('::1', 0)
    >>> parse_host_port(":9100")
    ('127.0.0.1', 9100)

    Raises:
        ValueError: No port, a port that is not ASCII digits or is over 65535, an IPv6 address
            without brackets, or brackets around nothing.
    """
    host, sep, port_text = text.rpartition(":")
    # isdigit() alone accepts "²", which int() then refuses with a message of its own.
    if not sep or not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9100), got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be 0..65535, got {port} in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host:
            raise ValueError(f"empty IPv6 address in {text!r}")
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"an IPv6 address needs brackets, e.g. [::1]:9100, got {text!r}")
    return host or LOOPBACK, port


def format_host_port(host: str, port: int) -> str:
    """The inverse of :func:`parse_host_port` (brackets around IPv6 addresses).

    >>> format_host_port("::1", 9100), format_host_port("127.0.0.1", 80)
    ('[::1]:9100', '127.0.0.1:80')
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
