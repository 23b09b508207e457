"""Hostile clients, each run in its own process beside a well-behaved load (the attack rows).

Every attack runs for ``duration_s`` against the server at ``address`` and then stops; it keeps
attacking when the server refuses or ends its calls (reopening them), and counts how the server
answered. Run as ``python -m streaming.bench.attacks SPEC_JSON``: prints ``attacking`` once
connected, then one :class:`AttackResult` JSON line when done.

The attacks (issue 10):

- ``large_raw``: 4 LOSSLESS streams of 4096x4096 RAW frames (48 MiB each).
- ``png_bombs``: small PNG files that declare 30000x30000 (truncated) and 8192x8192 (all zero,
  a valid 200 MB image in about 200 kB), sent again and again.
- ``jpeg_bombs``: small JPEGs whose frame header (SOF) declares 30000x30000 and 8192x8192,
  sent again and again.
- ``never_reading``: LOSSLESS streams that send frames and never read an answer.
- ``no_config_flood``: thousands of streams that never send their StreamConfig.
- ``large_configs``: streams whose first message is a 48 MiB StreamConfig (its ``source`` a
  48 MiB string), all at once, each refused and opened again, over and over.
- ``cancel_storm``: streams opened, given a few frames, and cancelled, over and over.
- ``legacy_flood``: old-API ``sc_service.inference`` calls of thousands of tiny images, every
  third one with a 50 ms deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import os
import signal
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import grpc.aio
import numpy as np

from client import (
    AsyncStream,
    AsyncStreamClient,
    ClassifierClientError,
    Delivery,
    EncodedFrame,
    encode_frame,
)
from client import Encoding as WireEncoding
from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.bench.loadgen import synthetic_image

logger = logging.getLogger(__name__)

LARGE_RAW_STREAMS = 4
LARGE_RAW_SIDE = 4096
BOMB_STREAMS = 2
BOMB_SIDES = (30000, 8192)
_JPEG_SOF0 = b"\xff\xc0"
NEVER_READING_STREAMS = 8
NO_CONFIG_STREAMS = 2000
NO_CONFIG_CHANNELS = 8  # spread over connections, so no one HTTP/2 stream limit queues them
LARGE_CONFIG_STREAMS = 6
LARGE_CONFIG_BYTES = 48 << 20
CANCEL_WORKERS = 16
CANCEL_FRAMES = 3
LEGACY_CALLERS = 4
LEGACY_IMAGES = 2000
LEGACY_SIDE = 8
LEGACY_SHORT_DEADLINE_S = 0.05
LEGACY_SHORT_EVERY = 3  # every third call has the short deadline
IN_FLIGHT = 2  # unanswered frames per attacking stream: its client holds no more copies
_CLOSE_TIMEOUT_S = 20.0
_REOPEN_PAUSE_S = 0.05  # after the server ends a call, before the next: persistent, not a spin
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 1 << 30),
    ("grpc.max_receive_message_length", 1 << 30),
]


@dataclass(frozen=True)
class AttackSpec:
    """One attack: which, against which server, for how long."""

    kind: str
    address: str
    duration_s: float

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ValueError(f"unknown attack {self.kind!r}: one of {', '.join(ATTACKS)}")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be > 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AttackSpec:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class AttackResult:
    """What an attack did and how the server answered it.

    Attributes:
        unit: what ``sent`` counts (frames, calls, streams).
        sent: units sent (or opened).
        answered: answers received without error (frames answered, calls returned).
        refused: errors by status name; an in-band frame error is ``frame:<code>``.
        seconds: how long the attack ran.
    """

    kind: str
    unit: str
    sent: int
    answered: int
    refused: dict[str, int]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttackResult:
        return cls(
            kind=str(data["kind"]),
            unit=str(data["unit"]),
            sent=int(data["sent"]),
            answered=int(data["answered"]),
            refused={str(k): int(v) for k, v in data["refused"].items()},
            seconds=float(data["seconds"]),
        )


@dataclass
class _Tally:
    unit: str
    sent: int = 0
    answered: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)

    def refuse(self, exc: BaseException) -> None:
        if isinstance(exc, ClassifierClientError):
            self.refused[exc.code.name] += 1
        elif isinstance(exc, grpc.aio.AioRpcError):
            self.refused[exc.code().name] += 1
        else:
            self.refused[type(exc).__name__] += 1


def _status_name(code: int) -> str:
    """A google.rpc code (as carried in-band) by its gRPC name."""
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))


class _Clock:
    """The attack's time; it starts when the attack is announced, after its payloads are made."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s
        self.started = time.monotonic()
        self.end = self.started + duration_s

    def start(self) -> None:
        self.started = time.monotonic()
        self.end = self.started + self.duration_s

    @property
    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


