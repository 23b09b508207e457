"""Harness for deployment tests: server replicas as subprocesses, nginx and Prometheus on loopback.

Every process is started by a fixture and always stopped by it; every wait has a deadline.
Programs come from Debian's packages (``.ci/run`` installs them); a test whose program is missing
is skipped with that reason.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import ServeProcess, launch_serve, stop_process
from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
# Long-lived gRPC streams: an idle camera or a long file must not be cut by the proxy.
STREAM_TIMEOUT = "3600s"


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float, log: Path) -> None:
    """Until something listens on 127.0.0.1:``port``; fails at once if ``process`` exits."""

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_until(
        listening,
        timeout,
        interval=0.1,
        message=lambda: f"nothing listens on port {port}:\n{log.read_text()[-3000:]}",
    )


def http_get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def metric_value(metrics_port: int, sample: str, labels: dict[str, str] | None = None) -> float:
    """One sample scraped from a ``/metrics`` endpoint; 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    text = http_get(f"http://127.0.0.1:{metrics_port}/metrics").decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and (labels is None or s.labels == labels):
                return float(s.value)
    return 0.0


# Server replicas ----------------------------------------------------------------------------


@pytest.fixture
def server_processes(
    tiny_model: Any, tmp_path: Path
) -> Iterator[Callable[..., list[ServeProcess]]]:
    """``server_processes(3, "--grace", "5")``: N replicas serving the tiny model, started in parallel,
    each with a metrics port and its stderr in ``.log``."""
    started: list[ServeProcess] = []

    def start(count: int, *extra: str, timeout: float = 180) -> list[ServeProcess]:
        pending = [
            launch_serve(
                tiny_model.model_path,
                tiny_model.labels_path,
                "--metrics-address",
                "127.0.0.1:0",
                *extra,
                log=tmp_path / f"server-{len(started) + index}.log",
                env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
            )
            for index in range(count)
        ]
        try:
            for replica in pending:
                started.append(replica.wait_ready(timeout))
        except BaseException:
            # None of this call's replicas outlives a failed start.
            for replica in pending:
                replica.stop(signal.SIGKILL)
            raise
        return started[-count:]

    yield start
    for server in started:
        server.stop(signal.SIGTERM, timeout=15)


# nginx --------------------------------------------------------------------------------------


NGINX_CONF = """\
daemon off;
# One process, the test's own user: no privilege drop, nothing outside the prefix directory.
master_process off;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream stream_classify {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        # A stream's request body is every frame it sends: no size limit, no idle cut.
        client_max_body_size 0;
        client_body_timeout {timeout};
        keepalive_timeout {timeout};
        http2_max_concurrent_streams 1024;
        location / {{
            grpc_pass grpc://stream_classify;
            grpc_read_timeout {timeout};
            grpc_send_timeout {timeout};
            grpc_socket_keepalive on;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """nginx in the foreground proxying gRPC (HTTP/2) on ``port`` to an upstream of local servers."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def error_log(self) -> str:
        return (self.directory / "error.log").read_text()

    def stop(self) -> int:
        # SIGQUIT is nginx's graceful shutdown; SIGTERM after the deadline cuts open streams.
        return stop_process(self.process, signal.SIGQUIT, timeout=10)


def nginx_config(directory: Path, port: int, upstream_ports: Sequence[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    return NGINX_CONF.format(dir=directory, port=port, servers=servers, timeout=STREAM_TIMEOUT)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[Sequence[int]], Nginx]]:
    """``nginx([port, ...])``: a gRPC proxy to those local ports, round-robin per stream."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx; .ci/run installs it)")
    started: list[Nginx] = []

    def start(upstream_ports: Sequence[int]) -> Nginx:
        directory = tmp_path / f"nginx-{len(started)}"
        directory.mkdir()
        port = free_port()
        conf = directory / "nginx.conf"
        conf.write_text(nginx_config(directory, port, upstream_ports))
        log = directory / "error.log"
        process = subprocess.Popen(
            [binary, "-p", str(directory), "-e", str(log), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        proxy = Nginx(process, port, directory)
        started.append(proxy)
        wait_for_port(port, process, timeout=20, log=log)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


# Prometheus ---------------------------------------------------------------------------------


PROMETHEUS_CONF = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: stream-classify
    static_configs:
      - targets: [{targets}]
"""


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The result vector of an instant query through ``/api/v1/query``."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expression}
        )
        answer = json.loads(http_get(url))
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def wait_for(
        self, expression: str, accept: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Query until ``accept(result)``: scrapes land every second, so a fresh value needs a few."""
        result: list[dict[str, Any]] = []

        def matched() -> bool:
            nonlocal result
            try:
                result = self.query(expression)
            except OSError:  # not ready yet: the web API answers 503 until the TSDB is open
                result = []
            return accept(result)

        wait_until(
            matched,
            timeout,
            interval=0.5,
            message=lambda: f"{expression!r} never matched: {result}",
        )
        return result

    def stop(self) -> int:
        return stop_process(self.process, signal.SIGTERM, timeout=20)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[Sequence[int]], Prometheus]]:
    """``prometheus([metrics_port, ...])``: a real Prometheus scraping those loopback ports every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
    started: list[Prometheus] = []

    def start(metrics_ports: Sequence[int]) -> Prometheus:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        conf = directory / "prometheus.yml"
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in metrics_ports)
        conf.write_text(PROMETHEUS_CONF.format(targets=targets))
        port = free_port()
        log = directory / "prometheus.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={conf}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Prometheus(process, port, log)
        started.append(server)
        wait_for_port(port, process, timeout=30, log=log)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def read_metric() -> Callable[..., float]:
    """``read_metric(metrics_port, "stream_classify_streams_opened_total")``: scrape one sample."""
    return metric_value


@pytest.fixture
def stop_gracefully() -> Callable[..., int]:
    """``stop_gracefully(process, signal.SIGTERM, timeout)``: signal, wait, kill if it must; exit code."""
    return stop_process
