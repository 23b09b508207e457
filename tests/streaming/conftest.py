"""Fixtures for the security tests: real certificates made per test, and `serve` subprocesses."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class KeyPair:
    key: Path
    cert: Path

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()


class CertificateAuthority:
    """A throwaway CA that issues server and client certificates into a folder."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._subject = x509.Name([_cn(name)])
        certificate = (
            self._builder(self._subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = folder / f"{name}.pem"
        self.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def _builder(self, subject: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, name: str, *, server: bool) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(x509.Name([_cn(name)]), key.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(self.folder / f"{name}.key", self.folder / f"{name}.crt")
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return pair


def _cn(name: str) -> x509.NameAttribute:
    return x509.NameAttribute(NameOID.COMMON_NAME, name)


@pytest.fixture
def make_ca(tmp_path: Path) -> Any:
    def make(name: str = "test-ca") -> CertificateAuthority:
        return CertificateAuthority(tmp_path, name)

    return make


@dataclass
class ServeProcess:
    process: subprocess.Popen[str]
    address: str

    def rss_bytes(self) -> int:
        import psutil

        return int(psutil.Process(self.process.pid).memory_info().rss)

    def peak_rss_bytes(self) -> int:
        """The process's resident high-water mark (Linux ``VmHWM``): catches short spikes too."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")


@pytest.fixture
def serve(tiny_model: Any, free_port: Callable[[], int]) -> Iterator[Any]:
    """``serve(*flags, ready=check)``: `python -m streaming serve` on a free loopback port.

    ``ready(address)`` must succeed once the server answers (default: a plaintext connection).
    """
    started: list[ServeProcess] = []

    def wait_plain(address: str) -> None:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=5)

    def start(*flags: str, ready: Any = wait_plain) -> ServeProcess:
        address = f"127.0.0.1:{free_port()}"
        command = [
            sys.executable,
            "-m",
            "streaming",
            "serve",
            "-la",
            str(tiny_model.model_path),
            "-ohe",
            str(tiny_model.labels_path),
            "-ip",
            address,
            *flags,
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        running = ServeProcess(process, address)
        started.append(running)
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited early: {process.communicate()[1]}")
            try:
                ready(address)
                return running
            except (grpc.FutureTimeoutError, grpc.RpcError):
                if time.monotonic() > deadline:
                    raise

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
        running.process.communicate(timeout=10)
