"""Reaching servers: TLS and mutual TLS, bearer tokens, gRPC targets, round_robin over two
servers, and the connection flags every client CLI shares. Both clients, real servers."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest
from PIL import Image

from client import (
    ClassifierClientError,
    add_connection_arguments,
    channel_credentials,
    connection_from_args,
)
from client.classify import classify_cli
from client.inference_client import sc_client
from tests.support import free_port
from tests.tls_material import TlsMaterial, make_tls_material

from .flavours import Flavour
from .grpc_servers import TokenInterceptor, aio_server, server_credentials

pytestmark = pytest.mark.timeout(60)

TOKEN_VARIABLE = "STREAM_CLASSIFY_TOKEN"
FRAME = np.full((8, 8, 3), 200, np.uint8)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


# Tokens.


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param("s3cret", "Bearer s3cret", id="token"),
        pytest.param(None, None, id="no-token"),
    ],
)
def test_token_reaches_the_server_as_bearer_metadata_on_every_call(
    flavour: Flavour, token: str | None, expected: str | None
) -> None:
    recorder = TokenInterceptor()
    with aio_server(interceptors=(recorder,)) as address:
        client = flavour.connect(address, token=token)
        [prediction] = client.classify([FRAME])
        client.close()

    assert prediction.label == "ok"
    assert recorder.seen == [("GetModelInfo", expected), ("Classify", expected)]


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
def test_a_refused_token_is_a_clear_error(flavour: Flavour, token: str | None) -> None:
    with (
        aio_server(interceptors=(TokenInterceptor(required="right"),)) as address,
        pytest.raises(ClassifierClientError) as caught,
    ):
        flavour.connect(address, token=token)

    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong or missing token" in caught.value.details


# TLS.


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_tls_end_to_end(flavour: Flavour, tls: TlsMaterial, mutual: bool) -> None:
    # given a server that proves itself with a certificate of our CA (and asks for ours)
    recorder = TokenInterceptor(required="s3cret")
    client_files = (tls.client.cert, tls.client.key) if mutual else (None, None)
    credentials = channel_credentials(tls.ca, *client_files)
    with aio_server(
        credentials=server_credentials(tls, mutual=mutual), interceptors=(recorder,)
    ) as address:
        # when frames go through a stream
        client = flavour.connect(address, credentials=credentials, token="s3cret")
        with client.open_stream("cam0") as stream:
            seqs = [stream.send(FRAME) for _ in range(3)]
            stream.close_send()
            predictions = list(stream)
        client.close()

    # then every frame is answered, and the token travelled inside the TLS channel
    assert [(p.seq, p.label) for p in predictions] == [(seq, "ok") for seq in seqs]
    assert recorder.seen == [("GetModelInfo", "Bearer s3cret"), ("Classify", "Bearer s3cret")]


@pytest.mark.parametrize(
    "case", ["server-from-another-ca", "mutual-tls-without-a-client-certificate", "plaintext"]
)
def test_tls_mismatches_fail_cleanly_when_connecting(
    flavour: Flavour, tls: TlsMaterial, tmp_path: Path, case: str
) -> None:
    mutual = case == "mutual-tls-without-a-client-certificate"
    if case == "server-from-another-ca":
        credentials: grpc.ChannelCredentials | None = channel_credentials(
            make_tls_material(tmp_path / "other", "another CA").ca
        )
    elif case == "plaintext":
        credentials = None
    else:
        credentials = channel_credentials(tls.ca)

    with (
        aio_server(credentials=server_credentials(tls, mutual=mutual)) as address,
        pytest.raises(ClassifierClientError) as caught,
    ):
        flavour.connect(address, credentials=credentials, connect_timeout=5)

    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach" in caught.value.details and address in caught.value.details


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("files", "match"),
    [
        pytest.param(
            lambda tls, tmp: (tls.ca, tls.client.cert, None), "needs its private key", id="no-key"
        ),
        pytest.param(
            lambda tls, tmp: (None, None, tls.client.key), "needs its private key", id="no-cert"
        ),
        pytest.param(
            lambda tls, tmp: (tmp / "missing.pem", None, None),
            "cannot read the CA certificate .*missing.pem: no such file",
            id="missing-ca",
        ),
        pytest.param(
            lambda tls, tmp: (tmp, None, None),
            "cannot read the CA certificate .*: is a directory",
            id="folder-not-file",
        ),
        pytest.param(
            lambda tls, tmp: (tls.ca, write(tmp / "cert.pem", b"junk"), tls.client.key),
            "client certificate .*cert.pem is not a PEM file",
            id="not-pem",
        ),
    ],
)
def test_channel_credentials_reject_bad_files_clearly(
    tls: TlsMaterial, tmp_path: Path, files: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=f"(?i){match}"):
        channel_credentials(*files(tls, tmp_path))


# Targets and load balancing.


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(lambda port, sock: f"dns:///127.0.0.1:{port}", id="dns-scheme"),
        pytest.param(lambda port, sock: f"ipv4:127.0.0.1:{port}", id="ipv4-scheme"),
        pytest.param(
            lambda port, sock: f"ipv4:127.0.0.1:{free_port()},127.0.0.1:{port}",
            id="ipv4-list-first-down",
        ),
        pytest.param(lambda port, sock: f"unix:{sock}", id="unix-socket"),
    ],
)
def test_any_grpc_target_reaches_the_server(
    server_factory: Callable[..., Any], flavour: Flavour, target: Callable[[int, str], str]
) -> None:
    with tempfile.TemporaryDirectory(prefix="sc-", dir="/tmp") as folder:
        socket_path = f"{folder}/server.sock"  # short: unix socket paths are limited to ~100 bytes
        tcp = server_factory()
        unix = server_factory(address=f"unix:{socket_path}")
        assert unix is not None
        client = flavour.connect(target(tcp.server.port, socket_path), load_balancing="pick_first")
        [prediction] = client.classify([np.full((24, 32, 3), (220, 30, 30), np.uint8)])
        client.close()

    assert prediction.label == "red"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"address": ""}, "address", id="empty-address"),
        pytest.param({"address": "127.0.0.1"}, "address", id="no-port"),
        pytest.param({"address": "127.0.0.1: 1"}, "address", id="space-in-address"),
        pytest.param({"load_balancing": "round robin"}, "load_balancing", id="bad-policy-name"),
        pytest.param({"connect_timeout": 0}, "connect_timeout", id="zero-timeout"),
        pytest.param(
            {"max_streams_per_channel": 0}, "max_streams_per_channel", id="no-stream-per-channel"
        ),
    ],
)
def test_bad_connection_settings_are_refused(
    flavour: Flavour, kwargs: dict[str, Any], match: str
) -> None:
    settings = {"address": "127.0.0.1:1", **kwargs}

    with pytest.raises(ValueError, match=match):
        flavour.connect(**settings)


@pytest.mark.parametrize(
    ("policy", "spread"),
    [
        pytest.param("round_robin", True, id="round-robin-uses-both"),
        pytest.param("pick_first", False, id="pick-first-sticks-to-one"),
    ],
)
def test_load_balancing_spreads_streams_over_two_real_servers(
    server_factory: Callable[..., Any], flavour: Flavour, policy: str, spread: bool
) -> None:
    # given two real servers behind one target
    servers = [server_factory(), server_factory()]
    target = "ipv4:" + ",".join(f"127.0.0.1:{s.server.port}" for s in servers)
    client = flavour.connect(target, load_balancing=policy)
    frame = np.full((24, 32, 3), (30, 30, 220), np.uint8)

    def open_streams() -> list[int]:
        return [s.server.batcher.stream_count for s in servers]

    # when streams are opened one by one (each answered, so it is open on its server); round_robin
    # picks among the servers that are ready, so keep going until both have one (bounded)
    streams = []
    for _ in range(4 if not spread else 20):
        stream = client.open_stream(f"cam{len(streams)}", window=1)
        stream.send(frame)
        prediction = stream.receive(timeout=10)
        assert prediction is not None and prediction.label == "blue"
        streams.append(stream)
        if spread and min(open_streams()) > 0:
            break
    counts = open_streams()
    for stream in streams:
        stream.close()
    client.close()

    # then
    assert sum(counts) == len(streams)
    assert (min(counts) > 0) is spread


# The shared flags.


def parse_connection(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "environment", "tls_on", "token", "policy"),
    [
        pytest.param([], None, False, None, None, id="nothing"),
        pytest.param(["--token", "t1"], "from-env", False, "t1", None, id="flag-beats-env"),
        pytest.param([], "from-env", False, "from-env", None, id="token-from-env"),
        pytest.param([], "", False, None, None, id="empty-env-is-no-token"),
        pytest.param(["--tls"], None, True, None, None, id="system-roots"),
        pytest.param(["--tls-ca", "CA"], None, True, None, None, id="own-ca"),
        pytest.param(
            ["--tls-ca", "CA", "--tls-cert", "CERT", "--tls-key", "KEY"],
            None,
            True,
            None,
            None,
            id="mutual",
        ),
        pytest.param(
            ["--lb-policy", "round_robin"], None, False, None, "round_robin", id="round-robin"
        ),
    ],
)
def test_connection_flags_become_client_arguments(
    tls: TlsMaterial,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    environment: str | None,
    tls_on: bool,
    token: str | None,
    policy: str | None,
) -> None:
    files = {"CA": str(tls.ca), "CERT": str(tls.client.cert), "KEY": str(tls.client.key)}
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    if environment is not None:
        monkeypatch.setenv(TOKEN_VARIABLE, environment)

    arguments = connection_from_args(parse_connection([files.get(a, a) for a in argv]))

    assert isinstance(arguments["credentials"], grpc.ChannelCredentials) is tls_on
    assert (arguments["token"], arguments["load_balancing"]) == (token, policy)


def test_connection_flags_refuse_a_certificate_without_its_key(tls: TlsMaterial) -> None:
    with pytest.raises(ValueError, match="private key"):
        connection_from_args(parse_connection(["--tls-cert", str(tls.client.cert)]))


def test_the_token_never_shows_in_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "s3cret-value")
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)

    assert "s3cret-value" not in parser.format_help()
    assert TOKEN_VARIABLE in parser.format_help()


def test_classify_cli_over_mutual_tls_with_the_token_from_the_environment(
    tls: TlsMaterial,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a server that wants our client certificate and a token, and the token in the env
    monkeypatch.setenv(TOKEN_VARIABLE, "s3cret")
    image = tmp_path / "photo.png"
    Image.fromarray(FRAME).save(image)
    recorder = TokenInterceptor(required="s3cret")
    parser = argparse.ArgumentParser()
    classify_cli.add_arguments(parser)
    with aio_server(
        credentials=server_credentials(tls, mutual=True), interceptors=(recorder,)
    ) as address:
        args = parser.parse_args(
            [
                str(image),
                "--server",
                address,
                "--format",
                "jsonl",
                "--tls-ca",
                str(tls.ca),
                "--tls-cert",
                str(tls.client.cert),
                "--tls-key",
                str(tls.client.key),
            ]
        )
        # when
        code = classify_cli.run(args)
    out, err = capsys.readouterr()

    # then
    assert code == 0, err
    assert [json.loads(line)["label"] for line in out.splitlines()] == ["ok"]
    assert {authorization for _, authorization in recorder.seen} == {"Bearer s3cret"}


def test_classify_cli_reports_a_bad_tls_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    classify_cli.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--tls-ca", str(tmp_path / "nope.pem")])

    code = classify_cli.run(args)

    _, err = capsys.readouterr()
    assert code == 2
    assert "cannot read the CA certificate" in err and "nope.pem" in err


# sc_client.


@pytest.mark.parametrize(
    ("argument", "environment", "expected"),
    [
        pytest.param(None, "from-env", "Bearer from-env", id="env"),
        pytest.param("given", "from-env", "Bearer given", id="argument-beats-env"),
        pytest.param(None, None, None, id="none"),
    ],
)
def test_sc_client_sends_its_token_over_tls(
    tls: TlsMaterial,
    monkeypatch: pytest.MonkeyPatch,
    argument: str | None,
    environment: str | None,
    expected: str | None,
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    if environment is not None:
        monkeypatch.setenv(TOKEN_VARIABLE, environment)
    recorder = TokenInterceptor()
    with aio_server(
        credentials=server_credentials(tls, mutual=False), interceptors=(recorder,)
    ) as address:
        target_server = sc_client(
            address, 12, credentials=channel_credentials(tls.ca), token=argument
        )
        labels, scores = target_server([FRAME, FRAME])
        target_server.close()

    assert labels == ["ok", "ok"] and scores.shape == (2, 1)
    assert len(target_server.client_name) == 12  # the old positional id_len still works
    assert {authorization for _, authorization in recorder.seen} == {expected}
