"""Hot model swaps under running streams: a real server on ``--model-dir`` with real Keras models.

Each version's model outputs a fixed distribution of its own, whatever the frame, so every
answer says which model computed it (its ``frame_label``/``frame_score`` and its window mean)
independently of the ``model_version`` the server wrote on it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from client import AsyncStreamClient, Delivery, ModelInfo, Prediction
from streaming.server.grpc_server import BackgroundServer
from streaming.server.serve_config import ModelConfig, ServerConfig
from tests.conftest import TINY_SIZE, solid_frame
from tests.support import publish_version

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COLOURS = ("red", "green", "blue")
ANIMALS = ("cat", "dog", "bird", "fish")
WINDOW = 4


@dataclass(frozen=True)
class FixedModel:
    """A model file whose output is ``probabilities`` for every frame, and its labels."""

    path: Path
    labels: tuple[str, ...]
    probabilities: np.ndarray

    @property
    def top(self) -> tuple[str, float]:
        best = int(self.probabilities.argmax())
        return self.labels[best], float(self.probabilities[best])


def build_fixed_model(path: Path, probabilities: np.ndarray) -> Path:
    """A Keras model answering ``probabilities`` for any frame: zero weights, softmax(log p)."""
    import keras

    width, height = TINY_SIZE
    inputs = keras.Input((height, width, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(
        len(probabilities),
        activation="softmax",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(np.log(probabilities)),
    )(x)
    keras.Model(inputs, outputs).save(path)
    return path


# The versions of the test: 2 has 1's labels, 3 other labels (and another number of them).
DISTRIBUTIONS = {
    "1": (COLOURS, (0.7, 0.2, 0.1)),
    "2": (COLOURS, (0.1, 0.8, 0.1)),
    "3": (ANIMALS, (0.1, 0.1, 0.6, 0.2)),
}


@pytest.fixture(scope="module")
def fixed_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FixedModel]:
    folder = tmp_path_factory.mktemp("fixed-models")
    models = {}
    for version, (labels, probs) in DISTRIBUTIONS.items():
        p = np.asarray(probs, np.float32)
        models[version] = FixedModel(build_fixed_model(folder / f"v{version}.keras", p), labels, p)
    return models


def publish(root: Path, number: int, model: FixedModel) -> None:
    publish_version(root, number, model.path, model.labels)


@pytest.fixture
def model_server(
    tmp_path: Path, fixed_models: dict[str, FixedModel]
) -> Iterator[tuple[BackgroundServer, Path]]:
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, fixed_models["1"])
    config = ServerConfig(
        address="127.0.0.1:0",
        model=ModelConfig(model_dir=root, model_poll_s=0.2),
        window=WINDOW,
        max_batch=8,
        max_delay_ms=5.0,
        grace_s=5.0,
    )
    running = BackgroundServer(config).start()
    try:
        yield running, root
    finally:
        running.stop(grace=2.0)


@dataclass
class StreamRun:
    """What one client stream sent and got back."""

    name: str
    delivery: Delivery
    sent: list[int] = field(default_factory=list)
    answers: list[Prediction] = field(default_factory=list)

    def since(self, mark: int, version: str) -> int:
        return sum(a.model_version == version for a in self.answers[mark:])


async def run_stream(
    client: AsyncStreamClient, run: StreamRun, stop: asyncio.Event, pace_s: float
) -> None:
    """Send frames until ``stop``, then half-close and read every answer until the stream ends
    (an error ending the stream raises here, and fails the test)."""
    frame = solid_frame((200, 40, 40))
    async with client.open_stream(run.name, window=WINDOW, delivery=run.delivery) as stream:

        async def send() -> None:
            while not stop.is_set():
                run.sent.append(await stream.send(frame))
                await asyncio.sleep(pace_s)
            await stream.close_send()

        sender = asyncio.create_task(send())
        async for answer in stream:
            run.answers.append(answer)
        await sender


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in list(caplog.records))


def test_versions_swap_under_running_streams(
    model_server: tuple[BackgroundServer, Path],
    fixed_models: dict[str, FixedModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streaming")
    running, root = model_server
    runs = [StreamRun(f"lossless-{i}", Delivery.LOSSLESS) for i in range(8)]
    runs += [StreamRun(f"live-{i}", Delivery.LIVE) for i in range(8)]
    infos: dict[str, Any] = {}

    async def scenario() -> None:
        async with AsyncStreamClient(running.address) as client:
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(
                    run_stream(
                        client, run, stop, 0.02 if run.delivery is Delivery.LOSSLESS else 0.01
                    )
                )
                for run in runs
            ]

            async def phase(version: str, what: str, count: int = WINDOW + 1) -> None:
                marks = [len(run.answers) for run in runs]
                await wait_until(
                    lambda: all(
                        r.since(m, version) >= count for r, m in zip(runs, marks, strict=True)
                    ),
                    f"every stream had {count} answers of version {version} ({what})",
                )
                for task in tasks:
                    if task.done():
                        task.result()  # a stream that ended early fails here, with its error
                infos[what] = await client_info(running.address)

            # given: version 1 serves every stream
            await phase("1", "start")
            # when: version 2 (same labels) appears
            publish(root, 2, fixed_models["2"])
            await phase("2", "same labels")
            # when: version 3 (other labels) appears
            publish(root, 3, fixed_models["3"])
            await phase("3", "other labels")
            # when: a broken version 4 and a half-written version 5 appear
            broken = root / "4"
            broken.mkdir()
            (broken / "model.keras").write_bytes(b"not a model")
            (broken / "labels.txt").write_text("a\nb\n")
            half = root / "5"
            half.mkdir()
            (half / "model.keras").write_bytes(fixed_models["1"].path.read_bytes()[:1000])
            await wait_until(
                lambda: (
                    logged(caplog, "model version 4 refused")
                    and logged(caplog, "model version 5 is not ready")
                ),
                "versions 4 and 5 were looked at",
            )
            await phase("3", "refused")  # the old one still serves
            # when: version 3 is removed
            shutil.rmtree(root / "3")
            await phase("2", "rollback")
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)

    asyncio.run(asyncio.wait_for(scenario(), 240))

    # then: model info followed the versions
    assert {what: (i.model_version, i.labels) for what, i in infos.items()} == {
        "start": ("1", COLOURS),
        "same labels": ("2", COLOURS),
        "other labels": ("3", ANIMALS),
        "refused": ("3", ANIMALS),
        "rollback": ("2", COLOURS),
    }
    assert infos["refused"].model_versions_available == ("1", "2", "3")
    assert infos["rollback"].model_versions_available == ("1", "2")
    # the broken and half-written versions: refused once with a reason, waited for
    assert logged(caplog, "model version 4 refused (load)") == 1
    assert logged(caplog, "model version 5 is not ready") == 1
    metrics = running.server.metrics
    assert metrics.value("stream_classify_model_versions_refused_total", reason="load") == 1
    assert metrics.value("stream_classify_model_swaps_total") == 3
    assert metrics.value("stream_classify_model_version_info", version="2") == 1
    for run in runs:
        check_stream(run, fixed_models)


def check_stream(run: StreamRun, models: dict[str, FixedModel]) -> None:
    seqs = [a.seq for a in run.answers]
    if run.delivery is Delivery.LOSSLESS:
        assert seqs == run.sent, f"{run.name}: every frame answered once, in order"
    else:
        assert seqs == sorted(set(seqs)) and set(seqs) <= set(run.sent), run.name
    versions = [a.model_version for a in run.answers]
    assert [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v] == [
        "1",
        "2",
        "3",
        "2",
    ], f"{run.name}: each version served from its swap to the next, never interleaved"
    for index, answer in enumerate(run.answers):
        assert answer.ok, answer.error
        model = models[answer.model_version]
        # the version on the answer is the model that computed it
        assert answer.frame_label == model.top[0]
        assert answer.frame_score == pytest.approx(model.top[1], abs=1e-5)
        assert len(answer.probabilities) == len(model.labels)
        before = run.answers[index - 1] if index else answer
        if before.model_version == answer.model_version:
            continue
        previous = models[before.model_version]
        if previous.labels == model.labels:
            # window kept: the first answer of version 2 averages version 1's last frames with it
            assert before.window_frames == WINDOW and answer.window_frames == WINDOW
            expected = ((WINDOW - 1) * previous.probabilities + model.probabilities) / WINDOW
        else:
            # window restarted: the first answer of the new labels is this frame alone
            assert answer.window_frames == 1
            expected = model.probabilities
        np.testing.assert_allclose(answer.probabilities, expected, atol=1e-5)


async def client_info(address: str) -> ModelInfo:
    """A fresh client's ModelInfo (a client keeps the one it got when it connected)."""
    async with AsyncStreamClient(address) as client:
        return await client.connect()


