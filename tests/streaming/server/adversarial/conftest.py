"""The adversarial suite's machinery: a `serve` process under attack, a well-behaved load beside
each attack, and the five checks every attack must pass (issue 10).

Everything runs in separate processes on loopback: the server (`python -m streaming serve` with
the tiny model, an explicit `--memory-budget`, JSON logs to a file), each attack
(`python -m streaming.bench.attacks`, or a hypothesis fuzzer in this process) and the load (threads
of this process, plain gRPC, so the client library's own checks do not hide what arrives).

One server serves the whole directory (a model load costs seconds on two cores); a test that
kills it gets a fresh one for the next test. Its footprint (``baseline``) is measured once, after
warm-up and a first answered frame, so memory one attack leaves behind counts against the next.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.bench.attacks import AttackResult, AttackSpec
from streaming.bench.processes import ChildProcess, python_module
from tests.serve_process import ServeProcess, launch_serve

MIB = 2**20
MEMORY_BUDGET = 128 * MIB
# Peak RSS may pass model footprint + --memory-budget by this much. The budget counts frame
# bytes the server holds, messages being received included (room for a stream's largest message,
# or before its first the largest accepted, is reserved before it is read). What it cannot count:
# gRPC's two copies of a message while handing it to Python (up to 2 x 48 MiB for a 4096x4096 RAW
# frame), numpy/OpenCV temporaries while a frame decodes, what the allocator keeps of freed memory
# (one glibc arena: streaming/server/allocator.py), and each waiting stream's receive window
# (--receive-window, 64 KiB). Measured on this 2-core machine: large RAW frames peak at 200-250 MiB
# over the footprint (400-490 when four first frames arrived together unreserved and gRPC grew
# the windows: BENCHMARKS.md session 11), every other attack at most 60 MiB.
MEMORY_MARGIN = 256 * MIB
MAX_STREAMS = 16
ATTACK_S = 5.0  # each attack's length: long enough to fill every buffer, short for the suite
LOAD_STREAMS = 4
LOAD_IN_FLIGHT = 2  # unanswered frames per well-behaved stream
_DRAIN_S = 60.0  # bound on the load's and an attacker's wind-down after the attack
_RED = np.zeros((24, 32, 3), np.uint8)
_RED[:, :, 0] = 200  # the tiny model's first label
STATUS_NAMES = {code.name for code in grpc.StatusCode}


def red_frame(seq: int) -> pb.Frame:
    return pb.Frame(seq=seq, width=32, height=24, channels=3, data=_RED.tobytes())


def answer_one_frame(address: str, seq: int = 0, timeout: float = 30.0) -> pb.ClassifyResponse:
    """A fresh LOSSLESS stream with one red frame: its one answer (raises on any error)."""
    requests = [
        pb.ClassifyRequest(config=pb.StreamConfig(delivery=pb.DELIVERY_MODE_LOSSLESS)),
        pb.ClassifyRequest(frame=red_frame(seq)),
    ]
    with grpc.insecure_channel(address) as channel:
        answers = list(
            pb_grpc.StreamClassifierStub(channel).Classify(iter(requests), timeout=timeout)
        )
    assert len(answers) == 1 and answers[0].seq == seq, answers
    assert not answers[0].HasField("error") and answers[0].label == "red", answers[0]
    return answers[0]


@dataclass
class Target:
    """The server under attack, with its model footprint measured after warm-up."""

    process: ServeProcess
    address: str
    log_path: Path
    baseline_rss: int = 0
    retired: bool = False
    _log_offset: int = 0

    def start_watching(self) -> None:
        """Reset the peak RSS and remember where this test's part of the log begins."""
        self.process.reset_peak_rss()
        self._log_offset = self.log_path.stat().st_size

    def peak_growth(self) -> int:
        return self.process.peak_rss_bytes() - self.baseline_rss

    def new_log(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def health(self) -> int:
        with grpc.insecure_channel(self.address) as channel:
            request = health_pb2.HealthCheckRequest(service="")
            return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=10).status)


