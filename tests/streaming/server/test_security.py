"""TLS, mTLS and bearer tokens with certificates made per test; SIGHUP reload of a real `serve`."""

from __future__ import annotations

import logging
import queue
import signal
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc
from streaming.server.auth import parse_tokens
from streaming.server.grpc_server import BackgroundServer, exposure_warning
from streaming.server.logsafe import shown
from streaming.server.serve_config import SecurityConfig, ServerConfig
from streaming.server.server_errors import ConfigError
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

ALICE = "alice-0123456789abcdef"
BOB = "bob-fedcba9876543210xyz"


def tokens_file(folder: Path, text: str) -> Path:
    path = folder / "tokens.txt"
    path.write_text(text)
    return path


def model_info(channel: grpc.Channel, token: str | None = None, timeout: float = 5) -> Any:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    return pb_grpc.StreamClassifierStub(channel).GetModelInfo(
        pb.GetModelInfoRequest(), metadata=metadata, timeout=timeout
    )


def tls_channel(address: str, ca: Any, client: Any = None, options: Any = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    return grpc.secure_channel(address, credentials, options=options)


# -- transport -------------------------------------------------------------------------------


def test_tls_serves_clients_that_trust_its_ca_and_refuses_plaintext(
    server_factory: Any, make_ca: Any
) -> None:
    ca = make_ca()
    pair = ca.issue("server", server=True)
    server = server_factory(security=SecurityConfig(tls_cert=pair.cert, tls_key=pair.key))

    with tls_channel(server.address, ca) as channel:
        assert list(model_info(channel).labels) == ["red", "green", "blue"]
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as caught:
        model_info(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    with tls_channel(server.address, make_ca("stranger")) as channel, pytest.raises(grpc.RpcError):
        model_info(channel)  # a client that does not trust the server's CA


@pytest.mark.parametrize(
    ("client_cert", "accepted"),
    [
        pytest.param("trusted", True, id="client-cert-from-the-ca"),
        pytest.param(None, False, id="no-client-cert"),
        pytest.param("other-ca", False, id="client-cert-from-another-ca"),
    ],
)
def test_mtls_requires_a_client_certificate_from_the_client_ca(
    server_factory: Any, make_ca: Any, client_cert: str | None, accepted: bool
) -> None:
    ca, clients_ca, other_ca = make_ca("server-ca"), make_ca("clients-ca"), make_ca("other-ca")
    pair = ca.issue("server", server=True)
    server = server_factory(
        security=SecurityConfig(tls_cert=pair.cert, tls_key=pair.key, tls_client_ca=clients_ca.cert)
    )
    client = {
        "trusted": clients_ca.issue("camera-1", server=False),
        "other-ca": other_ca.issue("camera-2", server=False),
        None: None,
    }[client_cert]

    with tls_channel(server.address, ca, client) as channel:
        if accepted:
            assert model_info(channel).input_width == 32
        else:
            with pytest.raises(grpc.RpcError) as caught:
                model_info(channel)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unreadable_certificate_fails_at_start(tiny_classifier: Any, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    config = ServerConfig(
        address="127.0.0.1:0", security=SecurityConfig(tls_cert=bogus, tls_key=bogus)
    )
    with pytest.raises(ConfigError, match="bogus.pem is not a PEM file"):
        BackgroundServer(config, tiny_classifier).start()


# -- tokens ----------------------------------------------------------------------------------


AUTH_CASES = [
    pytest.param(None, "missing 'authorization: Bearer <token>'", id="no-token"),
    pytest.param("Bearer wrong-token-0000000000", "not accepted", id="wrong-token"),
    pytest.param(f"Bearer {ALICE}x", "not accepted", id="token-with-extra-char"),
    pytest.param(f"Basic {ALICE}", "missing 'authorization: Bearer", id="not-a-bearer"),
    pytest.param(f"Bearer {ALICE}", None, id="valid"),
    pytest.param(f"bearer {BOB}", None, id="valid-lowercase-scheme"),
]


@pytest.fixture
def token_server(server_factory: Any, tmp_path: Path) -> Any:
    path = tokens_file(tmp_path, f"# who may call\nalice:{ALICE}\n\n{BOB}\n")
    return server_factory(security=SecurityConfig(auth_tokens=path))


@pytest.mark.parametrize(("authorization", "refusal"), AUTH_CASES)
def test_every_api_needs_a_known_token(
    token_server: Any, frame_pb: Any, authorization: str | None, refusal: str | None
) -> None:
    metadata = (("authorization", authorization),) if authorization else None
    image = np.zeros((24, 32, 3), np.uint8)
    calls = {
        "GetModelInfo": lambda channel: pb_grpc.StreamClassifierStub(channel).GetModelInfo(
            pb.GetModelInfoRequest(), metadata=metadata, timeout=5
        ),
        "Classify": lambda channel: list(
            pb_grpc.StreamClassifierStub(channel).Classify(
                iter(
                    [
                        pb.ClassifyRequest(config=pb.StreamConfig()),
                        pb.ClassifyRequest(frame=frame_pb(0, image)),
                    ]
                ),
                metadata=metadata,
                timeout=10,
            )
        ),
        "inference": lambda channel: sc_service_pb2_grpc.sc_serviceStub(channel).inference(
            sc_service_pb2.server_input(
                imgs=image.tobytes(), batch=1, width=24, height=32, channel=3, client_id="old"
            ),
            metadata=metadata,
            timeout=10,
        ),
        "reflection": lambda channel: list(
            reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                metadata=metadata,
                timeout=5,
            )
        ),
    }
    with grpc.insecure_channel(token_server.address) as channel:
        for name, call in calls.items():
            if refusal is None:
                assert call(channel), name
                continue
            with pytest.raises(grpc.RpcError) as caught:
                call(channel)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert refusal in caught.value.details(), name


def test_a_bad_token_file_on_reload_keeps_the_current_tokens(
    token_server: Any, tmp_path: Path
) -> None:
    (tmp_path / "tokens.txt").write_text("alice:short\n")
    assert token_server.call(_reload(token_server)) is False
    with grpc.insecure_channel(token_server.address) as channel:
        assert model_info(channel, ALICE).input_width == 32
    (tmp_path / "tokens.txt").write_text(f"bob:{BOB}\n")
    assert token_server.call(_reload(token_server)) is True
    with grpc.insecure_channel(token_server.address) as channel:
        assert model_info(channel, BOB).input_width == 32
        with pytest.raises(grpc.RpcError) as caught:
            model_info(channel, ALICE)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _reload(running: Any) -> bool:
    return bool(running.server.reload_credentials())


def test_health_is_open_without_a_token(token_server: Any) -> None:
    with grpc.insecure_channel(token_server.address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_logs_name_the_token_never_the_token_itself(
    token_server: Any, run_stream: Any, frame_pb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="streaming")
    image = np.zeros((24, 32, 3), np.uint8)
    with grpc.insecure_channel(token_server.address) as channel:
        responses = list(
            pb_grpc.StreamClassifierStub(channel).Classify(
                iter(
                    [
                        pb.ClassifyRequest(config=pb.StreamConfig(client_id="cam")),
                        pb.ClassifyRequest(frame=frame_pb(0, image)),
                    ]
                ),
                metadata=(("authorization", f"Bearer {ALICE}"),),
                timeout=10,
            )
        )
        with pytest.raises(grpc.RpcError):
            model_info(channel, "Bearer-less-wrong-token-1234")
    assert len(responses) == 1
    text = caplog.text
    assert "token=alice client='cam'" in text
    assert "refused '/streamclassify.v1.StreamClassifier/GetModelInfo'" in text
    assert ALICE not in text and "wrong-token" not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"# comment\nalice:{ALICE}\n  \n{BOB}\n",
            {ALICE: "alice", BOB: "line 4"},
            id="names-comments-blank-lines",
        ),
        pytest.param(f"ops : {ALICE} \n", {ALICE: "ops"}, id="spaces-trimmed"),
        pytest.param(f"a:{ALICE}:more\n", {f"{ALICE}:more": "a"}, id="colon-in-token"),
    ],
)
def test_token_file_format(text: str, expected: dict[str, str]) -> None:
    table = parse_tokens(text)
    for token, name in expected.items():
        assert table.name_of(token) == name
    assert table.name_of("unknown-token-000000") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("alice:short\n", "at least 16 characters", id="short-token"),
        pytest.param("# only comments\n\n", "holds no token", id="empty"),
        pytest.param(f"a:{ALICE}\na:{BOB}\n", "used twice", id="duplicate-name"),
        pytest.param(f"a:{ALICE}\nb:{ALICE}\n", "same token appears twice", id="duplicate-token"),
    ],
)
def test_bad_token_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_tokens(text)


