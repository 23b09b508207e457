"""ONNX Runtime models: the input read from the model, served answers equal ONNX Runtime's own
output, providers from --device, and a server that starts without the optional extra."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from streaming.server.model import load_classifier
from streaming.server.onnx_model import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    INSTALL_HINT,
    OnnxClassifier,
    execution_providers,
    read_input,
)
from streaming.server.serve_config import ModelConfig, Scaling, ServerConfig, SoftmaxMode
from streaming.server.server_errors import ConfigError, LabelsError, ModelLoadError
from tests.support import free_port

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[3]
LABELS = ("red", "green", "blue")
WIDTH, HEIGHT = 32, 24  # not square, to catch swapped dimensions
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


# -- the input read from the model, completed by flags ---------------------------------------

F32, U8 = np.dtype(np.float32), np.dtype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "onnx_type", "flags", "expected"),
    [
        pytest.param(
            ["N", 3, 24, 32], "tensor(float)", {}, ("nchw", 24, 32, 3, F32, None), id="nchw-torch"
        ),
        pytest.param(
            [None, 24, 32, 3], "tensor(float)", {}, ("nhwc", 24, 32, 3, F32, None), id="nhwc-keras"
        ),
        pytest.param(
            [1, 1, 28, 28], "tensor(float)", {}, ("nchw", 28, 28, 1, F32, 1), id="grey-fixed-batch"
        ),
        pytest.param(
            ["batch", 224, 224, 3], "tensor(uint8)", {}, ("nhwc", 224, 224, 3, U8, None), id="uint8"
        ),
        pytest.param(
            ["batch", 3, 224, 224],
            "tensor(float16)",
            {},
            ("nchw", 224, 224, 3, np.dtype(np.float16), None),
            id="float16",
        ),
        pytest.param(
            ["N", 3, "height", "width"],
            "tensor(float)",
            {"input_size": (64, 48)},
            ("nchw", 48, 64, 3, F32, None),
            id="dynamic-size-from-flag",
        ),
        pytest.param(
            ["N", 3, 224, "width"],
            "tensor(float)",
            {"input_size": (100, 224)},
            ("nchw", 224, 100, 3, F32, None),
            id="half-dynamic-size-agrees",
        ),
        pytest.param(
            ["N", 3, 3, 3],
            "tensor(float)",
            {"layout": "nhwc"},
            ("nhwc", 3, 3, 3, F32, None),
            id="ambiguous-settled-by-flag",
        ),
        pytest.param(
            ["N", 3, 24, 32],
            "tensor(float)",
            {"scaling": "meanstd"},
            ("nchw", 24, 32, 3, F32, None),
            id="float-with-meanstd",
        ),
    ],
)
def test_the_input_is_read_from_the_model(
    shape: list[object], onnx_type: str, flags: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    spec = read_input("x", shape, onnx_type, **flags)
    assert (spec.layout, spec.height, spec.width, spec.channels, spec.dtype, spec.batch) == expected


@pytest.mark.parametrize(
    ("shape", "onnx_type", "flags", "message"),
    [
        pytest.param(["N", 24, 32], "tensor(float)", {}, "an image classifier takes", id="rank-3"),
        pytest.param(["N", 3, 3, 3], "tensor(float)", {}, "could be either", id="ambiguous"),
        pytest.param(
            ["N", "c", "h", "w"], "tensor(float)", {}, "has no dimension", id="nothing-fixed"
        ),
        pytest.param(["N", 4, 24, 32], "tensor(float)", {}, "has no dimension", id="four-channels"),
        pytest.param(
            ["N", 24, 32, 3], "tensor(float)", {"layout": "nchw"}, "24 channels", id="wrong-flag"
        ),
        pytest.param(
            ["N", "c", 24, 32], "tensor(float)", {"layout": "nchw"}, "not fixed channels", id="c?"
        ),
        pytest.param(
            ["N", 3, "h", "w"], "tensor(float)", {}, "pass --input-size", id="dynamic-no-size"
        ),
        pytest.param(
            ["N", 3, 24, 32],
            "tensor(float)",
            {"input_size": (64, 48)},
            "contradicts",
            id="size-contradicts",
        ),
        pytest.param(["N", 3, 24, 32], "tensor(int64)", {}, r"takes tensor\(int64\)", id="int64"),
        pytest.param(
            ["N", 24, 32, 3],
            "tensor(uint8)",
            {"scaling": "unit"},
            "scales them itself",
            id="uint8-with-scaling",
        ),
    ],
)
def test_inputs_the_server_cannot_feed_are_refused(
    shape: list[object], onnx_type: str, flags: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        read_input("x", shape, onnx_type, **flags)


# -- execution providers from --device --------------------------------------------------------

CPU_ONLY = [CPU_PROVIDER]
WITH_CUDA = [CUDA_PROVIDER, CPU_PROVIDER]


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("auto", CPU_ONLY, [CPU_PROVIDER]),
        ("auto", WITH_CUDA, [CUDA_PROVIDER, CPU_PROVIDER]),
        ("cpu", WITH_CUDA, [CPU_PROVIDER]),
        ("/CPU:0", WITH_CUDA, [CPU_PROVIDER]),
        ("gpu", WITH_CUDA, [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]),
        ("cuda:1", WITH_CUDA, [(CUDA_PROVIDER, {"device_id": 1}), CPU_PROVIDER]),
        ("/GPU:2", WITH_CUDA, [(CUDA_PROVIDER, {"device_id": 2}), CPU_PROVIDER]),
    ],
)
def test_providers_follow_the_device_flag(
    device: str, available: list[str], expected: list[object]
) -> None:
    assert execution_providers(device, available) == expected


@pytest.mark.parametrize(
    ("device", "available", "message"),
    [
        ("gpu", CPU_ONLY, "install onnxruntime-gpu"),
        ("cuda:0", CPU_ONLY, "no CUDA provider"),
        ("/TPU:0", WITH_CUDA, "auto, cpu, gpu or cuda:N"),
        ("cuda:x", WITH_CUDA, "auto, cpu, gpu or cuda:N"),
    ],
)
def test_devices_onnx_runtime_does_not_have_are_refused(
    device: str, available: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        execution_providers(device, available)


# -- tiny ONNX models built here --------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One tiny model: how its input is laid out and scaled, and what it outputs."""

    layout: str  # nhwc | nchw
    dtype: int = TensorProto.FLOAT
    scaling: Scaling = "unit"  # what the server must do (--scaling); uint8 models scale themselves
    logits: bool = False
    batch: int | str = "N"
    channels: int = 3

    def config(self, path: Path, labels: Path | None = None) -> ModelConfig:
        scaling = "raw" if self.dtype == TensorProto.UINT8 else self.scaling
        return ModelConfig(model_path=path, labels_path=labels, scaling=scaling)


