"""A LOSSLESS stream held open after its frames, through the blocking generated stub: how the
drain and multi-process tests see the server end a stream (status, details, resume point)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.server.stream_service import RESEND_FROM_KEY


@dataclass
class Outcome:
    seqs: list[int] = field(default_factory=list)
    code: grpc.StatusCode | None = None
    details: str = ""
    resend_from: str | None = None


def held_stream(
    channel: grpc.Channel,
    outcome: Outcome,
    hold: threading.Event,
    *,
    frames: int,
    source: str,
    timeout: float,
    answered: threading.Semaphore | None = None,
) -> None:
    """Send ``frames`` 32x24 frames, then stay open until ``hold`` is set or the server ends it.

    ``answered`` is released once, at the first answer.
    """
    image = np.zeros((24, 32, 3), np.uint8).tobytes()

    def requests() -> Iterator[pb.ClassifyRequest]:
        yield pb.ClassifyRequest(
            config=pb.StreamConfig(delivery=pb.DELIVERY_MODE_LOSSLESS, source=source)
        )
        for seq in range(frames):
            yield pb.ClassifyRequest(
                frame=pb.Frame(seq=seq, width=32, height=24, channels=3, data=image)
            )
        hold.wait(120)

    # The blocking client: the asyncio one reports INTERNAL instead of the server's status
    # when a write races the end of the call (grpc/grpc#36066).
    call = pb_grpc.StreamClassifierStub(channel).Classify(requests(), timeout=timeout)
    try:
        for response in call:
            outcome.seqs.append(response.seq)
            if answered is not None and len(outcome.seqs) == 1:
                answered.release()
    except grpc.RpcError as exc:
        outcome.code, outcome.details = exc.code(), exc.details() or ""
        outcome.resend_from = dict(exc.trailing_metadata() or ()).get(RESEND_FROM_KEY)
        return
    outcome.code = grpc.StatusCode.OK
    outcome.resend_from = dict(call.trailing_metadata() or ()).get(RESEND_FROM_KEY)
