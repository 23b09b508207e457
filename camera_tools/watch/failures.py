"""What a watched source does when its ``Classify`` stream fails: the policy, by gRPC status.

Behind a balancer (a proxy such as nginx, or the channel's own ``round_robin`` over several
addresses) every stream is placed on one replica, and a replica that dies takes only its own
streams with it. So most failures call for reopening *that* stream, which the balancer places on
a replica that is still up; the shared connection is rebuilt only when the server as a whole
cannot be reached, and a status that no retry can fix ends the source.
"""

from __future__ import annotations

import enum

import grpc


class FailureAction(enum.Enum):
    """What a source loop does after its stream failed."""

    REOPEN_STREAM = "reopen the stream"
    """The stream's replica went away (crashed, drained, reset by the proxy): open a new stream on
    the same connection, after the source's own backoff."""

    RECONNECT = "reconnect"
    """The stream could not even start: the server as a whole may be unreachable. The shared
    connection checks it and reconnects once for every source if it is really gone."""

    GIVE_UP = "give up"
    """The server refused the stream for a reason no retry can fix: the source fails."""


# The request itself or the client's rights are wrong: every replica would answer the same.
_FATAL = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
# Failures that reach the server (or the proxy) as a whole, before a stream has started.
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def failure_action(code: grpc.StatusCode, *, answered: bool) -> FailureAction:
    """The action for a stream that ended with ``code``.

    Args:
        code: The stream's gRPC status (UNAVAILABLE when the server ended it early without one).
        answered: Whether the stream had received at least one answer, i.e. it was placed on a
            replica that worked. A stream that fails UNAVAILABLE *after* answers lost its replica;
            one that fails before any answer may have found no server at all.

    Examples:
        >>> failure_action(grpc.StatusCode.UNAVAILABLE, answered=True).name
        'REOPEN_STREAM'
        >>> failure_action(grpc.StatusCode.UNAVAILABLE, answered=False).name
        'RECONNECT'
        >>> failure_action(grpc.StatusCode.INTERNAL, answered=False).name  # a proxy's RST_STREAM
        'REOPEN_STREAM'
        >>> failure_action(grpc.StatusCode.UNAUTHENTICATED, answered=True).name
        'GIVE_UP'
    """
    if code in _FATAL:
        return FailureAction.GIVE_UP
    if code in _UNREACHABLE and not answered:
        return FailureAction.RECONNECT
    # The rest is about this one stream: its replica was lost (UNAVAILABLE, or INTERNAL/UNKNOWN
    # when a proxy resets the stream), was full (RESOURCE_EXHAUSTED) or cut it (CANCELLED,
    # ABORTED, DATA_LOSS); another replica may serve it.
    return FailureAction.REOPEN_STREAM
