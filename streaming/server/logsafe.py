"""Client-supplied text made safe for logs and error messages: short, one line, printable."""

from __future__ import annotations

# Long enough for an RTSP URL or a hostname-based client id, short enough that a 64 MB string
# costs one log line of normal size.
DEFAULT_LIMIT = 120


def shown(value: str | bytes, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` quoted, with control and non-ASCII characters escaped, cut to about ``limit``.

    Only the kept prefix is escaped, so the cost does not grow with the input.

    Examples:
        >>> shown("cam0")
        "'cam0'"
        >>> shown("a\\nb\\x1b[2J")
        "'a\\\\nb\\\\x1b[2J'"
        >>> shown("x" * 500, limit=8)
        "'xxxxxxxx'... (500 chars)"
    """
    head = value[:limit]
    text = ascii(head)  # escapes newlines, terminal escapes and every non-ASCII character
    if isinstance(head, bytes):
        text = text[1:]  # b'...' -> '...'
    if len(value) > limit:
        unit = "bytes" if isinstance(value, bytes) else "chars"
        return f"{text}... ({len(value)} {unit})"
    return text
