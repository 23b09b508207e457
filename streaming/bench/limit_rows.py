"""Rows 1-4: the limits the server is measured against (the model alone, the gRPC transport
alone), the server's own cost with a no-op model, and one model call per frame."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from streaming.bench.echo import EchoSpec
from streaming.bench.harness import (
    Harness,
    LoadRun,
    ModelUnderTest,
    ServerUnderTest,
    deadline_s,
    load_output,
    load_row,
)
from streaming.bench.processes import ChildProcess, free_port, python_module, run_json
from streaming.bench.results import Latency, Row


def model_limit(h: Harness, *, again: bool = False) -> tuple[Row, dict[str, Any]]:
    """Row 1, in its own process: sets the harness's model; also returns the per-batch data.

    ``again``: the same measurement after the server rows (this machine drifts over minutes,
    so row 5 is compared with the model alone measured on both sides of it).
    """
    path = h.s.model_path or h.scratch / "mobilenet_v3_small.keras"
    build = h.s.model_path is None and not path.exists()
    batches = sorted({*h.s.model_batches, h.s.max_batch})
    args = python_module(
        "streaming.bench.model_limit",
        "--model",
        str(path),
        "--batches",
        ",".join(map(str, batches)),
        "--seconds",
        str(h.s.model_seconds),
    )
    if build:
        args.append("--build")
    if h.s.input_size:
        args += ["--input-size", "x".join(map(str, h.s.input_size))]
    data = run_json(args, 120 + 4 * len(batches) * h.s.model_seconds, h.log_dir / "model-limit.log")
    width, height = data["input_size"]
    h.model = ModelUnderTest(Path(path), (int(width), int(height)), int(data["num_classes"]))
    best = data["per_batch"][str(data["best_batch"])]
    row = Row(
        key="model_after" if again else "model",
        name="1. Model limit, again after row 5" if again else "1. Model limit",
        setup=f"{data['model_name']} in-process, batch {data['best_batch']} (best of {batches})",
        fps=best["fps"],
        latency=Latency(**best["latency"]),
        extra={
            "per_batch_fps": {k: v["fps"] for k, v in data["per_batch"].items()},
            "per_batch_ms": {k: v["batch_ms"] for k, v in data["per_batch"].items()},
        },
        note="latency = one model call of the best batch",
    )
    return row, data


def _answer_bytes(num_classes: int) -> int:
    """Size of the ClassifyResponse the load generator gets, so the echo answers as many bytes.

    The load generator asks for no probability vector (like `watch`, `classify` and `sc_client`).
    """
    from streaming.server.server_values import FrameResult, ProbabilityFormat
    from streaming.server.wire import result_to_pb

    probs = np.full(num_classes, 1.0 / num_classes, np.float32)
    result = FrameResult(
        seq=123456,
        capture_time_us=time.time_ns() // 1000,
        dropped_frames=0,
        batch_size=32,
        queue_us=1234,
        inference_us=45678,
        label="class_123",
        score=0.5,
        probabilities=probs,
        frame_label="class_123",
        frame_score=0.5,
        top_k=(("class_123", 0.5),),
        window_frames=5,
    )
    return int(result_to_pb(result, ProbabilityFormat.NONE).ByteSize())


def transport_row(h: Harness, window_bytes: int | None = None) -> Row:
    """Row 2: a grpc.aio bidi echo server and client moving frames of the model's input size.

    ``window_bytes``: the echo receives with the real server's fixed window (``--receive-window``)
    instead of gRPC's probed one, so the row shows what that memory bound costs the transport
    alone; row 3 pays it too.
    """
    port = free_port()
    width, height = h.model.input_size
    answer = _answer_bytes(h.model.num_classes)
    window = [] if window_bytes is None else [str(window_bytes)]
    tag = "echo" if window_bytes is None else "echo-window"
    server = ChildProcess(
        python_module("streaming.bench.echo", "serve", str(port), str(answer), *window),
        "ready",
        h.log_dir / f"{tag}-server.log",
    )
    spec = EchoSpec(
        address=f"127.0.0.1:{port}",
        streams=h.s.transport_streams,
        payload_bytes=width * height * 3,
        answer_bytes=answer,
        warmup_s=h.s.warmup_s,
        duration_s=h.s.duration_s,
    )
    with server:
        assert server.rss is not None
        server.rss.phase = tag
        data = run_json(
            python_module("streaming.bench.echo", "load", spec.to_json()),
            deadline_s(spec.warmup_s + spec.duration_s + 15),
            h.log_dir / f"{tag}-client.log",
        )
        server.rss.phase = f"{tag} done"
        result, extra = load_output(data)
        extra["server_cores"] = server.rss.cores(tag)
    setup = (
        f"grpc.aio bidi echo, {spec.streams} streams, {spec.payload_bytes} B up / {answer} B back"
    )
    if window_bytes is None:
        return load_row("transport", "2. Transport limit", setup, LoadRun(result, extra))
    return load_row(
        "transport_window",
        "2. Transport limit, server's receive window",
        f"{setup}; fixed {window_bytes // 1024} KiB HTTP/2 receive window, as `serve` by default",
        LoadRun(result, extra),
    )


def wire_floor_row(h: Harness) -> Row:
    """Row 2's third line: row 3's load against a server that parses each frame and answers it
    at once (``wire_floor.py``): the floor under row 3 of any server of this protocol."""
    port = free_port()
    width, height = h.model.input_size
    args = python_module(
        "streaming.bench.wire_floor", str(port), str(h.model.num_classes), f"{width}x{height}"
    )
    streams = h.s.transport_streams
    with h.serving_child("wire-floor", args, "ready", port) as server:
        run = h.load(h.spec(server.address, streams), "wire-floor")
    return load_row(
        "wire_floor",
        "2. Transport limit, the real wire answered at once",
        f"{streams} streams, RAW {width}x{height}, LOSSLESS, row 3's client; the server only "
        "parses each frame and answers it (no batching, model or budget), the server's window",
        run,
    )


def null_server_flags(h: Harness) -> list[str]:
    """Row 3's server: a no-op model of the real one's input size and classes."""
    width, height = h.model.input_size
    return [
        "--null-model",
        str(h.model.num_classes),
        "--input-size",
        f"{width}x{height}",
        "--max-batch",
        str(h.s.max_batch),
    ]


def null_server_row(h: Harness, server: ServerUnderTest) -> Row:
    """Row 3, against a server started with :func:`null_server_flags`."""
    width, height = h.model.input_size
    streams = h.s.transport_streams
    run = h.load(h.spec(server.address, streams), "null")
    return load_row(
        "null",
        "3. Server overhead",
        f"--null-model {h.model.num_classes}, {streams} streams, RAW {width}x{height}, LOSSLESS",
        run,
    )


def one_call_row(h: Harness, server: ServerUnderTest) -> Row:
    """Row 4, against a server of the real model started with ``--max-batch 1``."""
    streams = h.s.one_call_streams
    run = h.load(h.spec(server.address, streams, max_batch=1), "batch1")
    return load_row(
        "one_call",
        "4. One call per frame",
        f"--max-batch 1, {streams} streams, RAW, LOSSLESS",
        run,
    )