def build_model(path: Path, v: Variant) -> Path:
    """A conv/ReLU/global-average branch beside the mean colour, then a dense layer: different
    frames give clearly different outputs (a red frame says "red")."""
    rng = np.random.default_rng(11)
    c = v.channels
    dims = [v.batch, HEIGHT, WIDTH, c] if v.layout == "nhwc" else [v.batch, c, HEIGHT, WIDTH]
    x = helper.make_tensor_value_info("pixels", v.dtype, dims)
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [v.batch, len(LABELS)])
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    current = "pixels"
    if v.dtype == TensorProto.UINT8:  # the model scales its pixels itself
        nodes.append(helper.make_node("Cast", [current], ["as_float"], to=TensorProto.FLOAT))
        nodes.append(
            helper.make_node("Mul", ["as_float", const("k255", np.array(1 / 255))], ["x01"])
        )
        current = "x01"
    if v.layout == "nhwc":
        nodes.append(helper.make_node("Transpose", [current], ["nchw"], perm=[0, 3, 1, 2]))
        current = "nchw"
    w = rng.normal(0, 0.5, (4, c, 3, 3))
    nodes += [
        helper.make_node(
            "Conv",
            [current, const("w", w), const("b", rng.normal(0, 0.1, 4))],
            ["conv"],
            pads=[1] * 4,
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("GlobalAveragePool", [current], ["colour"]),
        helper.make_node("Concat", ["gap", "colour"], ["both"], axis=1),
        helper.make_node("Flatten", ["both"], ["flat"], axis=1),
    ]
    dense = rng.normal(0, 0.3, (4 + c, len(LABELS)))
    for i in range(min(c, len(LABELS))):
        dense[4 + i, i] += 6.0  # the mean colour speaks loudly
    nodes.append(
        helper.make_node(
            "Gemm", ["flat", const("dense", dense), const("bias", np.zeros(3))], ["logits"]
        )
    )
    if v.logits:
        nodes.append(helper.make_node("Identity", ["logits"], ["scores"]))
    else:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests"
    )
    model.ir_version = 8  # what ONNX Runtime 1.20, the extra's floor, reads
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def reference(path: Path, v: Variant, images: np.ndarray) -> np.ndarray:
    """ONNX Runtime's own output for uint8 NHWC frames fed as the model wants them."""
    if v.dtype == TensorProto.UINT8:
        x: np.ndarray = images
    else:
        x = images.astype(np.float32)
        if v.scaling == "unit":
            x = x / 255.0
        elif v.scaling == "meanstd":
            x = (x / 255.0 - IMAGENET_MEAN[: v.channels]) / IMAGENET_STD[: v.channels]
        x = x.astype(np.float32)
    if v.layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    session = ort.InferenceSession(str(path), providers=[CPU_PROVIDER])
    name = session.get_inputs()[0].name
    batches = [x] if isinstance(v.batch, str) else [x[i : i + 1] for i in range(len(x))]
    out = np.concatenate([session.run(None, {name: np.ascontiguousarray(b)})[0] for b in batches])
    if v.logits:
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out


