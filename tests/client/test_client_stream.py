"""Stream behaviour against the real in-process server and tiny model, written once and run with
both clients (the ``flavour`` fixture: blocking :class:`StreamClient`, asyncio
:class:`AsyncStreamClient`)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from client import (
    AsyncStreamClient,
    ClassifierClientError,
    Delivery,
    Prediction,
    StreamClient,
    encode_frame,
)
from tests.classifiers import SlowClassifier
from tests.support import free_port, wait_until

from .flavours import ClientLike, Flavour

pytestmark = pytest.mark.timeout(30)

RED, GREEN, BLUE = (220, 30, 30), (30, 220, 30), (30, 30, 220)


def tinted(
    rgb: tuple[int, int, int], size: tuple[int, int] = (64, 48), seed: int = 0
) -> np.ndarray:
    """A noisy RGB uint8 image (height x width x 3) dominated by one colour."""
    width, height = size
    noise = np.random.default_rng(seed).integers(-30, 30, (height, width, 3))
    return np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)


def encoded(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def client(server: Any, flavour: Flavour) -> ClientLike:
    return flavour.connect(server.address, connect_timeout=5)


def test_model_info_is_a_plain_value(client: ClientLike, tiny_model: Any) -> None:
    info = client.model_info

    assert info.labels == tuple(tiny_model.labels)
    assert info.input_size == tuple(tiny_model.input_size)
    assert info.default_window >= 1


@pytest.mark.parametrize(
    ("image", "send_kwargs", "label"),
    [
        pytest.param(tinted(RED), {}, "red", id="rgb-array"),
        pytest.param(
            tinted(RED)[..., ::-1].copy(), {"channel_order": "bgr"}, "red", id="bgr-array"
        ),
        pytest.param(
            tinted(BLUE)[..., ::-1].copy(), {}, "red", id="bgr-array-sent-as-rgb-swaps-colours"
        ),
        pytest.param(Image.fromarray(tinted(GREEN)), {}, "green", id="pil-rgb"),
        pytest.param(Image.fromarray(tinted(BLUE)).convert("P"), {}, "blue", id="pil-palette"),
        pytest.param(encoded(tinted(GREEN, (640, 480)), "JPEG"), {}, "green", id="jpeg-bytes"),
        pytest.param(encoded(tinted(BLUE, (20, 10)), "PNG"), {}, "blue", id="png-bytes"),
    ],
)
def test_each_frame_gets_its_prediction(
    client: ClientLike, image: Any, send_kwargs: dict[str, Any], label: str
) -> None:
    with client.open_stream("cam0", window=1, top_k=2) as stream:
        seq = stream.send(image, **send_kwargs)
        prediction = stream.receive(timeout=10)

    assert prediction is not None and prediction.ok
    assert (prediction.seq, prediction.label, prediction.frame_label) == (seq, label, label)
    assert [item.label for item in prediction.top_k][0] == label
    assert len(prediction.top_k) == 2
    assert prediction.score == pytest.approx(max(prediction.probabilities))


def test_predictions_come_in_order_and_average_over_the_window(client: ClientLike) -> None:
    # given a window of 3 and frames red, red, blue, blue, blue
    colours = [RED, RED, BLUE, BLUE, BLUE]
    with client.open_stream("cam0", window=3) as stream:
        # when every frame is sent before any result is read (pipelined, not lock-step)
        for seq, colour in enumerate(colours):
            assert stream.send(tinted(colour, seed=seq)) == seq
        stream.close_send()
        predictions = list(stream)

    # then
    assert [p.seq for p in predictions] == list(range(5))
    assert [p.frame_label for p in predictions] == ["red", "red", "blue", "blue", "blue"]
    assert [p.label for p in predictions] == ["red", "red", "red", "blue", "blue"]
    assert [p.window_frames for p in predictions] == [1, 2, 3, 3, 3]


def test_many_frames_are_in_flight(server_factory: Callable[..., Any], flavour: Flavour) -> None:
    # given a server that buffers only 4 frames of a stream before flow control pushes back
    server = server_factory(stream_buffer=4)
    frames = [tinted(RED, seed=i) for i in range(300)]

    with flavour.connect(server.address) as client:
        # when everything is sent before anything is read: the reader keeps the pipe moving
        with client.open_stream(window=1) as stream:
            for frame in frames:
                stream.send(frame, timeout=10)
            stream.close_send()
            streamed = list(stream)
        batched = client.classify(frames)

    # then
    for predictions in (streamed, batched):
        assert [p.seq for p in predictions] == list(range(300))
        assert max(p.batch_size for p in predictions) > 1  # frames were batched, so not lock-step


def test_bgr_rgb_and_pil_give_the_same_result(client: ClientLike) -> None:
    rgb = tinted(GREEN, (50, 37), seed=3)
    bgr = np.ascontiguousarray(rgb[..., ::-1])

    with client.open_stream(window=1) as stream:
        stream.send(rgb)
        stream.send(bgr, channel_order="bgr")
        stream.send(Image.fromarray(rgb))
        stream.send(Image.fromarray(rgb).convert("RGBA"))
        stream.close_send()
        predictions = list(stream)

    first = predictions[0].probabilities
    for prediction in predictions[1:]:
        np.testing.assert_allclose(prediction.probabilities, first, atol=1e-6)


def test_mixed_sizes_and_modes_in_one_stream(client: ClientLike) -> None:
    images = [
        Image.fromarray(tinted(RED, (640, 480))),
        Image.fromarray(tinted(GREEN, (7, 5))).convert("L"),
        Image.fromarray(tinted(BLUE, (100, 300))).convert("RGBA"),
        Image.fromarray(tinted(BLUE, (33, 33))).convert("P"),
        tinted(RED, (24, 32))[..., 0],  # a 2-D grey array
    ]

    predictions = client.classify(images)

    assert [p.ok for p in predictions] == [True] * 5
    assert [predictions[i].label for i in (0, 2, 3)] == ["red", "blue", "blue"]


@pytest.mark.parametrize(
    ("frames", "bad"),
    [
        pytest.param(["ok", "ok", "ok"], [], id="all-good"),
        pytest.param(["ok", "corrupt-jpeg", "ok"], [1], id="corrupt-jpeg-in-the-middle"),
        pytest.param(["truncated-png", "ok"], [0], id="truncated-png-first"),
        pytest.param(["ok", "too-large", "corrupt-jpeg", "ok"], [1, 2], id="two-bad-in-a-row"),
    ],
)
def test_bad_frames_come_back_as_errors_and_the_stream_goes_on(
    server_factory: Callable[..., Any], flavour: Flavour, frames: list[str], bad: list[int]
) -> None:
    server = server_factory(max_frame_side=256)
    make = {
        "ok": lambda: tinted(RED),
        "corrupt-jpeg": lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 64,
        "truncated-png": lambda: encoded(tinted(RED), "PNG")[:40],
        "too-large": lambda: encoded(tinted(RED, (300, 20)), "PNG"),
    }
    with flavour.connect(server.address) as client, client.open_stream(window=1) as stream:
        for kind in frames:
            stream.send(make[kind]())
        stream.close_send()
        predictions = list(stream)

    assert [p.seq for p in predictions] == list(range(len(frames)))
    assert [i for i, p in enumerate(predictions) if not p.ok] == bad
    for i in bad:
        error = predictions[i].error
        assert error is not None and error.code == 3 and error.message
    assert all(p.label == "red" for i, p in enumerate(predictions) if i not in bad)


def test_jpeg_wire_format_gives_the_same_labels(client: ClientLike) -> None:
    images = [tinted(c, (320, 240), seed=i) for i, c in enumerate([RED, GREEN, BLUE, GREEN])]
    results = {}
    for fmt in ("raw", "jpeg"):
        with client.open_stream(window=1, wire_format=fmt, jpeg_quality=85) as stream:  # type: ignore[arg-type]
            for image in images:
                stream.send(image)
            stream.close_send()
            results[fmt] = list(stream)

    assert (
        [p.label for p in results["jpeg"]]
        == [p.label for p in results["raw"]]
        == ["red", "green", "blue", "green"]
    )
    np.testing.assert_allclose(
        [p.score for p in results["jpeg"]], [p.score for p in results["raw"]], atol=0.02
    )


def test_live_stream_drops_stale_frames_and_does_not_wait_for_them(
    server_factory: Callable[..., Any], tiny_classifier: Any, flavour: Flavour
) -> None:
    # given a server whose model takes 50 ms a batch
    server = server_factory(classifier=SlowClassifier(tiny_classifier, 0.05))
    with (
        flavour.connect(server.address) as client,
        client.open_stream("cam0", delivery=Delivery.LIVE) as stream,
    ):
        # when 60 frames arrive much faster than that
        for i in range(60):
            stream.send(tinted(RED, seed=i))
        stream.close_send()
        started = time.monotonic()
        predictions = list(stream)

    # then only some are answered, the rest are counted, and iteration ends promptly
    assert 0 < len(predictions) < 60
    assert predictions[-1].dropped_frames > 0
    assert len(predictions) + predictions[-1].dropped_frames == 60
    assert [p.seq for p in predictions] == sorted(p.seq for p in predictions)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("kwargs", "code", "limit_s"),
    [
        pytest.param({}, grpc.StatusCode.UNAVAILABLE, 2.0, id="refused-fails-at-once"),
        pytest.param(
            {"wait_for_ready": True, "connect_timeout": 0.5},
            grpc.StatusCode.DEADLINE_EXCEEDED,
            2.0,
            id="wait-for-ready-times-out",
        ),
    ],
)
def test_server_down_is_a_clear_error_within_the_timeout(
    flavour: Flavour, kwargs: dict[str, Any], code: grpc.StatusCode, limit_s: float
) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()

    with pytest.raises(ClassifierClientError) as caught:
        flavour.connect(address, **kwargs)

    assert time.monotonic() - started < limit_s
    assert caught.value.code == code
    assert address in caught.value.details and "cannot reach" in caught.value.details


@pytest.mark.parametrize(
    ("close", "label"),
    [
        pytest.param(lambda client, stream: stream.close(), "stream.close", id="stream-close"),
        pytest.param(lambda client, stream: client.close(), "client.close", id="client-close"),
        pytest.param(
            lambda client, stream: stream.__exit__(None, None, None), "with-exit", id="context-exit"
        ),
    ],
)
def test_closing_mid_stream_does_not_hang(
    server_factory: Callable[..., Any],
    flavour: Flavour,
    close: Callable[[Any, Any], None],
    label: str,
) -> None:
    # given a LOSSLESS stream with frames still queued and unread predictions (small server buffer)
    server = server_factory(stream_buffer=2, max_delay_ms=20)
    client = flavour.connect(server.address)
    stream = client.open_stream(label)

    def send_until_closed() -> None:
        try:
            for _ in range(500):
                stream.send(tinted(RED))
        except ClassifierClientError:
            pass

    sender = threading.Thread(target=send_until_closed, daemon=True)
    sender.start()
    time.sleep(0.3)

    # when
    started = time.monotonic()
    close(client, stream)
    sender.join(timeout=5)

    # then
    assert time.monotonic() - started < 5
    assert not sender.is_alive()
    with pytest.raises(ClassifierClientError, match="closed"):
        stream.send(tinted(RED))
    client.close()


def test_a_stream_starts_its_call_with_its_first_frame(
    server_factory: Callable[..., Any], flavour: Flavour
) -> None:
    # The server reserves room for the largest frame from a stream's StreamConfig until its
    # first frame arrives (and ends streams that hold it idle): the config leaves with a frame.
    server = server_factory()
    service = server.server.stream_service
    with flavour.connect(server.address) as client:
        idle = client.open_stream("idle")
        time.sleep(0.3)
        assert service.open_calls == 0
        idle.close()  # nothing started, nothing to wait for
        assert idle.receive(timeout=1) is None
        with client.open_stream("cam0") as stream:
            stream.send(tinted(RED))
            wait_until(lambda: service.open_calls == 1, timeout=10)
            assert stream.receive(timeout=10) is not None


def test_receive_times_out_instead_of_blocking(client: ClientLike) -> None:
    with client.open_stream() as stream, pytest.raises(TimeoutError):
        stream.receive(timeout=0.2)


def test_stream_failure_is_raised_when_reading(
    server_factory: Callable[..., Any], flavour: Flavour
) -> None:
    server = server_factory(max_streams=1)
    with flavour.connect(server.address) as client, client.open_stream("first") as first:
        first.send(tinted(RED))
        assert first.receive(timeout=10) is not None
        with client.open_stream("second") as second:
            with pytest.raises(ClassifierClientError) as caught:
                second.receive(timeout=10)
            assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_both_clients_give_the_same_answers(server: Any) -> None:
    images = [tinted(c, seed=i) for i, c in enumerate([RED, GREEN, BLUE, RED])]
    with StreamClient(server.address) as client:
        expected = client.classify(images)

    async def main() -> tuple[list[Prediction], list[Prediction]]:
        async with AsyncStreamClient(server.address) as aclient:
            assert aclient.model_info.labels == ("red", "green", "blue")
            batch = await aclient.classify(images)
            async with aclient.open_stream("cam0", window=1) as stream:
                for image in images:
                    await stream.send(image)
                await stream.close_send()
                streamed = [p async for p in stream]
            # closing mid-stream does not hang either
            open_stream = aclient.open_stream("abandoned")
            for image in images * 10:
                await open_stream.send(image)
        return batch, streamed

    batch, streamed = asyncio.run(asyncio.wait_for(main(), 20))

    for got in (batch, streamed):
        assert (
            [p.label for p in got] == [p.label for p in expected] == ["red", "green", "blue", "red"]
        )
        np.testing.assert_allclose([p.score for p in got], [p.score for p in expected], atol=1e-6)


def test_encode_frame_output_can_be_sent(client: ClientLike) -> None:
    frame = encode_frame(tinted(BLUE), size=client.model_info.input_size, wire_format="jpeg")

    with client.open_stream(window=1) as stream:
        stream.send(frame)
        prediction = stream.receive(timeout=10)

    assert prediction is not None and prediction.label == "blue"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param({"wire_format": "png"}, "wire_format", id="unknown-wire-format"),
        pytest.param({"jpeg_quality": 0}, "jpeg_quality", id="jpeg-quality-0"),
        pytest.param({"jpeg_quality": 101}, "jpeg_quality", id="jpeg-quality-101"),
        pytest.param({"channel_order": "bgra"}, "channel_order", id="unknown-channel-order"),
        pytest.param({"window": -1}, "window", id="negative-window"),
        pytest.param({"top_k": -2}, "top_k", id="negative-top-k"),
    ],
)
def test_bad_stream_options_fail_when_the_stream_opens(
    client: ClientLike, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        client.open_stream("cam0", **options)


def test_counters_follow_the_stream(client: ClientLike) -> None:
    with client.open_stream("cam0", window=1) as stream:
        seqs = [stream.send(tinted(GREEN, seed=i)) for i in range(5)]
        stream.close_send()
        predictions = list(stream)

        assert seqs == [p.seq for p in predictions] == list(range(5))
        assert (stream.sent, stream.received, stream.dropped_frames) == (5, 5, 0)
        assert stream.receive(timeout=1) is None  # an ended stream stays ended
        with pytest.raises(ClassifierClientError, match="closed for sending"):
            stream.send(tinted(GREEN))


def test_a_closed_client_opens_no_stream(server: Any, flavour: Flavour) -> None:
    client = flavour.connect(server.address)
    client.close()
    client.close()  # twice is fine

    with pytest.raises(ClassifierClientError) as caught:
        client.open_stream("late")

    assert caught.value.code == grpc.StatusCode.CANCELLED
