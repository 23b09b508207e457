"""Shared fixtures: a real tiny Keras model and real gRPC servers on 127.0.0.1:0."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Fixtures that load TensorFlow, start servers or outside programs: tests using them are the
# end-to-end tier (`slow`); `make test-fast` runs the rest.
SLOW_FIXTURES = {"tiny_model", "tiny_classifier", "server_factory", "server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


TINY_LABELS = ("red", "green", "blue")
TINY_SIZE = (32, 24)  # width, height: not square, to catch swapped dimensions


@dataclass(frozen=True)
class TinyModel:
    model_path: Path
    labels_path: Path
    labels: tuple[str, ...]
    input_size: tuple[int, int]


def build_tiny_model(path: Path, *, logits: bool = False, channels: int = 3) -> Path:
    """A small, deterministic colour classifier: different images give clearly different outputs."""
    import keras

    keras.utils.set_random_seed(7)
    width, height = TINY_SIZE
    inputs = keras.Input((height, width, channels))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    concat = keras.layers.Concatenate()(
        [x, keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))]
    )
    outputs = keras.layers.Dense(len(TINY_LABELS), activation=None if logits else "softmax")(concat)
    model = keras.Model(inputs, outputs)
    # Make the dense layer read the mean colour strongly, so a red frame says "red".
    kernel, bias = model.layers[-1].get_weights()
    kernel[-channels:, :] = 0.0
    for i in range(min(channels, len(TINY_LABELS))):
        kernel[-channels + i, i] = 6.0
    model.layers[-1].set_weights([kernel, bias])
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    folder = tmp_path_factory.mktemp("tiny-model")
    labels_path = folder / "labels.pkl"
    # The old server's -ohe format: a pickled {label: index} dict.
    labels_path.write_bytes(pickle.dumps({label: i for i, label in enumerate(TINY_LABELS)}))
    model_path = build_tiny_model(folder / "tiny.keras")
    return TinyModel(model_path, labels_path, TINY_LABELS, TINY_SIZE)


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model: TinyModel) -> Any:
    """One loaded TensorFlow classifier shared by the in-process servers (loading costs seconds)."""
    from streaming.server.model import load_classifier
    from streaming.server.serve_config import ModelConfig

    return load_classifier(
        ModelConfig(model_path=tiny_model.model_path, labels_path=tiny_model.labels_path)
    )


@pytest.fixture
def server_factory(tiny_classifier: Any, tiny_model: TinyModel) -> Iterator[Callable[..., Any]]:
    """Start real servers on 127.0.0.1:0: ``server_factory(window=3, max_batch=8, classifier=...)``."""
    from streaming.server.grpc_server import BackgroundServer
    from streaming.server.serve_config import ModelConfig, ServerConfig

    started: list[BackgroundServer] = []

    def start(classifier: Any = None, **overrides: Any) -> BackgroundServer:
        base = ServerConfig(
            address="127.0.0.1:0",
            model=ModelConfig(model_path=tiny_model.model_path, labels_path=tiny_model.labels_path),
            max_delay_ms=5.0,
            grace_s=5.0,
        )
        running = BackgroundServer(replace(base, **overrides), classifier or tiny_classifier)
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(grace=1.0)


@pytest.fixture
def server(server_factory: Callable[..., Any]) -> Any:
    return server_factory()


def solid_frame(rgb: tuple[int, int, int], size: tuple[int, int] = TINY_SIZE) -> np.ndarray:
    """An RGB uint8 frame of one colour, height x width x 3."""
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = rgb
    return frame


@pytest.fixture
def make_frame() -> Callable[..., np.ndarray]:
    return solid_frame


def raw_frame_pb(seq: int, image: np.ndarray, **fields: Any) -> Any:
    """A RAW_RGB Frame message for an RGB uint8 image (fields override anything)."""
    from client.api.v1 import stream_classifier_pb2 as pb

    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    values: dict[str, Any] = dict(
        seq=seq, width=width, height=height, channels=channels, data=image.tobytes()
    )
    values.update(fields)
    return pb.Frame(**values)


def classify_stream(
    address: str, frames: list[Any], timeout: float = 30.0, **config: Any
) -> list[Any]:
    """Open one Classify stream, send a StreamConfig then the Frame messages, return every response."""
    import grpc

    from client.api.v1 import stream_classifier_pb2 as pb
    from client.api.v1 import stream_classifier_pb2_grpc as pb_grpc

    def requests() -> Iterator[Any]:
        yield pb.ClassifyRequest(config=pb.StreamConfig(**config))
        for frame in frames:
            yield pb.ClassifyRequest(frame=frame)

    with grpc.insecure_channel(address) as channel:
        return list(pb_grpc.StreamClassifierStub(channel).Classify(requests(), timeout=timeout))


@pytest.fixture
def frame_pb() -> Callable[..., Any]:
    return raw_frame_pb


@pytest.fixture
def run_stream() -> Callable[..., list[Any]]:
    return classify_stream