def frames(count: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random frames and three solid colours, at the model's input size."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, HEIGHT, WIDTH, channels), np.uint8)
    for i, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))[: min(3, count)]):
        images[i] = np.array(colour, np.uint8)[:channels]
    return images


VARIANTS = {
    "nchw-float-unit": Variant("nchw"),
    "nhwc-float-unit-logits": Variant("nhwc", logits=True),
    "nchw-float-meanstd": Variant("nchw", scaling="meanstd"),
    "nhwc-float-raw": Variant("nhwc", scaling="raw"),
    "nhwc-uint8": Variant("nhwc", dtype=TensorProto.UINT8),
    "nchw-uint8-logits": Variant("nchw", dtype=TensorProto.UINT8, logits=True),
    "nchw-fixed-batch-1": Variant("nchw", batch=1),
    "nhwc-grey": Variant("nhwc", channels=1),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {key: build_model(folder / f"{key}.onnx", v) for key, v in VARIANTS.items()}


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


@pytest.mark.parametrize("key", list(VARIANTS))
def test_predictions_equal_onnx_runtimes_own_output(
    key: str, models: dict[str, Path], labels_file: Path
) -> None:
    v = VARIANTS[key]
    classifier = load_classifier(v.config(models[key], labels_file))
    assert isinstance(classifier, OnnxClassifier)
    images = frames(7, v.channels)
    out = classifier.predict([images[:3], images[3:]])
    assert out.dtype == np.float32 and out.shape == (7, len(LABELS))
    np.testing.assert_allclose(out, reference(models[key], v, images), atol=1e-5)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    d = classifier.description
    assert (d.labels, d.input_width, d.input_height, d.input_channels) == (
        LABELS,
        WIDTH,
        HEIGHT,
        v.channels,
    )
    assert d.device == "onnxruntime CPU" and d.model_name == key


def test_a_red_frame_says_red(models: dict[str, Path], labels_file: Path) -> None:
    # The check above compares with ONNX Runtime; this one that the colours are not mixed up.
    v = VARIANTS["nhwc-uint8"]
    out = load_classifier(v.config(models["nhwc-uint8"], labels_file)).predict([frames(3)])
    assert [LABELS[i] for i in out.argmax(axis=1)] == ["red", "green", "blue"]


def test_frames_of_other_sizes_are_resized_like_the_intake(models: dict[str, Path]) -> None:
    import cv2

    v = VARIANTS["nchw-float-unit"]
    classifier = load_classifier(v.config(models["nchw-float-unit"]))
    large = np.random.default_rng(5).integers(0, 256, (2, 96, 128, 3), np.uint8)
    small = np.random.default_rng(6).integers(0, 256, (1, 12, 16, 3), np.uint8)
    expected = np.stack(
        [cv2.resize(im, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for im in large]
        + [cv2.resize(small[0], (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)]
    )
    out = classifier.predict([large, small])
    np.testing.assert_allclose(out, reference(models["nchw-float-unit"], v, expected), atol=1e-5)


@pytest.mark.parametrize(
    ("softmax", "logits", "expect_softmax"),
    [
        ("auto", True, True),
        ("auto", False, False),
        ("never", True, False),
        ("always", False, True),  # a softmax over probabilities: what was asked for
    ],
)
def test_softmax_follows_the_flag(
    softmax: SoftmaxMode, logits: bool, expect_softmax: bool, tmp_path: Path
) -> None:
    v = Variant("nchw", logits=logits)
    path = build_model(tmp_path / "m.onnx", v)
    config = ModelConfig(model_path=path, scaling="unit", softmax=softmax)
    images = frames(4)
    out = OnnxClassifier(config).predict([images])
    session = ort.InferenceSession(str(path), providers=[CPU_PROVIDER])
    x = (images.astype(np.float32) / 255).transpose(0, 3, 1, 2)
    raw = session.run(None, {"pixels": np.ascontiguousarray(x)})[0]
    expected = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True) if expect_softmax else raw
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_warm_up_runs_the_serving_batch_sizes(models: dict[str, Path]) -> None:
    classifier = load_classifier(
        VARIANTS["nchw-fixed-batch-1"].config(models["nchw-fixed-batch-1"])
    )
    classifier.warm_up(5)  # a fixed batch of 1 is run in slices
    assert classifier.predict([frames(5)]).shape == (5, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p.write_bytes(b"not a model"), "cannot load ONNX", id="junk"),
        pytest.param(lambda p: None, "model not found", id="missing"),
        pytest.param(lambda p: p.mkdir(), "model not found", id="a-directory"),
    ],
)
def test_unloadable_files_are_refused(
    make: Callable[[Path], object], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "m.onnx"
    make(path)
    with pytest.raises(ModelLoadError, match=message):
        load_classifier(ModelConfig(model_path=path))


def test_labels_must_fit_the_outputs(models: dict[str, Path], tmp_path: Path) -> None:
    labels = tmp_path / "two.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(LabelsError, match="2 labels but the model has 3 outputs"):
        load_classifier(VARIANTS["nhwc-uint8"].config(models["nhwc-uint8"], labels))


def test_a_model_with_two_inputs_is_refused(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3, 8, 8])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3, 8, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", [a, b], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "two.onnx")
    with pytest.raises(ModelLoadError, match="2 inputs"):
        OnnxClassifier(ModelConfig(model_path=tmp_path / "two.onnx"))


