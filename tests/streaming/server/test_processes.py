"""`serve --processes 2` as real processes: streams spread over both, every LOSSLESS frame answered
once, one metrics endpoint summing both, the same model info from each, SIGTERM draining all, a
killed process restarted, and start-up failures ending the whole server (issue 22)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from tests.metrics_scrape import Samples, scrape_samples
from tests.serve_process import REPO, ServeProcess, launch_serve
from tests.streaming.server.held_streams import Outcome, held_stream
from tests.support import publish_version, wait_until

pytestmark = [pytest.mark.timeout(480), pytest.mark.slow]

CHANNELS = 16  # each its own connection: the kernel places connections, not streams
STREAMS_PER_CHANNEL = 2
FRAMES = 20
GRACE_S = 5.0
EXIT_MARGIN_S = 8.0  # the supervisor's own margin (5 s) and the processes' exit
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def procs_stream(channel: grpc.Channel, outcome: Outcome, hold: threading.Event) -> None:
    """A LOSSLESS stream that sends FRAMES frames and stays open until ``hold`` is set."""
    held_stream(channel, outcome, hold, frames=FRAMES, source="procs", timeout=180)


def per_process_streams(samples: Samples) -> dict[str, float]:
    """``stream_classify_process_streams_open`` by pid."""
    return {
        dict(labels)["pid"]: value
        for (name, labels), value in samples.items()
        if name == "stream_classify_process_streams_open"
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def banner_pids(server: ServeProcess) -> list[int]:
    match = re.search(r"processes: 2 \(pids (\d+), (\d+)\)", server.banner)
    assert match, server.banner
    return [int(match.group(1)), int(match.group(2))]


def loaded_libraries(pid: int) -> set[str]:
    return {Path(m.path).name for m in psutil.Process(pid).memory_maps() if m.path}


def start_two_processes(tiny_model: Any, tmp_path: Path, *flags: str) -> ServeProcess:
    (tmp_path / "tmp").mkdir()
    return launch_serve(
        tiny_model.model_path,
        tiny_model.labels_path,
        "--processes",
        "2",
        "--metrics-address",
        "127.0.0.1:0",
        "--grace",
        str(GRACE_S),
        "--max-batch",
        "8",
        *flags,
        log=tmp_path / "serve.log",
        env={"TMPDIR": str(tmp_path / "tmp")},  # where the metrics directory goes
    )


@pytest.fixture
def two_processes(tiny_model: Any, tmp_path: Path) -> Iterator[ServeProcess]:
    server = start_two_processes(tiny_model, tmp_path)
    try:
        yield server.wait_ready(timeout=240)
    finally:
        server.stop(timeout=GRACE_S + EXIT_MARGIN_S)


@pytest.fixture
def two_null_processes(tiny_model: Any, tmp_path: Path) -> Iterator[ServeProcess]:
    """As ``two_processes``, with a no-op model: no TensorFlow start-up in either process or in
    a replacement (the supervisor's restart does not depend on the model; the test above checks
    the TensorFlow processes)."""
    server = start_two_processes(tiny_model, tmp_path, "--null-model", "3")
    try:
        yield server.wait_ready(timeout=240)
    finally:
        server.stop(timeout=GRACE_S + EXIT_MARGIN_S)


def test_streams_spread_answered_once_counted_together_and_drained_by_sigterm(
    two_processes: ServeProcess, tmp_path: Path
) -> None:
    # given: 32 LOSSLESS streams on 16 connections to two processes sharing one port
    server = two_processes
    pids = banner_pids(server)
    assert server.metrics_port is not None
    # the supervisor is small: TensorFlow is loaded in the server processes only
    assert not any("tensorflow" in name for name in loaded_libraries(server.process.pid))
    assert any("tensorflow" in name for name in loaded_libraries(pids[0]))
    assert len(list((tmp_path / "tmp").glob("sc-metrics-*"))) == 1
    channels = [grpc.insecure_channel(server.address, OWN_CONNECTION) for _ in range(CHANNELS)]
    outcomes = [Outcome() for _ in range(CHANNELS * STREAMS_PER_CHANNEL)]
    hold = threading.Event()
    threads = [
        threading.Thread(target=procs_stream, args=(channels[i % CHANNELS], outcome, hold))
        for i, outcome in enumerate(outcomes)
    ]
    try:
        for thread in threads:
            thread.start()
        # when: every frame has been answered, the streams still open
        wait_until(
            lambda: all(len(o.seqs) == FRAMES or o.code is not None for o in outcomes),
            120,
            message=lambda: str([len(o.seqs) for o in outcomes]),
        )
        # then: the one endpoint shows the streams on both processes, and their sum (a batch
        # is counted just after its answers are handed to the streams: wait for the last one)
        total = len(outcomes) * FRAMES
        port = server.metrics_port

        def counted() -> Samples | None:
            now = scrape_samples(port)
            answered = sample(now, "stream_classify_frames_answered_total", delivery="lossless")
            return now if answered == total else None

        samples = wait_until(counted, 10, message=lambda: str(scrape_samples(port)))
        spread = per_process_streams(samples)
        assert set(spread) == {str(pid) for pid in pids}, spread
        assert all(count > 0 for count in spread.values()), spread
        assert sum(spread.values()) == len(outcomes)
        assert sample(samples, "stream_classify_streams_open") == len(outcomes)
        assert sample(samples, "stream_classify_frames_received_total", delivery="lossless") == (
            total
        )
        assert sample(samples, "stream_classify_batch_size_count") is not None
        assert sample(samples, "stream_classify_model_version_info", version="1") == 1.0, samples
        # and every connection (so both processes) answers the same model info and health
        infos = {
            pb_grpc.StreamClassifierStub(channel)
            .GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
            .SerializeToString(deterministic=True)
            for channel in channels
        }
        assert len(infos) == 1
        statuses = {
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            .status
            for channel in channels
        }
        assert statuses == {health_pb2.HealthCheckResponse.SERVING}
        # when: SIGTERM to the supervisor while every stream is open
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(GRACE_S + EXIT_MARGIN_S + 30)
        elapsed = time.monotonic() - signalled
        for thread in threads:
            thread.join(30)
    finally:
        hold.set()
        for channel in channels:
            channel.close()
    # then: it exits 0 within the grace, its processes gone with it
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert elapsed < GRACE_S + EXIT_MARGIN_S
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    # and every stream got each answer once, in order, and its resume point from its process
    for outcome in outcomes:
        assert outcome.seqs == list(range(FRAMES))
        assert outcome.code == grpc.StatusCode.OK, (outcome.code, outcome.details)
        assert outcome.resend_from == str(FRAMES)
    log = (tmp_path / "serve.log").read_text()
    assert "[process 0]" in log and "[process 1]" in log
    assert "stopped cleanly" in log
    # and the metrics directory is gone with it
    assert not list((tmp_path / "tmp").glob("sc-metrics-*"))


def test_sighup_reaches_every_process_which_all_serve_the_new_version(
    tiny_model: Any, tmp_path: Path
) -> None:
    # given: two processes serving version 1 of a model directory that is not polled
    root = tmp_path / "models"
    root.mkdir()
    publish_version(root, 1, tiny_model.model_path, tiny_model.labels)
    log = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "streaming", "serve", "-ip", "127.0.0.1:0", "--processes", "2",
        "--model-dir", str(root), "--model-poll-s", "0", "--grace", str(GRACE_S),
    ]  # fmt: skip
    with log.open("w") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    server = ServeProcess(process, log)
    channels: list[grpc.Channel] = []
    try:
        server.wait_ready(timeout=240)
        channels = [grpc.insecure_channel(server.address, OWN_CONNECTION) for _ in range(CHANNELS)]

        def versions() -> set[tuple[str, tuple[str, ...]]]:
            infos = [
                pb_grpc.StreamClassifierStub(channel).GetModelInfo(
                    pb.GetModelInfoRequest(), timeout=10
                )
                for channel in channels
            ]
            return {(info.model_version, tuple(info.labels)) for info in infos}

        assert versions() == {("1", tiny_model.labels)}
        # when: version 2 (new labels) appears and the supervisor gets SIGHUP
        new_labels = ("cyan", "magenta", "yellow")
        publish_version(root, 2, tiny_model.model_path, new_labels)
        server.process.send_signal(signal.SIGHUP)
        # then: every process checks the directory and serves it: the same from every connection
        wait_until(lambda: versions() == {("2", new_labels)}, 120, message=lambda: str(versions()))
        text = log.read_text()
        for index in (0, 1):
            assert re.search(rf"\[process {index}\]: now serving model version 2", text), text
    finally:
        for channel in channels:
            channel.close()
        code = server.stop(timeout=GRACE_S + EXIT_MARGIN_S)
    assert code == 0


def test_a_killed_process_is_logged_and_restarted_while_the_other_serves(
    two_null_processes: ServeProcess, tmp_path: Path
) -> None:
    # given: two processes serving
    server = two_null_processes
    assert server.metrics_port is not None
    metrics_port = server.metrics_port
    victim, survivor = banner_pids(server)
    log = tmp_path / "serve.log"
    # when: one of them is killed
    psutil.Process(victim).send_signal(signal.SIGKILL)
    # then: its death is logged with how it ended, and a new process takes its place
    wait_until(
        lambda: "restarted (pid" in log.read_text(), 240, message=lambda: log.read_text()[-3000:]
    )
    text = log.read_text()
    assert re.search(rf"process 0 \(pid {victim}\) died killed by SIGKILL", text), text[-3000:]
    replacement = int(re.findall(r"process 0 restarted \(pid (\d+)\)", text)[-1])
    assert replacement not in (victim, survivor)
    # and the metrics show the two live processes only
    spread = wait_until(lambda: set(per_process_streams(scrape_samples(metrics_port))) or None, 10)
    assert spread == {str(survivor), str(replacement)}
    # and streams on many connections are served
    channels = [grpc.insecure_channel(server.address, OWN_CONNECTION) for _ in range(8)]
    hold = threading.Event()
    hold.set()  # the streams end once their frames are answered
    outcomes = [Outcome() for _ in channels]
    try:
        for channel, outcome in zip(channels, outcomes, strict=True):
            procs_stream(channel, outcome, hold)
    finally:
        for channel in channels:
            channel.close()
    assert all(o.seqs == list(range(FRAMES)) and o.code == grpc.StatusCode.OK for o in outcomes)
    # and SIGTERM still stops all cleanly
    assert server.stop(timeout=GRACE_S + EXIT_MARGIN_S) == 0
    assert not psutil.pid_exists(replacement)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(("-la", "no-such-model.keras"), "failed to start", id="model-missing"),
        pytest.param(("--processes", "0"), "processes=0", id="zero-processes"),
        pytest.param(("-ip", "unix:/tmp/sc.sock"), "TCP address", id="unix-socket"),
    ],
)
def test_a_server_that_cannot_start_exits_2(
    tiny_model: Any, tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    log = tmp_path / "serve.log"
    server = launch_serve(
        tiny_model.model_path, tiny_model.labels_path, "--processes", "2", *flags, log=log
    )
    try:
        code = server.process.wait(120)
    finally:
        server.stop()
    assert code == 2
    assert message in log.read_text()


def test_a_taken_port_fails_as_with_one_process(tiny_model: Any, tmp_path: Path) -> None:
    # given: a one-process server on a port
    first = launch_serve(tiny_model.model_path, tiny_model.labels_path, "--null-model", "3")
    try:
        first.wait_ready(timeout=120)
        # when: two processes are asked to listen there too
        log = tmp_path / "second.log"
        second = launch_serve(
            tiny_model.model_path,
            tiny_model.labels_path,
            "--processes",
            "2",
            "-ip",
            first.address,
            log=log,
        )
        code = second.process.wait(60)
        second.stop()
    finally:
        first.stop()
    # then: the second fails at once, rather than sharing the first's port
    assert code == 2
    assert "cannot listen on" in log.read_text()


def test_a_killed_supervisor_takes_its_processes_with_it(tiny_model: Any) -> None:
    # given: two processes of a no-op model (no TensorFlow: quick to start)
    server = launch_serve(
        tiny_model.model_path, tiny_model.labels_path, "--processes", "2", "--null-model", "3"
    ).wait_ready(timeout=120)
    pids = banner_pids(server)
    # when: the supervisor is killed, with no chance to stop them
    server.stop(signal.SIGKILL)
    # then: the kernel's SIGTERM makes each drain and exit: no server is left behind
    wait_until(
        lambda: not any(psutil.pid_exists(pid) for pid in pids),
        GRACE_S + EXIT_MARGIN_S + 10,
        message=lambda: str([pid for pid in pids if psutil.pid_exists(pid)]),
    )
