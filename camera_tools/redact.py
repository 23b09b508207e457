"""Remove credentials from URLs before they reach logs, events or file names."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_MASK = "***"
# Query keys whose values are secrets (compared case-insensitively).
SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "token",
        "access_token",
        "auth",
        "key",
        "api_key",
        "apikey",
        "secret",
        "signature",
        "sig",
    }
)
_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@?#]*@")


def redact_url(url: str) -> str:
    """Return ``url`` with user info and secret query values masked.

    Strings that are not URLs (file paths, webcam indexes) are returned unchanged.

    Args:
        url: Any source spec or URL.

    Returns:
        The URL with ``user:pass@`` replaced by ``***@`` and the values of
        secret query parameters (``password``, ``token``, ...) replaced by ``***``.

    Example:
        >>> redact_url("rtsp://admin:hunter2@cam.local/live?token=abc&ch=1")
        'rtsp://***@cam.local/live?token=***&ch=1'
    """
    if "://" not in url:
        return url
    url = _USERINFO.sub(lambda m: f"{m.group('scheme')}{_MASK}@", url, count=1)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host: mask what we can, keep the rest
        return url
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key.lower() in SECRET_QUERY_KEYS for key, _ in pairs):
        return url
    masked = [(key, _MASK if key.lower() in SECRET_QUERY_KEYS else value) for key, value in pairs]
    query = urlencode(masked, safe="*/:,")
    return urlunsplit(parts._replace(query=query))