def test_a_model_that_is_no_classifier_is_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "image", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "image.onnx")
    with pytest.raises(ModelLoadError, match="one vector per image"):
        OnnxClassifier(ModelConfig(model_path=tmp_path / "image.onnx"))


# -- served through a real server and a real client stream -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key", ["nchw-float-meanstd", "nhwc-uint8", "nhwc-float-unit-logits"])
def test_served_answers_equal_onnx_runtimes_output(
    key: str, models: dict[str, Path], labels_file: Path
) -> None:
    from client import StreamClient
    from streaming.server.grpc_server import BackgroundServer

    # given a server that loads the .onnx model itself (the loader's dispatch)
    v = VARIANTS[key]
    config = ServerConfig(
        address="127.0.0.1:0", model=v.config(models[key], labels_file), grace_s=5.0
    )
    running = BackgroundServer(config).start()
    try:
        # when a stream sends frames already at the model's input size
        images = frames(12, seed=3)
        with StreamClient(running.address) as client:
            info = client.model_info
            predictions = client.classify(list(images), window=1)
    finally:
        running.stop(grace=1.0)
    # then every answer is ONNX Runtime's own output for that frame
    assert info.device == "onnxruntime CPU" and tuple(info.labels) == LABELS
    assert (info.input_width, info.input_height) == (WIDTH, HEIGHT)
    assert [p.seq for p in predictions] == list(range(12))
    served = np.stack([p.probabilities for p in predictions])
    np.testing.assert_allclose(served, reference(models[key], v, images), atol=1e-5)
    assert [p.label for p in predictions[:3]] == ["red", "green", "blue"]


# -- the extra is optional ---------------------------------------------------------------------


def test_without_onnx_runtime_loading_says_which_extra(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises
    with pytest.raises(ConfigError) as raised:
        load_classifier(VARIANTS["nhwc-uint8"].config(models["nhwc-uint8"]))
    message = str(raised.value)
    assert INSTALL_HINT in message and "\n" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.fixture
def without_onnx_runtime(tmp_path: Path) -> dict[str, str]:
    """The environment of a child process in which `import onnxruntime` fails, as when the
    extra is not installed: a package of that name that raises ImportError shadows the real one."""
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError(\"No module named 'onnxruntime' (hidden by the test)\")\n"
    )
    path = os.pathsep.join([str(shadow.parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_serve_an_onnx_model_without_the_extra_is_one_line_and_exit_2(
    models: dict[str, Path], without_onnx_runtime: dict[str, str]
) -> None:
    command = [sys.executable, "-m", "streaming", "serve", "-ip", "127.0.0.1:0"]
    done = subprocess.run(
        [*command, "-la", str(models["nhwc-uint8"])],
        env=without_onnx_runtime,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert len(lines) == 1 and INSTALL_HINT in lines[0], done.stderr


@pytest.mark.slow
def test_the_server_starts_without_the_extra(
    tiny_model: Any, without_onnx_runtime: dict[str, str]
) -> None:
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "streaming", "serve", "-ip", address]
    command += ["-la", str(tiny_model.model_path), "-ohe", str(tiny_model.labels_path)]
    with running_process(command, without_onnx_runtime) as process:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                with grpc.insecure_channel(address) as channel:
                    grpc.channel_ready_future(channel).result(timeout=2)
                break
            except grpc.FutureTimeoutError:
                assert time.monotonic() < deadline, "the server did not start"


@contextlib.contextmanager
def running_process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A child process, killed on leaving the block whatever happened."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
