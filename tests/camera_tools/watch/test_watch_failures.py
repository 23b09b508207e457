"""The watcher's failure policy: every gRPC status, before and after the stream was answered."""

from __future__ import annotations

import grpc
import pytest

from camera_tools.watch.failures import FailureAction, failure_action

REOPEN, RECONNECT, GIVE_UP = (
    FailureAction.REOPEN_STREAM,
    FailureAction.RECONNECT,
    FailureAction.GIVE_UP,
)
S = grpc.StatusCode

# status: (action for a stream that was never answered, action for one that was)
POLICY = {
    S.OK: (REOPEN, REOPEN),  # ended without a status error, but early
    S.CANCELLED: (REOPEN, REOPEN),  # cut by a replica's shutdown or a proxy
    S.UNKNOWN: (REOPEN, REOPEN),
    S.INVALID_ARGUMENT: (GIVE_UP, GIVE_UP),
    S.DEADLINE_EXCEEDED: (RECONNECT, REOPEN),
    S.NOT_FOUND: (GIVE_UP, GIVE_UP),
    S.ALREADY_EXISTS: (GIVE_UP, GIVE_UP),
    S.PERMISSION_DENIED: (GIVE_UP, GIVE_UP),
    S.RESOURCE_EXHAUSTED: (REOPEN, REOPEN),  # this replica is full; another may have room
    S.FAILED_PRECONDITION: (GIVE_UP, GIVE_UP),
    S.ABORTED: (REOPEN, REOPEN),
    S.OUT_OF_RANGE: (GIVE_UP, GIVE_UP),
    S.UNIMPLEMENTED: (GIVE_UP, GIVE_UP),
    S.INTERNAL: (REOPEN, REOPEN),  # nginx resets the stream of a killed upstream
    S.UNAVAILABLE: (RECONNECT, REOPEN),  # no server at all / this stream's replica went away
    S.DATA_LOSS: (REOPEN, REOPEN),
    S.UNAUTHENTICATED: (GIVE_UP, GIVE_UP),
}


def test_the_table_covers_every_status() -> None:
    assert set(POLICY) == set(grpc.StatusCode)


@pytest.mark.parametrize(("code", "expected"), POLICY.items(), ids=lambda v: getattr(v, "name", ""))
def test_failure_action(
    code: grpc.StatusCode, expected: tuple[FailureAction, FailureAction]
) -> None:
    unanswered, answered = expected
    assert failure_action(code, answered=False) is unanswered
    assert failure_action(code, answered=True) is answered