# -- payloads --------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int, *, rows: int | None = None) -> bytes:
    """An all-black RGB PNG of ``side`` x ``side`` whose pixel data holds only ``rows`` rows.

    ``rows=None`` writes every row (a valid image; zeros compress about 1000:1); fewer rows
    give a small file that still declares the whole size, which a decoder may allocate first.
    """
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    squeeze = zlib.compressobj(9)
    row = bytes(1 + 3 * side)  # filter byte 0, then the pixels
    data = b"".join(squeeze.compress(row) for _ in range(side if rows is None else rows))
    data += squeeze.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bomb(side: int) -> bytes:
    """A small baseline JPEG whose frame header (SOF0) declares ``side`` x ``side``.

    The entropy-coded data is that of a 16x16 image: a decoder that trusts the header
    allocates the declared size first.
    """
    if not 0 < side < 1 << 16:
        raise ValueError("a JPEG side is 1..65535")
    small = bytes(encode_frame(np.zeros((16, 16, 3), np.uint8), wire_format="jpeg").data)
    at = small.index(_JPEG_SOF0)
    # FFC0, 2-byte length, 1-byte precision, then height and width.
    return small[: at + 5] + struct.pack(">HH", side, side) + small[at + 9 :]


# -- attacks through the project's client ----------------------------------------------------


async def _push_frames(
    client: AsyncStreamClient, payloads: list[EncodedFrame], tally: _Tally, clock: _Clock
) -> None:
    """A LOSSLESS stream sending ``payloads`` in turn (``IN_FLIGHT`` unanswered at most) and
    reading its answers; reopened whenever the server ends it, until the time is up."""
    while clock.left > 0:
        room = asyncio.Semaphore(IN_FLIGHT)
        stream = client.open_stream("attack", delivery=Delivery.LOSSLESS, probabilities=False)
        reader = asyncio.create_task(_read_answers(stream, tally, room))
        try:
            for n in itertools.count():
                await asyncio.wait_for(room.acquire(), clock.left)
                await stream.send(payloads[n % len(payloads)], timeout=clock.left)
                tally.sent += 1
        except TimeoutError:
            pass  # the time is up
        except ClassifierClientError:
            # The server ended the stream (the reader counted how): open another, without a spin.
            await asyncio.sleep(_REOPEN_PAUSE_S)
        finally:
            await stream.close()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read_answers(stream: AsyncStream, tally: _Tally, room: asyncio.Semaphore) -> None:
    try:
        async for prediction in stream:
            room.release()
            if prediction.error is None:
                tally.answered += 1
            else:
                tally.refused[f"frame:{_status_name(prediction.error.code)}"] += 1
    except ClassifierClientError as exc:
        tally.refuse(exc)
    finally:
        room.release()  # wake the sender so it sees the stream has ended


async def _with_client(
    spec: AttackSpec, clock: _Clock, work: Callable[[AsyncStreamClient], Awaitable[None]]
) -> None:
    async with AsyncStreamClient(spec.address, connect_timeout=60.0, wait_for_ready=True) as client:
        _announce(clock)
        await work(client)


