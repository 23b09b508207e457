"""How predictions get their probability vector: packed, the old repeated field, or none."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

from client import ClassifierClientError, Prediction, _convert
from client._types import StreamOptions
from client.api.v1 import stream_classifier_pb2 as pb
from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc

from .flavours import Flavour

pytestmark = pytest.mark.timeout(30)


def frames_at_input_size(count: int) -> list[np.ndarray]:
    # Already the tiny model's 32x24, so the client sends these very pixels (no resize).
    rng = np.random.default_rng(11)
    frames = []
    for i in range(count):
        frame = rng.integers(0, 80, (24, 32, 3), dtype=np.uint8)
        frame[..., i % 3] += 150
        frames.append(frame)
    return frames


@pytest.fixture
def as_older_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave the format unset, so the real server answers as a server predating it does: field 4."""
    config_request = _convert.config_request

    def unset_format(options: StreamOptions) -> pb.ClassifyRequest:
        request = config_request(options)
        request.config.ClearField("probabilities")
        return request

    monkeypatch.setattr(_convert, "config_request", unset_format)


@pytest.mark.parametrize(
    ("ask", "older_server", "has_vector"),
    [
        pytest.param(True, False, True, id="packed"),
        pytest.param(True, True, True, id="older-server-repeated-fallback"),
        pytest.param(False, False, False, id="none"),
        pytest.param(False, True, False, id="none-even-if-an-older-server-sends-it"),
    ],
)
def test_client_gets_the_servers_exact_probabilities_whatever_the_wire_format(
    server_factory: Any,
    flavour: Flavour,
    run_stream: Any,
    frame_pb: Any,
    request: pytest.FixtureRequest,
    ask: bool,
    older_server: bool,
    has_vector: bool,
) -> None:
    # given: the raw answers in the original repeated format, from a server that calls the model
    # one frame at a time: TensorFlow's CPU kernels may round the last bit differently for another
    # batch size, and the two runs below would otherwise be batched as timing happens to fall
    server = server_factory(max_batch=1)
    frames = frames_at_input_size(7)
    reference = run_stream(
        server.address,
        [frame_pb(i, f) for i, f in enumerate(frames)],
        window=2,
        top_k=2,
        delivery=pb.DELIVERY_MODE_LOSSLESS,
    )
    if older_server:
        request.getfixturevalue("as_older_server")
    # when: the client classifies the same frames
    with (
        flavour.connect(server.address) as client,
        client.open_stream("cam0", window=2, top_k=2, probabilities=ask) as stream,
    ):
        for frame in frames:
            stream.send(frame)
        stream.close_send()
        predictions = list(stream)
    # then: the same float32 values, bit for bit, as a read-only array (or none at all)
    assert len(predictions) == len(reference) == 7
    for got, expected in zip(predictions, reference, strict=True):
        assert (got.label, got.frame_label) == (expected.label, expected.frame_label)
        assert got.score == expected.score and got.frame_score == expected.frame_score
        assert [(t.label, t.score) for t in got.top_k] == [
            (t.label, t.score) for t in expected.top_k
        ]
        assert got.probabilities.dtype == np.float32 and not got.probabilities.flags.writeable
        if has_vector:
            np.testing.assert_array_equal(
                got.probabilities, np.array(expected.probabilities, np.float32)
            )
        else:
            assert got.probabilities.shape == (0,)


def test_prediction_stays_hashable_and_compares_without_the_vector() -> None:
    vector = np.frombuffer(np.array([0.2, 0.8], "<f4").tobytes(), "<f4")
    with_vector = Prediction(seq=1, label="b", score=0.8, probabilities=vector)
    without = Prediction(seq=1, label="b", score=0.8)

    assert with_vector == without and hash(with_vector) == hash(without)
    assert without.probabilities.shape == (0,) and without.probabilities.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        without.probabilities[...] = 1.0  # the shared empty default cannot be changed either


