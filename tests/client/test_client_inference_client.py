"""The drop-in ``sc_client``: old snippet, same answers as the old unary API, mixed images."""

from __future__ import annotations

import time
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from client import ClassifierClientError
from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc
from client.inference_client import sc_client
from tests.support import free_port

pytestmark = pytest.mark.timeout(30)

COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]


def tinted_image(rgb: tuple[int, int, int], size: tuple[int, int], seed: int) -> Image.Image:
    width, height = size
    noise = np.random.default_rng(seed).integers(-60, 60, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8))


def legacy_inference(
    address: str, images: list[Image.Image], client_id: str
) -> tuple[list[str], np.ndarray]:
    """What the old client did: one unary call with the stacked RGB uint8 batch."""
    batch = np.stack([np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images])
    request = sc_service_pb2.server_input(
        imgs=batch.tobytes(),
        batch=batch.shape[0],
        width=batch.shape[1],
        height=batch.shape[2],
        channel=batch.shape[3],
        data_type="uint8",
        client_id=client_id,
    )
    with grpc.insecure_channel(address) as channel:
        reply = sc_service_pb2_grpc.sc_serviceStub(channel).inference(request, timeout=10)
    n = batch.shape[0]
    labels = [
        "".join(row)
        for row in np.frombuffer(reply.stream_classification, dtype="<U1").reshape(n, -1)
    ]
    probabilities = np.frombuffer(reply.probabilities, dtype=reply.data_type).reshape(n, -1)
    return labels, probabilities


def test_star_import_provides_the_old_names() -> None:
    namespace: dict[str, Any] = {}

    exec("from client.inference_client import *", namespace)

    assert {"sc_client", "Image", "np"} <= namespace.keys()
    assert namespace["Image"] is Image and namespace["np"] is np


@pytest.mark.parametrize("id_len", [1, 10, 32])
def test_client_name_is_random_lowercase_letters(id_len: int) -> None:
    first, second = sc_client("127.0.0.1:1", id_len=id_len), sc_client("127.0.0.1:1", id_len=id_len)

    assert len(first.client_name) == id_len
    assert first.client_name.isalpha() and first.client_name.islower()
    assert id_len < 5 or first.client_name != second.client_name


@pytest.mark.parametrize(
    ("size", "batches"),
    [
        pytest.param((32, 24), 7, id="model-size-more-calls-than-the-window"),
        pytest.param((45, 61), 3, id="other-size-resized-by-the-server"),
    ],
)
def test_same_answers_as_the_legacy_api(server: Any, size: tuple[int, int], batches: int) -> None:
    # given the same sequence of batches for the old unary API and for sc_client (own windows each)
    sequence = [
        [
            tinted_image(COLOURS[(call + position) % 3], size, seed=10 * call + position)
            for position in range(3)
        ]
        for call in range(batches)
    ]
    target_server = sc_client(server.address)

    # when
    with target_server:
        got = [target_server(img_batch) for img_batch in sequence]
    expected = [
        legacy_inference(server.address, img_batch, "legacy-reference") for img_batch in sequence
    ]

    # then
    for (labels, probabilities), (old_labels, old_probabilities) in zip(got, expected, strict=True):
        assert labels == old_labels
        assert probabilities.dtype == np.float32 and probabilities.shape == (3, 1)
        np.testing.assert_allclose(probabilities, old_probabilities, atol=1e-5)


def test_old_snippet_runs_with_mixed_sizes_and_modes(server: Any) -> None:
    img_batch = [
        tinted_image(COLOURS[0], (640, 480), 1),
        tinted_image(COLOURS[1], (20, 10), 2).convert("L"),
        tinted_image(COLOURS[2], (33, 77), 3).convert("RGBA"),
        tinted_image(COLOURS[2], (50, 50), 4).convert("P"),
    ]
    target_server = sc_client(server.address)

    results = target_server(img_batch)
    shorter = target_server(img_batch[:2])  # fewer positions on a later call is fine

    labels, probabilities = results
    assert len(labels) == 4 and all(isinstance(label, str) and label for label in labels)
    assert (labels[0], labels[2], labels[3]) == ("red", "blue", "blue")
    assert probabilities.shape == (4, 1) and probabilities.dtype == np.float32
    assert np.all((probabilities > 0) & (probabilities <= 1))
    assert shorter[1].shape == (2, 1)
    target_server.close()


def test_close_then_use_again_starts_fresh_windows(server: Any) -> None:
    red, blue = tinted_image(COLOURS[0], (32, 24), 1), tinted_image(COLOURS[2], (32, 24), 2)
    target_server = sc_client(server.address)
    target_server([red])
    target_server([red])
    mixed_label, _ = target_server([blue])

    target_server.close()
    fresh_label, fresh_score = target_server([blue])

    assert mixed_label == ["red"]  # two reds and a blue averaged: the window remembers
    assert fresh_label == ["blue"] and fresh_score.shape == (1, 1)
    target_server.close()
    target_server.close()


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        pytest.param(
            [b"\xff\xd8\xff\xe0broken"], ClassifierClientError, "image 0", id="corrupt-jpeg"
        ),
        pytest.param([np.zeros((4, 4, 3), np.float64)], ValueError, "uint8", id="float-array"),
    ],
)
def test_bad_images_raise_and_the_client_keeps_working(
    server: Any, images: list[Any], error: type[Exception], match: str
) -> None:
    target_server = sc_client(server.address)

    with pytest.raises(error, match=match):
        target_server(images)
    labels, _ = target_server([tinted_image(COLOURS[1], (32, 24), 1)])

    assert labels == ["green"]
    target_server.close()


def test_unreachable_server_raises_quickly() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    target_server = sc_client(address)

    started = time.monotonic()
    with pytest.raises(ClassifierClientError, match="cannot reach"):
        target_server([tinted_image(COLOURS[0], (8, 8), 0)])

    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("policy", "spread"),
    [
        pytest.param("round_robin", True, id="round-robin-uses-both"),
        pytest.param(None, False, id="default-sticks-to-one"),
    ],
)
def test_load_balancing_spreads_positions_over_two_real_servers(
    server_factory: Any, policy: str | None, spread: bool
) -> None:
    # given two real servers behind one multi-address target, no proxy
    servers = [server_factory(), server_factory()]
    target = "ipv4:" + ",".join(f"127.0.0.1:{s.server.port}" for s in servers)
    target_server = sc_client(target, load_balancing=policy)

    def open_streams() -> list[int]:
        return [s.server.batcher.stream_count for s in servers]

    # when each call adds one position (its stream stays open on the server it landed on);
    # round_robin picks among the servers that are ready, so go on until both hold one (bounded)
    images: list[Image.Image] = []
    for _ in range(12 if spread else 4):
        images.append(tinted_image(COLOURS[len(images) % 3], (32, 24), seed=len(images)))
        labels, _ = target_server(images)
        assert labels == [("red", "green", "blue")[i % 3] for i in range(len(images))]
        if spread and min(open_streams()) > 0:
            break
    counts = open_streams()
    target_server.close()

    # then every position is answered by one of the servers, and only round_robin used both
    assert sum(counts) == len(images)
    assert (min(counts) > 0) is spread


def test_bad_load_balancing_policy_is_refused_when_constructed() -> None:
    with pytest.raises(ValueError, match="load_balancing"):
        sc_client("127.0.0.1:1", load_balancing="round robin")
