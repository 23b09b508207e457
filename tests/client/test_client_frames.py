"""encode_frame and the public values: conversions, resizing, wire formats; no server needed."""

from __future__ import annotations

import io
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
from PIL import Image

from client import (
    ClassifierClientError,
    Delivery,
    EncodedFrame,
    Encoding,
    ModelInfo,
    StreamOptions,
    encode_frame,
)

pytestmark = pytest.mark.timeout(10)


def _noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels == 0 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "kwargs", "encoding", "shape"),
    [
        pytest.param(_noise(48, 64), {}, Encoding.RAW_RGB, (24, 32, 3), id="rgb-array"),
        pytest.param(
            _noise(48, 64), {"channel_order": "bgr"}, Encoding.RAW_BGR, (24, 32, 3), id="bgr-array"
        ),
        pytest.param(
            _noise(48, 64, 4),
            {"channel_order": "bgr"},
            Encoding.RAW_BGR,
            (24, 32, 3),
            id="bgra-array",
        ),
        pytest.param(_noise(48, 64, 0), {}, Encoding.RAW_RGB, (24, 32, 1), id="grey-2d-array"),
        pytest.param(_noise(48, 64, 1), {}, Encoding.RAW_RGB, (24, 32, 1), id="grey-3d-array"),
        pytest.param(_noise(10, 12), {}, Encoding.RAW_RGB, (24, 32, 3), id="upscaled"),
        pytest.param(
            Image.fromarray(_noise(48, 64)), {}, Encoding.RAW_RGB, (24, 32, 3), id="pil-rgb"
        ),
        pytest.param(
            Image.fromarray(_noise(48, 64, 0)), {}, Encoding.RAW_RGB, (24, 32, 1), id="pil-L"
        ),
        pytest.param(
            Image.fromarray(_noise(48, 64, 4), "RGBA"),
            {},
            Encoding.RAW_RGB,
            (24, 32, 3),
            id="pil-RGBA",
        ),
        pytest.param(
            Image.fromarray(_noise(48, 64)).convert("P"),
            {},
            Encoding.RAW_RGB,
            (24, 32, 3),
            id="pil-P",
        ),
        pytest.param(Image.new("1", (64, 48)), {}, Encoding.RAW_RGB, (24, 32, 1), id="pil-1bit"),
        pytest.param(Image.new("CMYK", (64, 48)), {}, Encoding.RAW_RGB, (24, 32, 3), id="pil-CMYK"),
    ],
)
def test_pixels_are_resized_and_sent_raw(
    image: Any, kwargs: dict[str, Any], encoding: Encoding, shape: tuple[int, ...]
) -> None:
    frame = encode_frame(image, size=(32, 24), **kwargs)

    assert frame.encoding == encoding
    assert (frame.height, frame.width, frame.channels) == shape
    assert len(frame.data) == np.prod(shape)


def test_palette_image_with_transparency_converts_without_warnings() -> None:
    image = Image.new("P", (8, 8))
    image.info["transparency"] = (
        b"\x00" * 256
    )  # the case PIL warns about when converted straight to RGB

    assert encode_frame(image).channels == 3


def test_same_size_is_not_resampled_and_bgr_is_not_reordered() -> None:
    pixels = _noise(24, 32)

    assert encode_frame(pixels, size=(32, 24)).data == pixels.tobytes()
    assert encode_frame(pixels, size=(32, 24), channel_order="bgr").data == pixels.tobytes()


@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
def test_jpeg_wire_format_keeps_colours_and_is_smaller(channel_order: str) -> None:
    # given a smooth red-to-yellow gradient, as the caller's channel order has it
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = np.linspace(0, 255, 320, dtype=np.uint8)[None, :]
    pixels = rgb if channel_order == "rgb" else rgb[..., ::-1].copy()

    # when
    frame = encode_frame(pixels, wire_format="jpeg", jpeg_quality=80, channel_order=channel_order)  # type: ignore[arg-type]

    # then
    assert frame.encoding == Encoding.JPEG
    assert len(frame.data) < rgb.nbytes / 10
    decoded = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert np.abs(decoded.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(_png(Image.new("RGB", (5, 5))), Encoding.PNG, id="png"),
        pytest.param(b"\xff\xd8\xff\xe0 rest is not checked here", Encoding.JPEG, id="jpeg-magic"),
        pytest.param(bytearray(_png(Image.new("L", (3, 3)))), Encoding.PNG, id="bytearray"),
    ],
)
def test_encoded_bytes_pass_through(data: bytes, encoding: Encoding) -> None:
    frame = encode_frame(data, size=(32, 24))

    assert frame.encoding == encoding
    assert frame.data == bytes(data)


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        pytest.param(np.zeros((4, 4, 3), np.float32), {}, "uint8", id="float-array"),
        pytest.param(np.zeros((4, 4, 5), np.uint8), {}, "HxWxC", id="five-channels"),
        pytest.param(np.zeros((2, 4, 4, 3), np.uint8), {}, "HxWxC", id="a-batch"),
        pytest.param(np.zeros((0, 4, 3), np.uint8), {}, "empty", id="empty"),
        pytest.param(b"GIF89a....", {}, "neither JPEG nor PNG", id="gif-bytes"),
        pytest.param("cat.jpg", {}, "cannot make a frame of str", id="a-path"),
        pytest.param(
            np.zeros((4, 4, 3), np.uint8), {"channel_order": "hsv"}, "channel_order", id="bad-order"
        ),
        pytest.param(
            np.zeros((4, 4, 3), np.uint8), {"wire_format": "webp"}, "wire_format", id="bad-format"
        ),
        pytest.param(
            np.zeros((4, 4, 3), np.uint8), {"jpeg_quality": 0}, "jpeg_quality", id="bad-quality"
        ),
        pytest.param(np.zeros((4, 4, 3), np.uint8), {"size": (0, 5)}, "positive", id="bad-size"),
    ],
)
def test_bad_input_is_a_value_error(image: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_frame(image, **kwargs)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        pytest.param(
            lambda: EncodedFrame(Encoding.RAW_RGB, b"\0" * 5, 2, 2, 1), "needs 4", id="raw-size"
        ),
        pytest.param(
            lambda: EncodedFrame(Encoding.RAW_RGB, b"\0" * 8, 2, 2, 2), "1 or 3", id="raw-channels"
        ),
        pytest.param(lambda: EncodedFrame(Encoding.JPEG, b""), "empty", id="empty-jpeg"),
        pytest.param(lambda: StreamOptions(window=-1), "window", id="window"),
        pytest.param(lambda: StreamOptions(top_k=-2), "top_k", id="top-k"),
    ],
)
def test_values_validate_themselves(factory: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_values_are_plain_and_frozen() -> None:
    info = ModelInfo(labels=("a", "b"), input_width=32, input_height=24)

    assert info.input_size == (32, 24)
    assert StreamOptions(delivery=1).delivery is Delivery.LOSSLESS  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        info.input_width = 3  # type: ignore[misc]


class _FakeRpcError(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection refused"


def test_rpc_errors_become_one_client_error() -> None:
    error = ClassifierClientError.from_rpc_error(_FakeRpcError(), "cannot reach 127.0.0.1:1")

    assert isinstance(error, Exception) and not isinstance(error, grpc.RpcError)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.details == "cannot reach 127.0.0.1:1: connection refused"
    assert str(error) == "UNAVAILABLE: cannot reach 127.0.0.1:1: connection refused"