PACKED = np.array([0.25, 0.5, 0.25], "<f4").tobytes()
CANNED_ANSWERS = [
    # (the answer a server sends, what the client asks for, the vector it gets or the error)
    pytest.param(
        pb.ClassifyResponse(label="b", probabilities_f32=PACKED),
        True,
        [0.25, 0.5, 0.25],
        id="packed",
    ),
    pytest.param(
        pb.ClassifyResponse(label="b", probabilities=[0.25, 0.5, 0.25]),
        True,
        [0.25, 0.5, 0.25],
        id="repeated-fallback",
    ),
    pytest.param(
        pb.ClassifyResponse(label="b", probabilities=[0.25], probabilities_f32=PACKED),
        True,
        [0.25, 0.5, 0.25],
        id="both-prefers-packed",
    ),
    pytest.param(pb.ClassifyResponse(label="b"), True, [], id="nothing-sent"),
    pytest.param(
        pb.ClassifyResponse(label="b", probabilities_f32=PACKED), False, [], id="not-asked"
    ),
    pytest.param(
        pb.ClassifyResponse(label="b", probabilities_f32=b"\0" * 5),
        True,
        "probabilities_f32 has 5 bytes, not a multiple of 4",
        id="bad-truncated-bytes",
    ),
]


@pytest.mark.parametrize(("answer", "ask", "expected"), CANNED_ANSWERS)
def test_prediction_from_pb(answer: pb.ClassifyResponse, ask: bool, expected: Any) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            _convert.prediction_from_pb(answer, probabilities=ask)
        return
    prediction = _convert.prediction_from_pb(answer, probabilities=ask)
    assert prediction.label == "b"
    assert prediction.probabilities.tolist() == expected
    assert (
        prediction.probabilities.dtype == np.float32
        and not prediction.probabilities.flags.writeable
    )


class _CannedServicer(pb_grpc.StreamClassifierServicer):
    """A server that answers every frame with one canned response, and records the config."""

    def __init__(self, answer: pb.ClassifyResponse) -> None:
        self.answer = answer
        self.configs: list[pb.StreamConfig] = []

    def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> pb.ModelInfo:
        return pb.ModelInfo(labels=["a", "b", "c"], input_width=8, input_height=8)

    def Classify(
        self, request_iterator: Iterator[pb.ClassifyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassifyResponse]:
        for request in request_iterator:
            if request.HasField("config"):
                self.configs.append(request.config)
                continue
            answer = pb.ClassifyResponse()
            answer.CopyFrom(self.answer)
            answer.seq = request.frame.seq
            yield answer


@pytest.fixture
def canned() -> Iterator[tuple[_CannedServicer, str]]:
    servicer = _CannedServicer(pb.ClassifyResponse())
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_StreamClassifierServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize(("answer", "ask", "expected"), CANNED_ANSWERS)
def test_clients_read_every_answer_format_and_fail_cleanly_on_a_malformed_one(
    canned: tuple[_CannedServicer, str],
    flavour: Flavour,
    answer: pb.ClassifyResponse,
    ask: bool,
    expected: Any,
) -> None:
    # given: a server answering in a fixed format, whatever the client asks for
    servicer, address = canned
    servicer.answer = answer
    frame = np.zeros((8, 8, 3), np.uint8)

    def run() -> list[Prediction]:
        with flavour.connect(address) as client:
            return client.classify([frame], probabilities=ask)

    # when / then
    if isinstance(expected, str):
        with pytest.raises(ClassifierClientError) as caught:
            run()
        assert caught.value.code == grpc.StatusCode.INTERNAL
        assert expected in caught.value.details
    else:
        [prediction] = run()
        assert prediction.label == "b" and prediction.probabilities.tolist() == expected
    wanted = pb.PROBABILITIES_PACKED if ask else pb.PROBABILITIES_NONE
    assert [c.probabilities for c in servicer.configs] == [wanted]