def build_heavy_model(path: Path, labels: int = 3) -> Path:
    """A model with 66 MB of weights, so a version that is never released shows in the RSS.

    Weights this large are allocated and freed as whole mappings (glibc mmaps blocks above
    its 32 MiB threshold), so the RSS of released versions goes back to the system, and a
    version kept alive adds its full size."""
    import keras

    width, height = TINY_SIZE
    inputs = keras.Input((height, width, 3))
    x = keras.layers.Flatten()(inputs)  # 2,304 values
    x = keras.layers.Dense(7168, activation="relu")(x)  # 16.5 M float32 weights
    outputs = keras.layers.Dense(labels, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)
    return path


def test_old_versions_are_released_after_their_last_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import psutil

    # given: a server on version 1 of a 66 MB model
    caplog.set_level(logging.INFO, logger="streaming")
    heavy = FixedModel(
        build_heavy_model(tmp_path / "heavy.keras"), COLOURS, np.zeros(3, np.float32)
    )
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, heavy)
    config = ServerConfig(
        address="127.0.0.1:0",
        model=ModelConfig(model_dir=root, model_poll_s=0),
        max_batch=8,
        grace_s=2.0,
    )
    process = psutil.Process()
    rss: dict[int, int] = {}

    async def classify(address: str, count: int) -> list[Prediction]:
        async with AsyncStreamClient(address) as client:
            return await client.classify([solid_frame((40, 200, 40))] * count)

    with BackgroundServer(config) as running:
        for version in range(2, 9):
            # when: version N appears and is swapped in, then answers a few frames
            publish(root, version, heavy)
            assert running.call(running.server.check_models(), timeout=120)
            answers = asyncio.run(asyncio.wait_for(classify(running.address, 8), 60))
            assert {a.model_version for a in answers} == {str(version)}
            # the next check collects what the last batch left in reference cycles
            assert not running.call(running.server.check_models(), timeout=120)
            rss[version] = process.memory_info().rss

    # then: every replaced version was released, and the memory stays put
    released = {
        record.args[0]
        for record in caplog.records
        if record.msg == "model version %s released" and record.args
    }
    assert {str(v) for v in range(1, 8)} <= released
    growth = rss[8] - rss[3]
    mib = {version: size >> 20 for version, size in rss.items()}
    assert growth < 32 * 2**20, f"RSS grew over five swaps (MiB after each version): {mib}"


