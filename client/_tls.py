"""TLS credentials for the client's channel, from PEM files."""

from __future__ import annotations

from pathlib import Path

import grpc

_PEM_MARKER = b"-----BEGIN "


def channel_credentials(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials for :class:`client.StreamClient` (``credentials=``).

    Args:
        ca: PEM file of the CA that signed the server's certificate; ``None`` trusts the system's
            root certificates.
        cert, key: PEM files of this client's certificate and private key, for servers that
            require mutual TLS. Both or neither.

    Raises:
        ValueError: only one of ``cert`` and ``key``, or a file that is missing, unreadable or not
            PEM (checked here, so the mistake is not reported later as an unreachable server).

    Example:
        >>> credentials = channel_credentials(Path("ca.pem"))  # doctest: +SKIP
        >>> client = StreamClient("server.example:1234", credentials=credentials)  # doctest: +SKIP
    """
    if (cert is None) != (key is None):
        raise ValueError(
            "a client certificate needs its private key and the other way round: "
            f"got cert={cert} key={key}"
        )
    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem(ca, "CA certificate") if ca is not None else None,
        private_key=_read_pem(key, "client private key") if key is not None else None,
        certificate_chain=_read_pem(cert, "client certificate") if cert is not None else None,
    )


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if _PEM_MARKER not in data:
        raise ValueError(f"the {what} {path} is not a PEM file")
    return data
