"""What the web view is asked to do: :class:`WebOptions` (``watch --web``, ``--web-token``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from client.host_port import LOOPBACK, parse_host_port


@dataclass(frozen=True)
class WebOptions:
    """Where the web view listens and the token it asks for.

    Attributes:
        host: Interface to bind; loopback unless another is asked for (then set a token).
        port: Port to bind; 0 takes a free one.
        token: Require ``?token=TOKEN`` or ``Authorization: Bearer TOKEN`` on every request.

    Example:
        >>> WebOptions.at(":8080")
        WebOptions(host='127.0.0.1', port=8080)
    """

    host: str = LOOPBACK
    port: int = 0
    token: str | None = field(default=None, repr=False)

    @classmethod
    def at(cls, address: str, token: str | None = None) -> WebOptions:
        """From ``HOST:PORT`` as :func:`client.host_port.parse_host_port` reads it.

        Raises:
            ValueError: Not ``HOST:PORT``.
        """
        host, port = parse_host_port(address)
        return cls(host, port, token)