def test_sighup_checks_the_directory_when_polling_is_off(
    tmp_path: Path, fixed_models: dict[str, FixedModel]
) -> None:
    # given: a server that does not poll (--model-poll-s 0), and a new version published
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, fixed_models["1"])
    config = ServerConfig(
        address="127.0.0.1:0", model=ModelConfig(model_dir=root, model_poll_s=0), grace_s=1.0
    )
    with BackgroundServer(config) as running:
        publish(root, 2, fixed_models["2"])
        assert running.server.models.current.version == "1"

        # when: what SIGHUP calls (it also re-reads the credentials)
        async def sighup() -> None:
            running.server.reload()

        running.call(sighup())

        # then: version 2 is swapped in, without a poll
        deadline = time.monotonic() + 60
        while running.server.models.current.version != "2":
            assert time.monotonic() < deadline, "SIGHUP did not check the model directory"
            time.sleep(0.05)
        answers = asyncio.run(asyncio.wait_for(classify_once(running.address), 30))
        assert [a.model_version for a in answers] == ["2"]


async def classify_once(address: str) -> list[Prediction]:
    async with AsyncStreamClient(address) as client:
        return await client.classify([solid_frame((40, 40, 200))])


def build_fixed_onnx_model(path: Path, probabilities: np.ndarray) -> Path:
    """An ONNX model answering ``probabilities`` for any NHWC frame (zero weights, softmax(log p))."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    width, height = TINY_SIZE
    n = len(probabilities)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", height, width, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", n])],
        initializer=[
            numpy_helper.from_array(np.zeros((3, n), np.float32), "w"),
            numpy_helper.from_array(np.log(probabilities).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return path


def test_a_keras_version_is_replaced_by_an_onnx_one(
    tmp_path: Path, fixed_models: dict[str, FixedModel]
) -> None:
    pytest.importorskip("onnxruntime")
    # given: a server on a Keras version 1
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, fixed_models["1"])
    config = ServerConfig(
        address="127.0.0.1:0", model=ModelConfig(model_dir=root, model_poll_s=0), grace_s=1.0
    )
    p2 = np.asarray((0.15, 0.25, 0.6), np.float32)
    with BackgroundServer(config) as running:
        # when: version 2 is an ONNX model (model.onnx), published by the ready rule
        version = root / "2"
        version.mkdir()
        build_fixed_onnx_model(version / "model.onnx", p2)
        (version / "labels.txt").write_text("\n".join(COLOURS) + "\n")
        assert running.call(running.server.check_models(), timeout=120)

        # then: ONNX Runtime answers, under version 2
        answers = asyncio.run(asyncio.wait_for(classify_once(running.address), 30))
    assert [(a.model_version, a.frame_label) for a in answers] == [("2", "blue")]
    assert answers[0].frame_score == pytest.approx(0.6, abs=1e-5)
    np.testing.assert_allclose(answers[0].probabilities, p2, atol=1e-5)
