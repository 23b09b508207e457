"""Health, reflection, the `serve` command with the old flags, and draining on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from tests.classifiers import GatedClassifier
from tests.serve_process import ServeProcess
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

SERVICES = ["", "streamclassify.v1.StreamClassifier", "sc_service"]


def health_status(address: str, service: str) -> Any:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status


@pytest.mark.parametrize("service", SERVICES)
def test_health_reports_serving_then_not_serving(
    server_factory: Any, tiny_classifier: Any, run_stream: Any, frame_pb: Any, service: str
) -> None:
    # given: a server whose model call is held open, with one frame of one stream inside it
    gated = GatedClassifier(tiny_classifier)
    server = server_factory(classifier=gated, grace_s=20.0)
    assert health_status(server.address, service) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health_status(server.address, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    answers: list[Any] = []
    frame = np.zeros((24, 32, 3), np.uint8)
    sender = threading.Thread(
        target=lambda: answers.extend(
            run_stream(server.address, [frame_pb(0, frame)], delivery=pb.DELIVERY_MODE_LOSSLESS)
        )
    )
    sender.start()
    assert gated.entered.wait(timeout=30)
    # when: the server drains (SIGTERM does the same) while that frame is still being classified
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    # then: probes see NOT_SERVING during the drain, and the frame received before it is answered
    try:
        wait_until(
            lambda: (
                health_status(server.address, service) == health_pb2.HealthCheckResponse.NOT_SERVING
            ),
            timeout=20,
            message="health never said NOT_SERVING during the drain",
        )
    finally:
        gated.gate.set()
        stopper.join(timeout=60)
        sender.join(timeout=60)
    assert [a.seq for a in answers] == [0] and not answers[0].HasField("error")


def test_reflection_lists_every_service(server: Any) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
    names = {service.name for service in answer.list_services_response.service}
    assert {"streamclassify.v1.StreamClassifier", "sc_service", "grpc.health.v1.Health"} <= names


@pytest.fixture
def serve_process(serve: Any) -> Callable[..., ServeProcess]:
    """`stream-classify serve` with the old flags verbatim, as an old launch script ran it."""

    def start(*extra: str) -> ServeProcess:
        return cast(ServeProcess, serve("-scw", "3", "-msg", "50000000", "-wrk", "4", *extra))

    return start


def test_serve_command_takes_the_old_flags_and_prints_a_banner(serve_process: Any) -> None:
    running = serve_process()
    process, address = running.process, running.address
    with grpc.insecure_channel(address) as channel:
        info = pb_grpc.StreamClassifierStub(channel).GetModelInfo(
            pb.GetModelInfoRequest(), timeout=10
        )
    assert list(info.labels) == ["red", "green", "blue"] and info.default_window == 3
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=30)
    out = running.banner + rest  # the banner was read to learn the port
    assert process.returncode == 0, err
    # The device is whatever TensorFlow placed the model on (a GPU where there is one).
    assert re.search(r"model:   tiny on /(CPU|GPU):\d+", out), out
    for text in (
        "labels:  red, green, blue",
        "input:   32x24x3",
        "window 3",
        f"port {address.rsplit(':', 1)[1]}",
    ):
        assert text in out


def test_sigterm_answers_received_frames_then_exits_zero(serve_process: Any) -> None:
    # given: a stream with many frames in flight on a server that batches slowly
    running = serve_process("--max-batch", "2", "--max-delay-ms", "20", "--grace", "20")
    process, address = running.process, running.address
    frame = np.zeros((24, 32, 3), np.uint8)
    sent = 0
    done = threading.Event()

    def requests() -> Iterator[pb.ClassifyRequest]:
        nonlocal sent
        yield pb.ClassifyRequest(config=pb.StreamConfig(delivery=pb.DELIVERY_MODE_LOSSLESS))
        for seq in range(40):
            sent += 1
            yield pb.ClassifyRequest(
                frame=pb.Frame(seq=seq, width=32, height=24, channels=3, data=frame.tobytes())
            )
        done.wait(30)  # keep the stream open: the server, not the client, ends it

    with grpc.insecure_channel(address) as channel:
        call = pb_grpc.StreamClassifierStub(channel).Classify(requests(), timeout=60)
        first = next(call)
        # when: SIGTERM arrives while frames are queued
        process.send_signal(signal.SIGTERM)
        rest = list(call)  # then: the stream ends cleanly (no error raised) after its answers
        done.set()
    seqs = [first.seq] + [r.seq for r in rest]
    assert seqs == list(range(len(seqs)))
    assert 2 <= len(seqs) < 40  # it stopped reading, and answered what it had read
    process.communicate(timeout=30)
    assert process.returncode == 0
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(channel).result(timeout=1)


def test_serve_fails_clearly_when_the_port_is_taken(server: Any, tiny_model: Any) -> None:
    # The port is held by the same gRPC server in-process (no second TensorFlow start-up): a
    # lone server binds without SO_REUSEPORT either way, so `serve` must not share it.
    address = server.address
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streaming",
            "serve",
            "-la",
            str(tiny_model.model_path),
            "-ip",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"cannot listen on {address}" in result.stderr


def test_serve_rejects_labels_that_do_not_fit_the_model(tiny_model: Any, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streaming",
            "serve",
            "-la",
            str(tiny_model.model_path),
            "-ohe",
            str(labels),
            "-ip",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "has 2 labels but the model has 3 outputs" in result.stderr


def test_large_raw_frames_keep_the_server_memory_bounded(
    serve: Any, run_stream: Any, frame_pb: Any
) -> None:
    # given: a server (its own process, so its RSS is its own) with a 64 MiB memory budget
    running = serve("--memory-budget", "64M", "--max-batch", "4")
    address = running.address
    small = np.zeros((24, 32, 3), np.uint8)
    assert run_stream(address, [frame_pb(0, small)], delivery=pb.DELIVERY_MODE_LOSSLESS)
    baseline = running.rss_bytes()
    running.reset_peak_rss()
    # when: four LOSSLESS streams each send 24 RAW frames of 2048x2048 (1.1 GiB in all)
    big = np.zeros((2048, 2048, 3), np.uint8)
    big[:, :, 0] = 200  # red: the tiny model's first label
    frames = [frame_pb(seq, big) for seq in range(24)]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: run_stream(
                    address, frames, timeout=90, delivery=pb.DELIVERY_MODE_LOSSLESS
                ),
                range(4),
            )
        )
    peak = running.peak_rss_bytes()
    # then: every frame is answered, and the server's memory grew by a few frames per stream, not
    # by what was sent: frames are resized to 32x24 on arrival and a reader waits while its frame
    # decodes (before: every queued frame at full size plus float32 batches, > 1.5 GiB here).
    # Measured 220-500 MiB: the budget plus gRPC's and protobuf's copies of the frames being read
    # (a 12 MiB message exists as received bytes, parsed message and payload) and allocator arenas
    # that keep freed memory; a loaded machine reads more streams at once and lands at the top.
    for responses in results:
        assert [r.seq for r in responses] == list(range(24))
        assert all(not r.HasField("error") and r.label == "red" for r in responses)
    assert peak - baseline < 640 * 2**20, f"RSS grew by {(peak - baseline) / 2**20:.0f} MiB"
