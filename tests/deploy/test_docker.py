"""The Dockerfile builds, and the image serves, where a Docker daemon is reachable."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from client import StreamClient
from streaming.cli import build_parser
from streaming.server.serve_cli import serve_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def docker_daemon_problem() -> str | None:
    """Why images cannot be built here, or None when a daemon answers."""
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker daemon did not answer within 20 s"
    if info.returncode != 0 or not info.stdout.strip():
        return f"no Docker daemon is reachable: {(info.stderr or info.stdout).strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    problem = docker_daemon_problem()
    if problem:
        pytest.skip(problem)
    tag = f"stream-classify-test:{uuid.uuid4().hex[:8]}"
    build = docker("build", "-t", tag, str(REPO), timeout=3000, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    yield tag
    docker("image", "rm", "-f", tag, check=False)


def test_image_runs_as_non_root(image: str) -> None:
    user = docker("run", "--rm", "--entrypoint", "id", image, "-u")
    assert user.stdout.strip() == "10001"


def test_image_serves_classifies_and_drains(
    image: str, read_metric: Callable[..., float], make_frame: Callable[..., Any]
) -> None:
    # given: the image's default command (embedded model), ports published on loopback
    name = f"sc-test-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::1234", "-p", "127.0.0.1::9100", image)
    try:
        grpc_port = int(docker("port", name, "1234/tcp").stdout.split(":")[-1])
        metrics_port = int(docker("port", name, "9100/tcp").stdout.split(":")[-1])
        # when: one stream through the published port (the model loads first: bounded wait)
        with StreamClient(f"127.0.0.1:{grpc_port}", connect_timeout=180) as client:
            assert client.model_info.labels
            with client.open_stream("docker", window=1) as stream:
                stream.send(make_frame((128, 128, 128)))
                stream.close_send()
                answers = list(stream)
        # then
        assert len(answers) == 1
        assert read_metric(metrics_port, "stream_classify_streams_opened_total") == 1
        stop = docker("stop", "--time", "30", name, timeout=60)
        assert stop.returncode == 0
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert exit_code == "0", docker("logs", name, check=False).stderr[-3000:]
    finally:
        docker("rm", "-f", name, check=False)


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON (exec form) argument of the Dockerfile's last ``name`` instruction."""
    lines = [
        line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith(name)
    ]
    return list(json.loads(lines[-1][len(name) :]))


def test_image_command_and_compose_commands_are_valid_flags() -> None:
    # Runs without a daemon: a renamed flag must not wait for a Docker host to be noticed.
    assert dockerfile_instruction("ENTRYPOINT") == ["stream-classify"]
    parser = build_parser()
    default = parser.parse_args(dockerfile_instruction("CMD"))
    config = serve_config(default)
    assert config.metrics_host_port == ("0.0.0.0", 9100)
    assert config.address.endswith(":1234")
    exposed = next(
        line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("EXPOSE")
    )
    assert exposed.split()[1:] == ["1234", "9100"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    commands = {name: parser.parse_args(s["command"]) for name, s in compose["services"].items()}
    assert commands["server"].command == "serve"
    serve_config(commands["server"])
    assert commands["watch"].command == "watch"
    assert commands["watch"].server == "server:1234"
    for source in commands["watch"].sources:
        mounted = [
            v for v in compose["services"]["watch"]["volumes"] if source.startswith(v.split(":")[1])
        ]
        (volume,) = mounted
        host, container_path = volume.split(":")[:2]
        assert (REPO / host / source[len(container_path) :].lstrip("/")).is_file()