class _Servers:
    """Starts the shared server; a new one when the last one died or was retired."""

    def __init__(self, model: Any, folder: Path) -> None:
        self._model = model
        self._folder = folder
        self._process: ServeProcess | None = None
        self._current: Target | None = None
        self._started = 0

    def get(self) -> Target:
        if self._current is not None and self._current.process.process.poll() is None:
            return self._current
        self._started += 1
        log_path = self._folder / f"server-{self._started}.log"
        process = launch_serve(
            self._model.model_path,
            self._model.labels_path,
            "-scw",
            "1",  # old-API answers are per image, so an answer shifted by a call shows
            "--memory-budget",
            str(MEMORY_BUDGET),
            "--max-streams",
            str(MAX_STREAMS),
            "--max-batch",
            "8",
            "--config-timeout",
            "2",
            "--grace",
            "5",
            "--log-format",
            "json",
            log=log_path,
        )
        self._process = process
        process.wait_ready(timeout=120)
        target = Target(process, process.address, log_path)
        answer_one_frame(target.address, timeout=60.0)  # warm-up: the model has run once
        target.baseline_rss = process.rss_bytes()
        self._current = target
        return target

    def close(self) -> None:
        """Stop the current server (SIGTERM, then kill): the next ``get`` starts a fresh one."""
        if self._process is not None:
            self._process.stop(signal.SIGTERM, timeout=30)
        self._process = self._current = None


@pytest.fixture(scope="session")
def _servers(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Servers]:
    servers = _Servers(tiny_model, tmp_path_factory.mktemp("adversarial"))
    yield servers
    servers.close()


@pytest.fixture
def target(_servers: _Servers, request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server under attack, alive and with its peak RSS reset.

    A test that leaves the server worse than it found it (``adversary.retire_server()``) stops
    it afterwards, so what it leaves never counts against the next test.
    """
    server = _servers.get()
    server.start_watching()
    yield server
    if server.retired:
        _servers.close()


@dataclass
class _LoadStream:
    sent: int = 0
    seqs: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    status: grpc.StatusCode | None = None


class WellBehavedLoad:
    """``LOAD_STREAMS`` LOSSLESS streams of small red frames, each in its own thread, sending
    continuously (``LOAD_IN_FLIGHT`` unanswered at most) until :meth:`stop`; they then half-close
    and read their last answers."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._stop = threading.Event()
        self.streams = [_LoadStream() for _ in range(LOAD_STREAMS)]
        self._threads = [
            threading.Thread(target=self._run, args=(s,), name=f"load-{i}", daemon=True)
            for i, s in enumerate(self.streams)
        ]
        self._first = threading.Barrier(LOAD_STREAMS + 1, timeout=60)

    def start(self) -> None:
        """Start the streams; returns once each has had its first answer."""
        for thread in self._threads:
            thread.start()
        self._first.wait()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=_DRAIN_S + 30)
        assert not any(t.is_alive() for t in self._threads), "a well-behaved stream hung"

    def _run(self, stream: _LoadStream) -> None:
        room = threading.Semaphore(LOAD_IN_FLIGHT)

        def requests() -> Iterator[pb.ClassifyRequest]:
            yield pb.ClassifyRequest(
                config=pb.StreamConfig(
                    source="well-behaved", delivery=pb.DELIVERY_MODE_LOSSLESS, window=1
                )
            )
            while not self._stop.is_set():
                if room.acquire(timeout=0.1):
                    yield pb.ClassifyRequest(frame=red_frame(stream.sent))
                    stream.sent += 1

        first = True
        with grpc.insecure_channel(self._address) as channel:
            call = pb_grpc.StreamClassifierStub(channel).Classify(
                requests(), timeout=ATTACK_S * 6 + _DRAIN_S
            )
            try:
                for answer in call:
                    stream.seqs.append(answer.seq)
                    if answer.HasField("error") or answer.label != "red":
                        stream.errors.append(f"{answer.seq}: {answer.error} {answer.label!r}")
                    room.release()
                    if first:
                        first = False
                        self._first.wait()
                stream.status = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                stream.status = exc.code()
                stream.errors.append(f"{exc.code().name}: {exc.details()}")
            finally:
                if first:
                    self._first.abort()  # start() fails instead of waiting out its timeout

    def check(self) -> None:
        """Every frame answered exactly once, in order, without error, and every call ended OK."""
        for i, stream in enumerate(self.streams):
            assert stream.status == grpc.StatusCode.OK, (i, stream.errors[:3])
            assert not stream.errors, (i, stream.errors[:3])
            assert stream.seqs == list(range(stream.sent)), (
                i,
                f"{len(stream.seqs)} answers for {stream.sent} frames",
            )

    @property
    def answered(self) -> int:
        return sum(len(s.seqs) for s in self.streams)


