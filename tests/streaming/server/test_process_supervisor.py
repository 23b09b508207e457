"""The supervisor's policies without processes: each process's share of the limits, the port
reservation, the restart backoff and how an exit is described."""

from __future__ import annotations

import signal
import socket
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from streaming.server.process_supervisor import (
    RestartBackoff,
    available_cores,
    describe_exit,
    process_config,
    reserve_port,
)
from streaming.server.serve_config import ModelConfig, ServerConfig
from streaming.server.server_errors import ConfigError

GIB = 2**30


@pytest.mark.parametrize(
    ("given", "cores", "expected"),
    [
        pytest.param(
            dict(processes=2),
            4,
            dict(memory_budget_bytes=GIB // 2, frame_budget=0, max_streams=2048, threads=2),
            id="defaults-halved",
        ),
        pytest.param(
            dict(processes=3, memory_budget_bytes=GIB, frame_budget=100, max_streams=10),
            2,
            dict(memory_budget_bytes=-(-GIB // 3), frame_budget=34, max_streams=4, threads=1),
            id="rounded-up-and-one-thread-at-least",
        ),
        pytest.param(
            dict(processes=4, max_streams=2, model=ModelConfig(intra_op_threads=6)),
            16,
            dict(memory_budget_bytes=GIB // 4, frame_budget=0, max_streams=1, threads=6),
            id="threads-given-and-a-stream-each-at-least",
        ),
    ],
)
def test_each_process_gets_its_share_of_the_servers_limits(
    given: dict[str, object], cores: int, expected: dict[str, int]
) -> None:
    config = ServerConfig(address="0.0.0.0:0", metrics_address=":9100", **given)  # type: ignore[arg-type]
    share = process_config(config, 4321, cores)
    assert share.address == "0.0.0.0:4321"
    assert (share.processes, share.shared_port, share.metrics_address) == (1, True, None)
    assert share.memory_budget_bytes == expected["memory_budget_bytes"]
    assert share.frame_budget == expected["frame_budget"]
    assert share.max_streams == expected["max_streams"]
    assert share.model.intra_op_threads == expected["threads"]
    # per process, as with one: batch, workers, window, grace
    assert (share.max_batch, share.workers, share.window, share.grace_s) == (
        config.max_batch,
        config.workers,
        config.window,
        config.grace_s,
    )


@pytest.mark.parametrize("processes", [0, -1])
def test_processes_must_be_positive(processes: int) -> None:
    with pytest.raises(ConfigError, match="processes"):
        ServerConfig(processes=processes)


@pytest.mark.parametrize(
    ("field", "value"),
    [("intra_op_threads", -1), ("gpu_memory_mb", 0)],
)
def test_model_runtime_flags_refuse_bad_values(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=field.replace("_", "-")):
        ModelConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:0"])
def test_a_reserved_port_is_shared_only_by_so_reuseport(address: str) -> None:
    try:
        held, port = reserve_port(address)
    except ConfigError as exc:  # a machine without IPv6 loopback
        pytest.skip(str(exc))
    with held:
        assert port > 0
        host = held.getsockname()[0]
        # a gRPC server with SO_REUSEPORT (a process of the same serve) binds it
        server = grpc.server(ThreadPoolExecutor(1), options=[("grpc.so_reuseport", 1)])
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        assert server.add_insecure_port(target) == port
        server.start()
        try:
            # and a second serve asking for the same address is refused
            with pytest.raises(ConfigError, match="cannot listen on"):
                reserve_port(target)
            # as is a plain listener
            with socket.socket(held.family) as other, pytest.raises(OSError):
                other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                other.bind((host, port))
                other.listen()
        finally:
            server.stop(None)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("unix:/tmp/sc.sock", "TCP address"),
        ("192.0.2.1:0", "cannot listen on"),  # TEST-NET-1: not an address of this machine
    ],
)
def test_a_port_that_cannot_be_reserved_is_a_config_error(address: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        reserve_port(address)


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (50, 30.0)],
)
def test_restarts_back_off_doubling_up_to_a_cap(failures: int, delay: float) -> None:
    assert RestartBackoff().delay(failures) == delay


@pytest.mark.parametrize(
    ("before", "ran_s", "after"),
    [
        pytest.param(0, 5.0, 1, id="first-death"),
        pytest.param(3, 5.0, 4, id="died-again-soon"),
        pytest.param(3, 60.0, 1, id="ran-stably-starts-over"),
    ],
)
def test_a_process_that_ran_stably_starts_the_count_again(
    before: int, ran_s: float, after: int
) -> None:
    assert RestartBackoff().failures_after(before, ran_s) == after


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "exit code 0"),
        (3, "exit code 3"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGSEGV, "killed by SIGSEGV"),
        (-200, "killed by signal 200"),
    ],
)
def test_an_exit_is_described_by_its_code_or_signal(code: int, text: str) -> None:
    assert describe_exit(code) == text


def test_available_cores_is_at_least_one() -> None:
    assert available_cores() >= 1