# -- exposure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "security", "warned"),
    [
        pytest.param("[::]:1234", {}, "without TLS and tokens", id="default-address"),
        pytest.param("0.0.0.0:1234", {"tls": True}, "without tokens", id="tls-only"),
        pytest.param("10.0.0.5:1234", {"tokens": True}, "without TLS", id="tokens-only"),
        pytest.param("camera-host:1234", {}, "without TLS and tokens", id="host-name"),
        pytest.param("0.0.0.0:1234", {"tls": True, "tokens": True}, None, id="tls-and-tokens"),
        pytest.param("127.0.0.1:1234", {}, None, id="loopback-v4"),
        pytest.param("[::1]:1234", {}, None, id="loopback-v6"),
        pytest.param("localhost:1234", {}, None, id="localhost"),
    ],
)
def test_exposed_addresses_without_tls_or_tokens_are_warned_about(
    tmp_path: Path, address: str, security: dict[str, bool], warned: str | None
) -> None:
    pem = tmp_path / "x.pem"
    settings = SecurityConfig(
        tls_cert=pem if security.get("tls") else None,
        tls_key=pem if security.get("tls") else None,
        auth_tokens=pem if security.get("tokens") else None,
    )
    warning = exposure_warning(ServerConfig(address=address, security=settings))
    if warned is None:
        assert warning is None
    else:
        assert warning is not None and warned in warning and "SECURITY.md" in warning