async def _large_raw(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    side = LARGE_RAW_SIDE
    frame = EncodedFrame(WireEncoding.RAW_RGB, bytes(side * side * 3), side, side, 3)

    async def work(client: AsyncStreamClient) -> None:
        await asyncio.gather(
            *(_push_frames(client, [frame], tally, clock) for _ in range(LARGE_RAW_STREAMS))
        )

    await _with_client(spec, clock, work)


async def _png_bombs(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    huge, large = BOMB_SIDES
    bombs = [
        EncodedFrame(WireEncoding.PNG, png_bomb(huge, rows=64)),
        EncodedFrame(WireEncoding.PNG, png_bomb(large)),
    ]

    async def work(client: AsyncStreamClient) -> None:
        await asyncio.gather(
            *(_push_frames(client, bombs, tally, clock) for _ in range(BOMB_STREAMS))
        )

    await _with_client(spec, clock, work)


async def _jpeg_bombs(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    bombs = [EncodedFrame(WireEncoding.JPEG, jpeg_bomb(side)) for side in BOMB_SIDES]

    async def work(client: AsyncStreamClient) -> None:
        await asyncio.gather(
            *(_push_frames(client, bombs, tally, clock) for _ in range(BOMB_STREAMS))
        )

    await _with_client(spec, clock, work)


async def _cancel_storm(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:

    async def worker(client: AsyncStreamClient, frame: EncodedFrame) -> None:
        while clock.left > 0:
            stream = client.open_stream("storm", delivery=Delivery.LOSSLESS, probabilities=False)
            tally.sent += 1
            try:
                for _ in range(CANCEL_FRAMES):
                    await stream.send(frame, timeout=max(clock.left, 0.01))
            except ClassifierClientError as exc:
                tally.refuse(exc)
                await asyncio.sleep(_REOPEN_PAUSE_S)
            except TimeoutError:
                pass  # the time is up
            finally:
                await stream.close()  # cancels the call with frames still in the server
            if stream.received:
                tally.answered += 1

    async def work(client: AsyncStreamClient) -> None:
        width, height = client.model_info.input_size
        frame = _model_frame((width, height))
        await asyncio.gather(*(worker(client, frame) for _ in range(CANCEL_WORKERS)))

    await _with_client(spec, clock, work)


def _model_frame(size: tuple[int, int]) -> EncodedFrame:
    """A well-formed RAW frame of the model's input size."""
    return encode_frame(synthetic_image(size))


# -- attacks below the client: calls it would never make ---------------------------------------


def _frame_request(seq: int, frame: EncodedFrame) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(
        frame=pb.Frame(
            seq=seq,
            encoding=f"ENCODING_{frame.encoding.name}",  # the proto enum's label
            width=frame.width,
            height=frame.height,
            channels=frame.channels,
            data=frame.data,
            capture_time_us=time.time_ns() // 1000,
        )
    )


async def _model_info(stub: pb_grpc.StreamClassifierStub) -> pb.ModelInfo:
    return await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=60.0, wait_for_ready=True)


async def _never_reading(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    async with grpc.aio.insecure_channel(spec.address, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.StreamClassifierStub(channel)
        info = await _model_info(stub)
        frame = _model_frame((info.input_width, info.input_height))
        _announce(clock)

        async def requests() -> AsyncIterator[pb.ClassifyRequest]:
            yield pb.ClassifyRequest(
                config=pb.StreamConfig(
                    source="never-reads", delivery=pb.DELIVERY_MODE_LOSSLESS, window=1
                )
            )
            seq = 0
            while clock.left > 0:  # gRPC pulls a request only when flow control lets it
                tally.sent += 1
                yield _frame_request(seq, frame)
                seq += 1

        async def one_stream() -> None:
            while clock.left > 0:
                call = stub.Classify(requests())
                try:
                    # Waits for the call's end, not its answers: those are never read.
                    await asyncio.wait_for(call.code(), clock.left)
                    tally.refused[(await call.code()).name] += 1
                    await asyncio.sleep(_REOPEN_PAUSE_S)  # the server ended it: open another
                except TimeoutError:
                    pass
                finally:
                    call.cancel()

        await asyncio.gather(*(one_stream() for _ in range(NEVER_READING_STREAMS)))


async def _no_config_flood(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    channels = [
        grpc.aio.insecure_channel(spec.address, options=_CHANNEL_OPTIONS)
        for _ in range(NO_CONFIG_CHANNELS)
    ]
    try:
        await _model_info(pb_grpc.StreamClassifierStub(channels[0]))
        _announce(clock)
        time_up = asyncio.Event()

        async def silence() -> AsyncIterator[pb.ClassifyRequest]:
            await time_up.wait()  # the config never comes
            return
            yield  # an async generator that yields nothing

        async def one_stream(stub: pb_grpc.StreamClassifierStub) -> None:
            while clock.left > 0:
                call = stub.Classify(silence())
                tally.sent += 1
                try:
                    await asyncio.wait_for(call.code(), clock.left)
                    code = await call.code()
                    tally.refused[code.name] += 1
                    await asyncio.sleep(_REOPEN_PAUSE_S)  # the server ended it: open another
                except TimeoutError:
                    pass
                finally:
                    call.cancel()

        stubs = [pb_grpc.StreamClassifierStub(channel) for channel in channels]
        await asyncio.gather(*(one_stream(stubs[i % len(stubs)]) for i in range(NO_CONFIG_STREAMS)))
    finally:
        time_up.set()
        for channel in channels:
            await channel.close()


async def _large_configs(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    # Serialized once: the server's size check comes after the message has arrived.
    config = pb.ClassifyRequest(
        config=pb.StreamConfig(source="x" * LARGE_CONFIG_BYTES)
    ).SerializeToString()

    async def first_message() -> AsyncIterator[bytes]:
        yield config

    async with grpc.aio.insecure_channel(spec.address, options=_CHANNEL_OPTIONS) as channel:
        classify: grpc.aio.StreamStreamMultiCallable = channel.stream_stream(
            "/streamclassify.v1.StreamClassifier/Classify",
            request_serializer=None,
            response_deserializer=pb.ClassifyResponse.FromString,
        )
        await _model_info(pb_grpc.StreamClassifierStub(channel))
        _announce(clock)

        async def one_stream() -> None:
            while clock.left > 0:
                call = classify(first_message())
                tally.sent += 1
                try:
                    code = await asyncio.wait_for(call.code(), clock.left)
                    tally.refused[code.name] += 1
                except TimeoutError:
                    pass
                finally:
                    call.cancel()

        await asyncio.gather(*(one_stream() for _ in range(LARGE_CONFIG_STREAMS)))


async def _legacy_flood(spec: AttackSpec, clock: _Clock, tally: _Tally) -> None:
    images = np.random.default_rng(3).integers(
        0, 256, (LEGACY_IMAGES, LEGACY_SIDE, LEGACY_SIDE, 3), dtype=np.uint8
    )
    async with grpc.aio.insecure_channel(spec.address, options=_CHANNEL_OPTIONS) as channel:
        stub = sc_service_pb2_grpc.sc_serviceStub(channel)
        await asyncio.wait_for(channel.channel_ready(), 60.0)
        _announce(clock)

        async def caller(index: int) -> None:
            request = sc_service_pb2.server_input(
                imgs=images.tobytes(),
                batch=LEGACY_IMAGES,
                width=LEGACY_SIDE,
                height=LEGACY_SIDE,
                channel=3,
                data_type="uint8",
                client_id=f"legacy-flood-{index}",
            )
            calls = 0
            while clock.left > 0:
                calls += 1
                short = calls % LEGACY_SHORT_EVERY == 0
                timeout = LEGACY_SHORT_DEADLINE_S if short else clock.left
                tally.sent += 1
                try:
                    await stub.inference(request, timeout=max(timeout, 0.01))
                    tally.answered += 1
                except grpc.aio.AioRpcError as exc:
                    tally.refuse(exc)

        await asyncio.gather(*(caller(i) for i in range(LEGACY_CALLERS)))


# Each attack, and what its ``sent`` counts.
ATTACKS: dict[
    str, tuple[str, Callable[[AttackSpec, _Clock, _Tally], Coroutine[Any, Any, None]]]
] = {
    "large_raw": ("frames", _large_raw),
    "png_bombs": ("frames", _png_bombs),
    "jpeg_bombs": ("frames", _jpeg_bombs),
    "never_reading": ("frames", _never_reading),
    "no_config_flood": ("streams", _no_config_flood),
    "large_configs": ("streams", _large_configs),
    "cancel_storm": ("streams", _cancel_storm),
    "legacy_flood": ("calls", _legacy_flood),
}

# What each attack does, for the table.
ATTACK_SETUPS = {
    "large_raw": f"{LARGE_RAW_STREAMS} streams of {LARGE_RAW_SIDE}x{LARGE_RAW_SIDE} RAW, LOSSLESS",
    "png_bombs": " and ".join(f"{s}x{s}" for s in BOMB_SIDES)
    + f" PNG bombs on {BOMB_STREAMS} streams, again and again",
    "jpeg_bombs": " and ".join(f"{s}x{s}" for s in BOMB_SIDES)
    + f" JPEG headers (SOF) on {BOMB_STREAMS} streams, again and again",
    "never_reading": f"{NEVER_READING_STREAMS} LOSSLESS streams that never read an answer",
    "no_config_flood": f"{NO_CONFIG_STREAMS} streams that never send their config",
    "large_configs": f"{LARGE_CONFIG_STREAMS} streams whose first message is a "
    f"{LARGE_CONFIG_BYTES >> 20} MiB StreamConfig, again and again",
    "cancel_storm": f"{CANCEL_WORKERS} workers: open a stream, send {CANCEL_FRAMES} frames, cancel",
    "legacy_flood": f"{LEGACY_CALLERS} old-API callers, {LEGACY_IMAGES} {LEGACY_SIDE}x{LEGACY_SIDE}"
    f" images a call, 1 in {LEGACY_SHORT_EVERY} with a {LEGACY_SHORT_DEADLINE_S * 1000:.0f} ms deadline",
}


def _announce(clock: _Clock) -> None:
    """Start the clock and tell the suite the attack has begun (it starts its load then)."""
    clock.start()
    print("attacking", flush=True)  # noqa: T201 - the process's output is read by the suite


async def run_attack(spec: AttackSpec, stop: asyncio.Event | None = None) -> AttackResult:
    """Run one attack for ``spec.duration_s`` at most, or until ``stop`` is set.

    Its payloads are made before the clock starts; on ``stop`` the attack is cancelled, and
    closes its calls on the way out.
    """
    unit, attack = ATTACKS[spec.kind]
    clock = _Clock(spec.duration_s)
    tally = _Tally(unit)
    work = asyncio.create_task(attack(spec, clock, tally))
    stopped = asyncio.create_task((stop or asyncio.Event()).wait())
    # The attack ends itself at its duration (after connecting); ``stop`` cancels it sooner.
    await asyncio.wait(
        {work, stopped}, timeout=spec.duration_s + 60.0, return_when=asyncio.FIRST_COMPLETED
    )
    stopped.cancel()
    work.cancel()
    # Closing calls on a saturated server can be slow: the result does not wait for it forever.
    await asyncio.wait({work}, timeout=_CLOSE_TIMEOUT_S)
    error = work.exception() if work.done() and not work.cancelled() else None
    if error is not None:
        raise error
    return AttackResult(
        kind=spec.kind,
        unit=tally.unit,
        sent=tally.sent,
        answered=tally.answered,
        refused=dict(tally.refused),
        seconds=time.monotonic() - clock.started,
    )


async def _until_terminated(spec: AttackSpec) -> None:
    """The process's attack: SIGTERM (the suite's load is done) ends it early, with a result."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    result = await run_attack(spec, stop)
    print(result.to_json(), flush=True)  # noqa: T201 - the process's output is this JSON
    # The result is out: channels still closing 48 MiB writes on a saturated server (or
    # asyncio's teardown waiting for them) must not hold the process past its deadline.
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="attack: %(message)s")
    asyncio.run(_until_terminated(AttackSpec.from_json(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
