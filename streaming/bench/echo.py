"""Row 2, the transport limit: a bare ``grpc.aio`` bidi echo with the server's traffic shape.

Requests are frame-sized (``height x width x 3`` bytes); each answer is the first
``answer_bytes`` of its request, the size of a real ``ClassifyResponse``, so the echo moves the
same bytes each way as the real server and does nothing else (no protobuf, no batching).

``python -m streaming.bench.echo serve PORT ANSWER_BYTES [WINDOW_BYTES]`` runs the server (prints
``ready`` when listening); with ``WINDOW_BYTES`` it receives with the fixed HTTP/2 window the real
server uses (``--receive-window``, bandwidth probing off) instead of gRPC's probed one.
``python -m streaming.bench.echo load SPEC_JSON`` runs the client and prints a LoadResult JSON line
(with ``loadgen_cores``, the client's CPU, as the real load generator reports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import grpc
import grpc.aio

from streaming.bench.meter import Meter
from streaming.server.grpc_server import receive_window_options

logger = logging.getLogger(__name__)

METHOD = "/streamclassify.bench.Echo/Echo"
_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


@dataclass(frozen=True)
class EchoSpec:
    address: str
    streams: int
    payload_bytes: int
    answer_bytes: int
    # Frames a stream may have unanswered: the project's client queues this many before send blocks.
    in_flight: int = 32
    warmup_s: float = 3.0
    duration_s: float = 10.0
    slices: int = 5

    def to_json(self) -> str:
        return json.dumps(asdict(self))


async def serve(port: int, answer_bytes: int, window_bytes: int | None = None) -> None:
    async def echo(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request[:answer_bytes]

    handler = grpc.method_handlers_generic_handler(
        "streamclassify.bench.Echo", {"Echo": grpc.stream_stream_rpc_method_handler(echo)}
    )
    options = list(_OPTIONS)
    if window_bytes is not None:
        options += receive_window_options(window_bytes)
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((handler,))
    await serve_until_signalled(server, port)


async def serve_until_signalled(server: grpc.aio.Server, port: int) -> None:
    """Listen on loopback ``port``, print ``ready`` for the orchestrator, stop on SIGTERM/SIGINT."""
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)  # noqa: T201 - tells the orchestrator it listens
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)


async def _one_stream(
    channel: grpc.aio.Channel, spec: EchoSpec, payload: bytes, meter: Meter, stop_ns: int
) -> None:
    call: grpc.aio.StreamStreamCall[bytes, bytes] = channel.stream_stream(METHOD)()
    sent_at: deque[int] = deque()
    room = asyncio.Semaphore(spec.in_flight)

    async def writer() -> None:
        while (now := time.perf_counter_ns()) < stop_ns:
            await room.acquire()
            sent_at.append(now)
            await call.write(payload)
            meter.on_sent(now)
        await call.done_writing()

    task = asyncio.create_task(writer())
    # EOF is a sentinel object, not bytes: the isinstance test ends the loop and types `answer`.
    while isinstance(answer := await call.read(), bytes):
        assert len(answer) == spec.answer_bytes
        meter.on_answer(time.perf_counter_ns() - sent_at.popleft())
        room.release()
    await task


async def run_load(spec: EchoSpec) -> dict[str, object]:
    payload = bytes(spec.payload_bytes)
    async with grpc.aio.insecure_channel(spec.address, options=_OPTIONS) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        start = time.perf_counter_ns() + int(spec.warmup_s * 1e9)
        stop = start + int(spec.duration_s * 1e9)
        meter = Meter(start, stop, spec.slices)
        cpu_start = time.process_time()
        tasks = [
            asyncio.create_task(_one_stream(channel, spec, payload, meter, stop))
            for _ in range(spec.streams)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks), spec.warmup_s + spec.duration_s + 15)
        cpu_s = time.process_time() - cpu_start
    result = meter.result(spec.streams).to_json()
    result["payload_bytes"] = spec.payload_bytes
    result["loadgen_cores"] = cpu_s / (spec.warmup_s + spec.duration_s)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="echo: %(message)s")
    if args[0] == "serve":
        window = int(args[3]) if len(args) > 3 else None
        asyncio.run(serve(int(args[1]), int(args[2]), window))
        return 0
    spec = EchoSpec(**json.loads(args[1]))
    print(json.dumps(asyncio.run(run_load(spec))), flush=True)  # noqa: T201 - JSON output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
