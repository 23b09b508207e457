"""The server ends a stream while the client is still writing: both clients report the server's
status, never grpc.aio's INTERNAL "Internal error from Core" for the lost write (grpc/grpc#36066).

Real servers, real races: each test repeats the race a bounded number of times. The asyncio
client logs (DEBUG, ``client._aio``) each time a failed write hid the server's status, which is
how the tests know the race they guard against really happened.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest

from client import ClassifierClientError
from client._aio import CallStatus
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from tests.classifiers import SlowClassifier

from .flavours import Flavour, StreamLike

pytestmark = pytest.mark.timeout(120)

FRAME = np.full((480, 640, 3), 200, np.uint8)  # 900 KB RAW: writes stay in flight a while
RACE_LOGGED = "a failed write"


def races_seen(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        record.name == "client._aio" and record.getMessage().startswith(RACE_LOGGED)
        for record in caplog.records
    )


def send_until_refused(stream: StreamLike, frames: int) -> ClassifierClientError | None:
    """Send ``frames`` frames as fast as possible; the error that stopped sending, if any."""
    try:
        for _ in range(frames):
            stream.send(FRAME)
    except ClassifierClientError as exc:
        return exc
    return None


def final_error(stream: StreamLike) -> ClassifierClientError | None:
    """Read the stream to its end: the error it ended with, ``None`` for a normal end."""
    try:
        while stream.receive(timeout=30) is not None:
            pass
    except ClassifierClientError as exc:
        return exc
    return None


def test_refused_stream_reports_resource_exhausted_while_the_client_writes(
    server_factory: Callable[..., Any], flavour: Flavour, caplog: pytest.LogCaptureFixture
) -> None:
    # given a server that takes one stream, and holds it
    caplog.set_level(logging.DEBUG, logger="client._aio")
    server = server_factory(max_streams=1)
    client = flavour.connect(server.address)
    holder = client.open_stream("holder")
    holder.send(FRAME)
    assert holder.receive(timeout=30) is not None

    # when more streams are opened and written to at full speed, until the asyncio client has
    # lost the write race a few times (bounded)
    errors: list[ClassifierClientError | None] = []
    for attempt in range(60):
        with client.open_stream(f"extra{attempt}", resize=False) as stream:
            send_error = send_until_refused(stream, frames=40)
            errors.append(send_error or final_error(stream))
        if attempt >= 9 and (not flavour.is_async or races_seen(caplog) >= 3):
            break
    holder.close()

    # then every refusal is the server's own status
    assert [e.code if e else None for e in errors] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * len(
        errors
    )
    assert all(e and "--max-streams" in e.details for e in errors)
    if flavour.is_async:
        assert races_seen(caplog) > 0, f"no write lost the race in {len(errors)} refusals"


def test_drain_cut_off_reports_unavailable_and_the_seq_to_resend(
    server_factory: Callable[..., Any],
    tiny_classifier: Any,
    flavour: Flavour,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="client._aio")
    outcomes: list[tuple[grpc.StatusCode | None, str, int]] = []
    # the blocking client is the reference: a few drains; the asyncio one until it lost a race
    for attempt in range(8 if flavour.is_async else 3):
        # given a server whose model is slower than its grace, and a stream written at full speed
        server = server_factory(classifier=SlowClassifier(tiny_classifier, 0.3), max_batch=2)
        client = flavour.connect(server.address)
        stream = client.open_stream(f"cam{attempt}", resize=False)
        sender = threading.Thread(
            target=send_until_refused, args=(stream, 10_000), name="test-sender", daemon=True
        )
        sender.start()
        assert stream.receive(timeout=30) is not None

        # when the server drains with too little grace while frames are still being written
        server.stop(grace=0.05)
        error = final_error(stream)
        sender.join(timeout=30)
        assert not sender.is_alive()
        stream.close()
        client.close()

        outcomes.append(
            (error.code if error else None, error.details if error else "", stream.received)
        )
        if attempt >= 2 and races_seen(caplog) > 0:
            break

    # then each stream ends with the server's UNAVAILABLE, naming the first frame it did not answer
    for code, details, received in outcomes:
        assert code is grpc.StatusCode.UNAVAILABLE, details
        assert f"frames from seq {received} on were not answered" in details


# CallStatus at the grpc.aio boundary: a real call to a real grpc.aio server that ends it when
# told, and the INTERNAL that grpc.aio raises for a lost write, made by hand (it cannot be timed).

WRITE_RACE = grpc.aio.AioRpcError(
    grpc.StatusCode.INTERNAL, None, None, "Internal error from Core", "send failed"
)


class _EndsWhenTold(pb_grpc.StreamClassifierServicer):
    """Ends each Classify call once ``go`` is set: ``"abort"`` (UNAVAILABLE with resend-from-seq),
    ``"ok"``, or ``"hang"`` (not within the test)."""

    def __init__(self, ending: str) -> None:
        self.ending = ending
        self.go = asyncio.Event()

    async def Classify(
        self,
        request_iterator: AsyncIterator[pb.ClassifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ClassifyResponse]:
        await self.go.wait()
        if self.ending == "abort":
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; frames from seq 7 on were not answered",
                trailing_metadata=(("resend-from-seq", "7"),),
            )
        if self.ending == "hang":
            await asyncio.sleep(60)
        return
        yield  # pragma: no cover - makes this an async generator, as a streaming handler must be


async def check_status(
    ending: str, raised: grpc.aio.AioRpcError, *, status_first: bool, wait_s: float = 1.5
) -> grpc.aio.AioRpcError | None:
    """What ``CallStatus.error(raised)`` gives for a real call."""
    servicer = _EndsWhenTold(ending)
    server = grpc.aio.server()
    pb_grpc.add_StreamClassifierServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = pb_grpc.StreamClassifierStub(channel).Classify(iter(()))
            status = CallStatus(call, wait_s=wait_s)
            if status_first:  # the server's status is set before the write fails
                servicer.go.set()
                await call.code()
            else:  # the write fails first; the server's status follows
                asyncio.get_running_loop().call_later(0.1, servicer.go.set)
            error = await status.error(raised)
            call.cancel()
    finally:
        await server.stop(0)
    return error


@pytest.mark.parametrize("status_first", [True, False], ids=["status-first", "write-first"])
def test_a_lost_write_gives_the_servers_status_with_its_trailing_metadata(
    status_first: bool,
) -> None:
    error = asyncio.run(check_status("abort", WRITE_RACE, status_first=status_first))

    assert error is not None and error.code() is grpc.StatusCode.UNAVAILABLE
    assert "from seq 7 on" in (error.details() or "")
    assert ("resend-from-seq", "7") in tuple(error.trailing_metadata() or ())
    translated = ClassifierClientError.from_rpc_error(error)
    assert translated.code is grpc.StatusCode.UNAVAILABLE and "seq 7" in translated.details


@pytest.mark.parametrize("status_first", [True, False], ids=["status-first", "write-first"])
def test_a_lost_write_on_a_stream_the_server_ended_ok_is_no_error(status_first: bool) -> None:
    error = asyncio.run(check_status("ok", WRITE_RACE, status_first=status_first))

    assert error is None


def test_without_a_server_status_in_time_the_internal_error_stands() -> None:
    error = asyncio.run(check_status("hang", WRITE_RACE, status_first=False, wait_s=0.3))

    assert error is WRITE_RACE


@pytest.mark.parametrize(
    "raised",
    [
        pytest.param(
            grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, None, None, "a real bug"), id="internal"
        ),
        pytest.param(
            grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None, "down"), id="unavailable"
        ),
    ],
)
def test_other_errors_pass_through_unchanged(raised: grpc.aio.AioRpcError) -> None:
    error = asyncio.run(check_status("abort", raised, status_first=False))

    assert error is raised
