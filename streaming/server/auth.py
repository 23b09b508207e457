"""Who may call the server: TLS (optionally mTLS) credentials and bearer tokens, both reloadable.

``SIGHUP`` re-reads the token file and the certificates (``Credentials.reload``): new
connections get the new certificate, open streams keep theirs, and the next call made with a
removed token is refused.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from streaming.server.logsafe import shown
from streaming.server.serve_config import SecurityConfig
from streaming.server.server_errors import ConfigError

logger = logging.getLogger(__name__)

# Health checks stay open so load balancers and orchestrators can probe without a secret.
OPEN_SERVICE_PREFIXES = ("/grpc.health.v1.Health/",)
_BEARER = "bearer "
# A token shorter than this is guessable; refuse to start rather than serve behind it.
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class TokenTable:
    """Accepted tokens and the names logs show for them (tokens themselves are never logged)."""

    entries: tuple[tuple[str, bytes], ...]  # (name, token)

    def name_of(self, token: str) -> str | None:
        """The name of ``token``, or ``None``; compares against every entry in constant time."""
        offered = token.encode("utf-8", "surrogateescape")
        found: str | None = None
        for name, accepted in self.entries:
            # No early exit: the time taken does not tell which entry (or how much) matched.
            if hmac.compare_digest(offered, accepted) and found is None:
                found = name
        return found


def parse_tokens(text: str, origin: str = "tokens") -> TokenTable:
    """Read ``token`` or ``name:token`` lines; blank lines and ``#`` comments are skipped.

    Raises:
        ConfigError: a token is too short, or a name or token appears twice.

    Example:
        >>> table = parse_tokens("# ops\\nalice:0123456789abcdef0123\\n")
        >>> table.name_of("0123456789abcdef0123")
        'alice'
    """
    entries: list[tuple[str, bytes]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        if not sep:
            name, token = f"line {number}", line
        name, token = name.strip(), token.strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{origin}, line {number}: tokens need at least {MIN_TOKEN_CHARS} characters"
            )
        if any(name == n for n, _ in entries):
            raise ConfigError(f"{origin}, line {number}: the name {name!r} is used twice")
        entries.append((name, token.encode("utf-8")))
    if not entries:
        raise ConfigError(f"{origin} holds no token: every call would be refused")
    if len({token for _, token in entries}) != len(entries):
        raise ConfigError(f"{origin}: the same token appears twice")
    return TokenTable(tuple(entries))


def load_tokens(path: Path) -> TokenTable:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from exc
    return parse_tokens(text, str(path))


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of the ``authorization: Bearer <token>`` metadata entry, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            if value[: len(_BEARER)].lower() == _BEARER:
                return value[len(_BEARER) :].strip()
            return None
    return None


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call without a known bearer token with UNAUTHENTICATED (health excepted).

    The table is swapped whole on reload; a call in progress keeps going (it was authenticated
    when it started), its next call needs a current token.
    """

    def __init__(self, table: TokenTable) -> None:
        self.table = table

    def caller(self, metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        """The name of the caller's token, or ``None`` when it has none or an unknown one."""
        token = bearer_token(metadata)
        return None if token is None else self.table.name_of(token)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if method.startswith(OPEN_SERVICE_PREFIXES):
            return await continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata
        token = bearer_token(metadata)
        if token is not None and self.table.name_of(token) is not None:
            return await continuation(handler_call_details)
        reason = (
            "missing 'authorization: Bearer <token>' metadata"
            if token is None
            else "the bearer token is not accepted by this server"
        )
        logger.warning("refused %s: %s", shown(method), reason)
        return _refusal(await continuation(handler_call_details), reason)


def _refusal(
    handler: grpc.RpcMethodHandler[Any, Any] | None, reason: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as ``handler`` that ends the call with UNAUTHENTICATED."""

    async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    # Unknown methods are refused too, so an unauthenticated caller cannot map the API.
    if handler is None or (handler.request_streaming and handler.response_streaming):
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class Credentials:
    """The server's TLS credentials and token table, read at start and again on ``reload()``."""

    def __init__(self, config: SecurityConfig) -> None:
        self._config = config
        self.interceptor = (
            TokenInterceptor(load_tokens(config.auth_tokens))
            if config.auth_tokens is not None
            else None
        )
        self._lock = threading.Lock()
        self._next_certificates: grpc.ServerCertificateConfiguration | None = None
        self._initial_certificates = self._read_certificates() if config.tls else None

    @property
    def tls(self) -> bool:
        return self._initial_certificates is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """Credentials for ``add_secure_port``, or ``None`` for plaintext."""
        if self._initial_certificates is None:
            return None
        return grpc.dynamic_ssl_server_credentials(
            self._initial_certificates,
            # The stub says the fetcher must return a configuration; gRPC documents None as
            # "keep the current one", which is what it returns between reloads.
            self._fetch_certificates,  # type: ignore[arg-type]
            require_client_authentication=self._config.tls_client_ca is not None,
        )

    def caller(self, metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        """The caller's token name for logs (``None`` without tokens)."""
        return None if self.interceptor is None else self.interceptor.caller(metadata)

    def reload(self) -> None:
        """Re-read the token file and certificates; on any error keep the current ones.

        Raises:
            ConfigError: a file could not be read or parsed (nothing was changed).
        """
        table = load_tokens(self._config.auth_tokens) if self._config.auth_tokens else None
        certificates = self._read_certificates() if self._config.tls else None
        if self.interceptor is not None and table is not None:
            self.interceptor.table = table
        if certificates is not None:
            with self._lock:
                self._next_certificates = certificates
        logger.info(
            "reloaded credentials:%s%s",
            f" {len(table.entries)} tokens" if table is not None else "",
            " TLS certificates" if certificates is not None else "",
        )

    def _fetch_certificates(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC (on its own thread) before each handshake: None keeps the current ones.
        with self._lock:
            certificates, self._next_certificates = self._next_certificates, None
        return certificates

    def _read_certificates(self) -> grpc.ServerCertificateConfiguration:
        config = self._config
        assert config.tls_cert is not None and config.tls_key is not None
        key, chain = _read_pem(config.tls_key, "PRIVATE KEY"), _read_pem(config.tls_cert, "CERT")
        roots = _read_pem(config.tls_client_ca, "CERT") if config.tls_client_ca else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)


def _read_pem(path: Path, marker: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    # gRPC reports a bad PEM only at the first handshake, as an opaque failure: check it here.
    if b"-----BEGIN" not in data or marker.encode() not in data:
        raise ConfigError(f"{path} is not a PEM file with a {marker.lower()}")
    return data
