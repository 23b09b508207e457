"""Fixtures for the server tests: throwaway certificate authorities and `serve` subprocesses."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import ServeProcess, launch_serve
from tests.tls_material import CertificateAuthority


@pytest.fixture
def make_ca(tmp_path: Path) -> Callable[..., CertificateAuthority]:
    def make(name: str = "test-ca") -> CertificateAuthority:
        return CertificateAuthority(tmp_path, name)

    return make


@pytest.fixture
def serve(tiny_model: Any) -> Iterator[Callable[..., ServeProcess]]:
    """``serve(*flags)``: `python -m streaming serve` with the tiny model on a loopback port,
    returned once it listens; killed at the end of the test if still running."""
    started: list[ServeProcess] = []

    def start(*flags: str) -> ServeProcess:
        running = launch_serve(tiny_model.model_path, tiny_model.labels_path, *flags)
        started.append(running)
        return running.wait_ready(timeout=90)

    yield start
    for running in started:
        running.stop(signal.SIGKILL, timeout=10)