class Adversary:
    """What a test needs around its attack (test modules cannot import conftest): the load
    beside it, the bench attacks as processes, the checks after it, and a line for the report."""

    bound = MEMORY_BUDGET + MEMORY_MARGIN

    def __init__(self, target: Target, folder: Path, request: pytest.FixtureRequest) -> None:
        self.target = target
        self._folder = folder
        self._request = request

    @contextlib.contextmanager
    def beside_load(self) -> Iterator[WellBehavedLoad]:
        """A well-behaved load that runs for the block, then is checked."""
        load = WellBehavedLoad(self.target.address)
        load.start()
        try:
            yield load
        finally:
            load.stop()
        load.check()

    def run_attack_process(self, kind: str) -> AttackResult:
        """One bench attack in its own process for ``ATTACK_S``; its account of the answers."""
        spec = AttackSpec(kind, self.target.address, ATTACK_S)
        with ChildProcess(
            python_module("streaming.bench.attacks", spec.to_json()),
            "attacking",
            self._folder / f"attack-{kind}.log",
            sample_rss=False,
        ) as attacker:
            return AttackResult.from_json(attacker.wait_json(ATTACK_S + _DRAIN_S))

    def check_survived(self, load: WellBehavedLoad, seen: Iterable[str]) -> float:
        """The checks after every attack (the load's own are done by :meth:`beside_load`):
        memory within footprint + budget + margin, no UNKNOWN anywhere (``seen`` holds the
        status names the attacker saw), no traceback in the server's log, and the server still
        serving. Returns the peak RSS growth in MiB.
        """
        target = self.target
        growth = target.peak_growth()
        assert target.process.process.poll() is None, "the server died"
        assert growth <= self.bound, (
            f"peak RSS grew by {growth / MIB:.0f} MiB over the model footprint "
            f"(budget {MEMORY_BUDGET / MIB:.0f} + margin {MEMORY_MARGIN / MIB:.0f} MiB)"
        )
        seen = list(seen)
        assert "UNKNOWN" not in seen, seen
        log = target.new_log()
        assert "Traceback" not in log, log[max(0, log.index("Traceback") - 2000) :][:6000]
        _check_json_log(log)
        assert target.health() == health_pb2.HealthCheckResponse.SERVING
        answer_one_frame(target.address, seq=41)
        return growth / MIB

    @staticmethod
    def status_names(result: AttackResult) -> list[str]:
        """The gRPC status names in an attacker's account (``frame:X`` counts as ``X``)."""
        names = [name.removeprefix("frame:") for name in result.refused]
        unexpected = [name for name in names if name not in STATUS_NAMES]
        assert not unexpected, f"the attacker failed on its own: {result.refused}"
        return names

    def retire_server(self) -> None:
        """Stop the server after this test (the next test gets a fresh one)."""
        self.target.retired = True

    def report(self, text: str) -> None:
        """A line for the report (shown with -rP): what the attack did, the server's growth."""
        self._request.node.user_properties.append(("adversarial", text))
        print(text)  # noqa: T201 - the test's own output, shown by pytest -rP


@pytest.fixture
def adversary(target: Target, tmp_path: Path, request: pytest.FixtureRequest) -> Adversary:
    return Adversary(target, tmp_path, request)


def _check_json_log(log: str) -> None:
    """Every server log line is one JSON object (`--log-format json`), none unbounded."""
    for line in log.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert "exception" not in record and "stack" not in record, record
            assert len(line) < 4000, line[:300]
