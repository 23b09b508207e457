"""The old unary API, exercised by a client written exactly like the old one."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest

from client.api.legacy import sc_service_pb2, sc_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)


def old_client_call(
    address: str, images: list[np.ndarray], client_id: str
) -> tuple[list[str], np.ndarray]:
    """What the old ``sc_client`` did: stack RGB images, send the shape, decode the numpy bytes."""
    batch = np.stack(images)
    request = sc_service_pb2.server_input(
        imgs=batch.tobytes(),
        batch=batch.shape[0],
        width=batch.shape[1],
        height=batch.shape[2],
        channel=batch.shape[3],
        data_type=str(batch.dtype),
        client_id=client_id,
    )
    with grpc.insecure_channel(address) as channel:
        output = sc_service_pb2_grpc.sc_serviceStub(channel).inference(request, timeout=20)
    rows = np.frombuffer(output.stream_classification, dtype="<U1").reshape(batch.shape[0], -1)
    labels = ["".join(row) for row in rows]
    probabilities = np.frombuffer(output.probabilities, dtype=output.data_type).reshape(
        batch.shape[0], -1
    )
    return labels, probabilities


def colour(rgb: tuple[int, int, int], height: int = 24, width: int = 32) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rgb
    return image


def test_old_client_gets_labels_and_window_averaged_scores(
    server: Any, run_stream: Any, frame_pb: Any
) -> None:
    # given: per-frame probabilities of two positions' image sequences, from the streaming API
    position0 = [
        colour((220, 10, 10)),
        colour((10, 220, 10)),
        colour((10, 220, 10)),
        colour((10, 10, 220)),
    ]
    position1 = [colour((10, 10, 220))] * 4
    reference = [
        np.array(
            [
                r.probabilities
                for r in run_stream(
                    server.address,
                    [frame_pb(i, f) for i, f in enumerate(seq)],
                    window=1,
                    delivery=1,
                )
            ]
        )
        for seq in (position0, position1)
    ]
    labels = server.server.classifier.description.labels

    # when: the old client sends them as four batches of two images
    for call in range(4):
        got_labels, got_scores = old_client_call(
            server.address, [position0[call], position1[call]], "old-client"
        )

        # then: each position is its own window of the server default (5)
        assert got_scores.shape == (2, 1) and got_scores.dtype == np.float32
        for position in range(2):
            mean = reference[position][: call + 1].mean(axis=0)
            assert got_labels[position] == labels[int(mean.argmax())]
            assert got_scores[position, 0] == pytest.approx(mean.max(), abs=1e-5)


def test_old_clients_windows_are_separate_per_client_id(server: Any) -> None:
    old_client_call(server.address, [colour((220, 10, 10))], "client-a")
    labels_b, _ = old_client_call(server.address, [colour((10, 10, 220))], "client-b")
    labels_a, scores_a = old_client_call(server.address, [colour((220, 10, 10))], "client-a")
    assert labels_b == ["blue"] and labels_a == ["red"]
    assert scores_a[0, 0] > 0.5


def test_old_client_images_of_other_sizes_are_resized(server: Any) -> None:
    labels, scores = old_client_call(server.address, [colour((10, 220, 10), 300, 200)] * 3, "big")
    assert labels == ["green"] * 3
    assert scores.shape == (3, 1)


BAD_REQUESTS = [
    pytest.param(dict(batch=0), "must be > 0", id="zero-batch"),
    pytest.param(dict(imgs=b"\x00" * 5), "imgs is 5 bytes", id="short-data"),
    pytest.param(
        dict(channel=2, imgs=b"\x00" * (24 * 32 * 2)),
        "unsupported channel count 2",
        id="two-channels",
    ),
    pytest.param(dict(data_type="complex-ish"), "unknown data_type", id="bad-dtype"),
    pytest.param(dict(data_type="U1"), "not numeric", id="text-dtype"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_REQUESTS)
def test_bad_old_requests_get_invalid_argument_and_the_server_goes_on(
    server: Any, fields: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = dict(
        imgs=colour((1, 2, 3)).tobytes(),
        batch=1,
        width=24,
        height=32,
        channel=3,
        data_type="uint8",
        client_id="bad",
    )
    values.update(fields)
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as caught:
        sc_service_pb2_grpc.sc_serviceStub(channel).inference(
            sc_service_pb2.server_input(**values), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()
    labels, _ = old_client_call(server.address, [colour((220, 10, 10))], "after-bad")
    assert labels == ["red"]


def test_idle_old_clients_are_forgotten(server_factory: Any) -> None:
    server = server_factory(legacy_idle_s=0.01)
    old_client_call(server.address, [colour((220, 10, 10))] * 3, "idle")
    assert server.server.batcher.stream_count == 3
    import time

    time.sleep(0.05)
    old_client_call(server.address, [colour((220, 10, 10))], "fresh")
    assert server.server.batcher.stream_count == 1
