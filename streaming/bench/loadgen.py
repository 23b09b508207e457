"""The load generator: one process, one asyncio loop, many streams of the project's own client.

Payloads are encoded once before the clock starts, and sent as ``EncodedFrame`` values so the
client does no per-frame resize or encode (that is the camera side's cost, not the server's).
Run as ``python -m streaming.bench.loadgen SPEC_JSON``; prints one ``LoadResult`` JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from client import (
    AsyncStream,
    AsyncStreamClient,
    ClassifierClientError,
    Delivery,
    EncodedFrame,
    encode_frame,
)
from streaming.bench.meter import Meter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSpec:
    """One load-generator run.

    Attributes:
        address: the server.
        streams: concurrent streams.
        delivery: ``lossless`` or ``live``.
        wire: ``raw`` (pre-resized to the model input) or ``jpeg`` (``source_size``, server decodes).
        rate_fps: total frames/s offered, spread evenly over the streams; 0 sends as fast as
            flow control lets each stream (closed loop).
        warmup_s, duration_s: seconds before the window opens, and its length.
        drain_s: how long to wait after the window for LOSSLESS answers still owed.
        in_flight: closed loop only: most unanswered frames per stream (0: only the client's
            queue and the server's flow control limit it, which buffers streams x 3 x max_batch).
        keep_going: a stream the server ends stops alone (counted in ``failed_streams``)
            instead of failing the run: for loads measured beside an attack.
        streams_per_connection: streams one connection carries (the client's
            ``max_streams_per_channel``); 0 keeps the client's default. ``serve --processes``
            places connections, so its load needs several.
    """

    address: str
    streams: int
    delivery: str = "lossless"
    wire: str = "raw"
    source_size: tuple[int, int] = (640, 480)
    rate_fps: float = 0.0
    warmup_s: float = 3.0
    duration_s: float = 10.0
    drain_s: float = 10.0
    window: int = 5
    slices: int = 5
    in_flight: int = 0
    keep_going: bool = False
    streams_per_connection: int = 0

    def __post_init__(self) -> None:
        if self.delivery not in ("lossless", "live") or self.wire not in ("raw", "jpeg"):
            raise ValueError(f"bad delivery/wire: {self.delivery}/{self.wire}")
        if self.streams_per_connection < 0:
            raise ValueError("streams_per_connection must be >= 0")
        if self.streams < 1 or self.duration_s <= 0 or self.rate_fps < 0:
            raise ValueError("streams >= 1, duration > 0 and rate >= 0 are required")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        data = json.loads(text)
        if "source_size" in data:
            data["source_size"] = tuple(data["source_size"])
        return cls(**data)


def synthetic_image(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A camera-like RGB image: smooth gradients plus noise, so JPEG sizes are realistic."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    noise = rng.normal(0, 12, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def make_payload(spec: LoadSpec, input_size: tuple[int, int]) -> EncodedFrame:
    if spec.wire == "jpeg":
        return encode_frame(synthetic_image(spec.source_size), wire_format="jpeg", jpeg_quality=90)
    return encode_frame(synthetic_image(spec.source_size), size=input_size)


async def _send(
    stream: AsyncStream,
    payload: EncodedFrame,
    spec: LoadSpec,
    meter: Meter,
    index: int,
    stop_ns: int,
    room: asyncio.Semaphore | None,
) -> None:
    interval_ns = int(spec.streams / spec.rate_fps * 1e9) if spec.rate_fps else 0
    # Streams start spread over one interval so the total rate is smooth, not bursty.
    next_ns = time.perf_counter_ns() + (interval_ns * index) // spec.streams
    if spec.delivery == "live" and interval_ns:
        await _send_live(stream, payload, meter, next_ns, interval_ns, stop_ns)
        return
    while True:
        now = time.perf_counter_ns()
        if interval_ns:
            if next_ns >= stop_ns:
                break
            if next_ns > now:
                await asyncio.sleep((next_ns - now) / 1e9)
            # Latency counts from the scheduled time, so a stalled sender does not hide queueing.
            stamp = next_ns
            next_ns += interval_ns
        else:
            if room is not None:
                await room.acquire()
                now = time.perf_counter_ns()
            if now >= stop_ns:
                break
            stamp = now
        await stream.send(payload, capture_time_us=stamp // 1000)
        meter.on_sent(stamp)


async def _send_live(
    stream: AsyncStream,
    payload: EncodedFrame,
    meter: Meter,
    next_ns: int,
    interval_ns: int,
    stop_ns: int,
) -> None:
    """A live camera: a frame that comes while the previous one is still being handed over is
    skipped at the source (counted as offered, never sent), as a real capture loop would."""
    sending: asyncio.Task[int] | None = None
    while next_ns < stop_ns:
        now = time.perf_counter_ns()
        if next_ns > now:
            await asyncio.sleep((next_ns - now) / 1e9)
        stamp = time.perf_counter_ns()
        next_ns += interval_ns
        meter.on_sent(stamp)
        if sending is not None and not sending.done():
            meter.skipped += 1
            continue
        sending = asyncio.create_task(stream.send(payload, capture_time_us=stamp // 1000))
    if sending is not None:
        await sending


async def _receive(
    stream: AsyncStream,
    spec: LoadSpec,
    meter: Meter,
    progress: dict[int, list[int]],
    key: int,
    room: asyncio.Semaphore | None,
) -> None:
    state = progress[key]  # [next expected seq, frames dropped so far, answers without error]
    lossless = spec.delivery == "lossless"
    try:
        async for prediction in stream:
            now = time.perf_counter_ns()
            if prediction.error is not None:
                meter.errors += 1
            else:
                state[2] += 1
            if lossless and prediction.seq != state[0]:
                meter.lost_lossless += abs(prediction.seq - state[0])
            state[0] = prediction.seq + 1
            state[1] = prediction.dropped_frames
            meter.on_answer(
                now - prediction.capture_time_us * 1000,
                prediction.batch_size,
                prediction.inference_us,
            )
            if room is not None:
                room.release()
    finally:
        if room is not None:
            room.release()  # a sender waiting for room wakes and finds the stream ended


async def run_load(spec: LoadSpec) -> dict[str, object]:
    # The client's own default unless the spec sets one.
    pool: dict[str, Any] = {}
    if spec.streams_per_connection:
        pool["max_streams_per_channel"] = spec.streams_per_connection
    async with AsyncStreamClient(
        spec.address, connect_timeout=60.0, wait_for_ready=True, **pool
    ) as client:
        info = client.model_info
        payload = make_payload(spec, info.input_size)
        delivery = Delivery.LOSSLESS if spec.delivery == "lossless" else Delivery.LIVE
        streams = [
            client.open_stream(
                f"bench-{i}", delivery=delivery, window=spec.window, top_k=1, probabilities=False
            )
            for i in range(spec.streams)
        ]
        start = time.perf_counter_ns() + int(spec.warmup_s * 1e9)
        stop = start + int(spec.duration_s * 1e9)
        meter = Meter(start, stop, spec.slices)
        progress = {i: [0, 0, 0] for i in range(len(streams))}
        rooms = [
            asyncio.Semaphore(spec.in_flight) if spec.in_flight and not spec.rate_fps else None
            for _ in streams
        ]
        receivers = [
            asyncio.create_task(_receive(s, spec, meter, progress, i, rooms[i]))
            for i, s in enumerate(streams)
        ]
        cpu_start = time.process_time()
        senders = [
            asyncio.create_task(_send(s, payload, spec, meter, i, stop, rooms[i]))
            for i, s in enumerate(streams)
        ]
        outcomes = await asyncio.gather(*senders, return_exceptions=spec.keep_going)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        for exc in failed:
            if not isinstance(exc, ClassifierClientError):
                raise exc
            logger.warning("a stream failed: %s", exc)
        cpu_s = time.process_time() - cpu_start
        for stream in streams:
            await stream.close_send()
        # LOSSLESS answers are owed for every frame sent: wait for them (bounded); LIVE ones not.
        drain = spec.drain_s if spec.delivery == "lossless" else min(2.0, spec.drain_s)
        _, pending = await asyncio.wait(receivers, timeout=drain)
        for task in pending:
            task.cancel()
        for stream in streams:
            await stream.close()
        for task in receivers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A LOSSLESS drop shows as a gap in the answered sequence numbers (counted while
        # receiving). Frames still queued when the bounded drain ends are reported apart: with
        # deep flow-control buffers they can need longer than the drain, and are not drops.
        unanswered = 0
        for i, stream in enumerate(streams):
            meter.dropped += progress[i][1]
            unanswered += stream.sent - progress[i][0]
        result = meter.result(spec.streams).to_json()
        result["payload_bytes"] = len(payload.data)
        # The load generator's own CPU (warm-up included): what it takes from the server's cores.
        result["loadgen_cores"] = cpu_s / (spec.warmup_s + spec.duration_s)
        result["unanswered_after_drain"] = unanswered if spec.delivery == "lossless" else 0
        # Over the whole run, warm-up and drain included: the share of frames answered.
        result["sent_total"] = sum(stream.sent for stream in streams)
        result["answered_total"] = sum(state[2] for state in progress.values())
        result["failed_streams"] = len(failed)
        return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="loadgen: %(message)s")
    spec = LoadSpec.from_json(args[0])
    result = asyncio.run(run_load(spec))
    print(json.dumps(result), flush=True)  # noqa: T201 - the process's output is this JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