def test_reflection_can_be_turned_off(server_factory: Any) -> None:
    server = server_factory(security=SecurityConfig(reflection=False))
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as caught:
        list(
            reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("cam0", "'cam0'", id="plain"),
        pytest.param("a\nb\x1b[2J", "'a\\nb\\x1b[2J'", id="control-characters"),
        pytest.param("é", "'\\xe9'", id="non-ascii"),
        pytest.param("\x00" * 10_000_000, "... (10000000 chars)", id="huge"),
    ],
)
def test_client_strings_are_shortened_and_escaped_for_logs(value: str, expected: str) -> None:
    text = shown(value)
    assert expected in text and "\n" not in text and len(text) < 600


# -- reload ----------------------------------------------------------------------------------


class OpenStream:
    """A Classify stream kept open across the reload: frames go in one at a time."""

    def __init__(self, channel: grpc.Channel, token: str) -> None:
        self._requests: queue.Queue[pb.ClassifyRequest | None] = queue.Queue()
        self._requests.put(
            pb.ClassifyRequest(config=pb.StreamConfig(delivery=pb.DELIVERY_MODE_LOSSLESS))
        )
        self.call = pb_grpc.StreamClassifierStub(channel).Classify(
            iter(self._requests.get, None),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=90,
        )

    def ask(self, seq: int) -> Any:
        image = np.zeros((24, 32, 3), np.uint8)
        image[..., 0] = 200
        self._requests.put(
            pb.ClassifyRequest(
                frame=pb.Frame(seq=seq, width=32, height=24, channels=3, data=image.tobytes())
            )
        )
        return next(self.call)

    def close(self) -> list[Any]:
        self._requests.put(None)
        return list(self.call)


@pytest.mark.slow
def test_sighup_swaps_tokens_and_certificates_and_keeps_open_streams(
    serve: Any, make_ca: Any, tmp_path: Path
) -> None:
    # given: a TLS server taking alice's token, and a stream open through it
    first_ca, second_ca = make_ca("first-ca"), make_ca("second-ca")
    first = first_ca.issue("server-1", server=True)
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_bytes(first.cert_pem)
    key.write_bytes(first.key_pem)
    tokens = tokens_file(tmp_path, f"alice:{ALICE}\n")

    running = serve("--tls-cert", str(cert), "--tls-key", str(key), "--auth-tokens", str(tokens))
    old_channel = tls_channel(running.address, first_ca)
    stream = OpenStream(old_channel, ALICE)
    assert stream.ask(0).label == "red"

    # when: bob replaces alice, a certificate from another CA replaces the first, and SIGHUP
    second = second_ca.issue("server-2", server=True)
    tokens.write_text(f"# rotated\nbob:{BOB}\n")
    cert.write_bytes(second.cert_pem)
    key.write_bytes(second.key_pem)
    running.process.send_signal(signal.SIGHUP)

    # then: new connections see the new certificate and take bob's token ...
    def bob_gets_in_with_the_new_certificate() -> bool:
        try:
            with tls_channel(running.address, second_ca) as channel:
                return bool(model_info(channel, BOB, timeout=2).input_width == 32)
        except grpc.RpcError:
            return False

    wait_until(bob_gets_in_with_the_new_certificate, timeout=20, interval=0.2, message="no reload")
    with tls_channel(running.address, second_ca) as channel, pytest.raises(grpc.RpcError) as caught:
        model_info(channel, ALICE)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # A fresh connection that trusts only the first CA is refused: the certificate changed.
    options = [("grpc.use_local_subchannel_pool", 1)]
    with tls_channel(running.address, first_ca, options=options) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            model_info(channel, BOB)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # ... and the stream opened before the reload goes on answering.
    assert [stream.ask(seq).seq for seq in (1, 2, 3)] == [1, 2, 3]
    assert stream.close() == []
    old_channel.close()
    running.process.send_signal(signal.SIGTERM)
    rest, err = running.process.communicate(timeout=30)
    out = running.banner + rest  # the banner was read to learn the port
    assert running.process.returncode == 0
    assert "TLS, tokens required)" in out and "WARNING" not in out
    assert "reloaded credentials: 1 tokens TLS certificates" in err
    assert ALICE not in err and BOB not in err
