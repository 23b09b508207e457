"""The versioned model directory: what is ready, which version is served, refusals and rollback.

A fake loader stands in for TensorFlow here (the model file is a small JSON saying how the fake
behaves); ``test_model_swap.py`` runs the same code with real Keras models under live streams.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streaming.server.labels import load_labels
from streaming.server.model_versions import ModelSlot, ModelVersions, scan
from streaming.server.serve_config import ModelConfig
from streaming.server.server_errors import ConfigError, InferenceError, ModelLoadError
from streaming.server.server_metrics import RefusedReason, ServerMetrics
from streaming.server.server_values import ModelDescription

pytestmark = pytest.mark.timeout(30)

LABELS = ("red", "green", "blue")


class FakeClassifier:
    """Behaves as its model file says: channels, and whether warm-up fails."""

    def __init__(self, labels: tuple[str, ...], spec: dict[str, Any]) -> None:
        self.spec = spec
        self.description = ModelDescription(
            labels=labels,
            input_width=32,
            input_height=24,
            input_channels=spec.get("channels", 3),
            model_name=spec.get("name", "fake"),
            device="none",
        )
        self.warmed = 0

    def predict(self, groups: Sequence[np.ndarray]) -> np.ndarray:
        return np.full((sum(len(g) for g in groups), len(self.description.labels)), 0.5)

    def warm_up(self, max_batch: int) -> None:
        if self.spec.get("warm_up_fails"):
            raise InferenceError("model call failed: out of memory")
        self.warmed += 1


def fake_load(config: ModelConfig) -> FakeClassifier:
    assert config.model_path is not None and config.labels_path is not None
    try:
        spec = json.loads(config.model_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot load Keras model {config.model_path}: {exc}") from exc
    return FakeClassifier(load_labels(config.labels_path), spec)


def write_version(
    root: Path,
    number: int,
    *,
    model: str | None = "{}",
    labels: Sequence[str] | None = LABELS,
    model_name: str = "model.keras",
) -> Path:
    """A version directory written by the ready rule: the model first, the labels last."""
    directory = root / str(number)
    directory.mkdir(parents=True, exist_ok=True)
    if model is not None:
        (directory / model_name).write_text(model)
    if labels is not None:
        (directory / "labels.txt").write_text("\n".join(labels) + "\n")
    return directory


def versions(root: Path, metrics: ServerMetrics | None = None, **config: Any) -> ModelVersions:
    return ModelVersions(
        ModelConfig(model_dir=root, **config), max_batch=4, metrics=metrics, load=fake_load
    )


def refused(metrics: ServerMetrics, reason: RefusedReason) -> float:
    value = metrics.value("stream_classify_model_versions_refused_total", reason=reason.value)
    return value or 0.0


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(
            {"1/model.keras": "{}", "1/labels.txt": "a"}, {1: ("model.keras", True)}, id="keras"
        ),
        pytest.param(
            {"2/model.h5": "x", "2/labels.json": "[]"}, {2: ("model.h5", True)}, id="h5-json"
        ),
        pytest.param(
            {"3/model.onnx": "x", "3/labels.pkl": "x"}, {3: ("model.onnx", True)}, id="onnx"
        ),
        pytest.param(
            {"4/saved_model.pb": "x", "4/labels.txt": "a"},
            {4: ("4", True)},
            id="savedmodel-tfserving",
        ),
        pytest.param(
            {"5/model/saved_model.pb": "x", "5/labels.txt": "a"},
            {5: ("model", True)},
            id="savedmodel-dir",
        ),
        pytest.param(
            {"6/model.keras": "{}"}, {6: ("model.keras", False)}, id="no-labels-not-ready"
        ),
        pytest.param({"7/labels.txt": "a"}, {7: (None, True)}, id="labels-without-model"),
        pytest.param(
            {"0/labels.txt": "a", "07/labels.txt": "a", "x/labels.txt": "a", "-1/labels.txt": "a"},
            {},
            id="not-positive-integers",
        ),
        pytest.param({"8": "a file, not a directory"}, {}, id="file"),
    ],
)
def test_scan_finds_versions_and_their_files(
    tmp_path: Path, entries: dict[str, str], expected: dict[int, tuple[str | None, bool]]
) -> None:
    # given
    for name, text in entries.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    # when
    found = scan(tmp_path)

    # then
    assert {
        number: (files.model_path.name if files.model_path else None, files.ready)
        for number, files in found.items()
    } == expected


def test_signature_changes_when_a_file_does(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    before = scan(tmp_path)[1].signature
    assert scan(tmp_path)[1].signature == before
    (tmp_path / "1" / "model.keras").write_text('{"name": "retrained"}')
    assert scan(tmp_path)[1].signature != before


@pytest.mark.parametrize(
    ("layout", "pin", "served"),
    [
        pytest.param({1: "{}", 2: "{}"}, None, "2", id="highest"),
        pytest.param({1: "{}", 2: "broken"}, None, "1", id="highest-broken"),
        pytest.param({1: "{}", 2: None}, None, "1", id="highest-has-no-model"),
        pytest.param({1: "{}", 3: "{}", 2: "{}"}, 2, "2", id="pinned"),
        pytest.param({1: "{}", 10: "{}", 9: "{}"}, None, "10", id="numeric-not-text-order"),
    ],
)
def test_first_load_serves_the_highest_version_that_loads(
    tmp_path: Path, layout: dict[int, str | None], pin: int | None, served: str
) -> None:
    for number, model in layout.items():
        write_version(tmp_path, number, model=model)

    slot = versions(tmp_path, model_version=pin).load_first()

    assert slot.current.version == served


@pytest.mark.parametrize(
    ("layout", "pin", "message"),
    [
        pytest.param({}, None, "no ready version", id="empty"),
        pytest.param({1: "broken"}, None, "version 1: cannot load", id="only-broken"),
        pytest.param({1: "{}"}, 2, "--model-version 2", id="pinned-missing"),
    ],
)
def test_first_load_fails_when_nothing_can_be_served(
    tmp_path: Path, layout: dict[int, str], pin: int | None, message: str
) -> None:
    for number, model in layout.items():
        write_version(tmp_path, number, model=model)

    with pytest.raises(ModelLoadError, match=message):
        versions(tmp_path, model_version=pin).load_first()


def test_a_version_without_its_labels_is_not_ready(tmp_path: Path) -> None:
    # given: version 1 served, version 2's model written but not its labels yet
    write_version(tmp_path, 1)
    watcher = versions(tmp_path)
    watcher.load_first()
    write_version(tmp_path, 2, labels=None)

    # when / then: not picked up, however often the directory is checked
    assert not watcher.check()
    assert not watcher.check()
    assert watcher.slot.current.version == "1"
    assert watcher.slot.available == ("1",)

    # when: the labels arrive, the version is ready
    write_version(tmp_path, 2)
    assert watcher.check()
    assert watcher.slot.current.version == "2"


@pytest.mark.parametrize(
    ("model", "labels", "reason", "log"),
    [
        pytest.param("broken", LABELS, RefusedReason.LOAD, "cannot load", id="load"),
        pytest.param("{}", ("red", "green"), None, None, id="fewer-labels-is-a-new-label-set"),
        pytest.param('{"channels": 1}', LABELS, RefusedReason.INPUT, "1-channel", id="input"),
        pytest.param(
            '{"warm_up_fails": true}', LABELS, RefusedReason.WARM_UP, "warm-up", id="warm-up"
        ),
    ],
)
def test_a_new_version_is_swapped_in_or_refused(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    model: str,
    labels: tuple[str, ...],
    reason: RefusedReason | None,
    log: str | None,
) -> None:
    # given
    caplog.set_level(logging.INFO, logger="streaming")
    metrics = ServerMetrics()
    write_version(tmp_path, 1)
    watcher = versions(tmp_path, metrics)
    watcher.load_first()
    write_version(tmp_path, 2, model=model, labels=labels)

    # when
    swapped = watcher.check()

    # then
    if reason is None:
        assert swapped and watcher.slot.current.version == "2"
        assert metrics.value("stream_classify_model_swaps_total") == 1
        assert metrics.value("stream_classify_model_version_info", version="2") == 1
        assert metrics.value("stream_classify_model_version_info", version="1") is None
    else:
        assert not swapped and watcher.slot.current.version == "1"
        assert refused(metrics, reason) == 1
        assert metrics.value("stream_classify_model_swaps_total") == 0
        assert metrics.value("stream_classify_model_version_info", version="1") == 1
        assert log is not None
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "version 2 refused" in errors[0] and log in errors[0]
        assert watcher.slot.available == ("1",)


def test_a_refused_version_is_retried_only_when_its_files_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a broken version 2, refused once
    metrics = ServerMetrics()
    write_version(tmp_path, 1)
    watcher = versions(tmp_path, metrics)
    watcher.load_first()
    write_version(tmp_path, 2, model="broken")
    assert not watcher.check()

    # when: checked again with the same files
    for _ in range(3):
        assert not watcher.check()

    # then: not loaded again, nor logged, nor counted
    assert refused(metrics, RefusedReason.LOAD) == 1
    assert sum("version 2 refused" in r.getMessage() for r in caplog.records) == 1

    # when: its model is rewritten
    write_version(tmp_path, 2, model='{"name": "fixed"}')

    # then
    assert watcher.check()
    assert watcher.slot.current.version == "2"


def test_removing_the_newest_version_rolls_back(tmp_path: Path) -> None:
    # given: 1, 2 (broken) and 3 served
    write_version(tmp_path, 1)
    write_version(tmp_path, 2, model="broken")
    write_version(tmp_path, 3)
    watcher = versions(tmp_path)
    assert watcher.load_first().current.version == "3"
    watcher.check()
    assert watcher.slot.available == ("1", "2", "3")  # 2 was never tried: 3 loaded first

    # when
    shutil.rmtree(tmp_path / "3")

    # then: back to the highest remaining version that loads
    assert watcher.check()
    assert watcher.slot.current.version == "1"
    assert watcher.slot.available == ("1",)


@pytest.mark.parametrize(
    ("gone", "half_removed", "served_then"),
    [
        ((), 3, "2"),  # the served version caught mid-removal: rolled back already
        ((3,), 2, "1"),  # the served one gone and the next caught mid-removal: the one below
    ],
)
def test_a_version_caught_half_removed_is_not_refused(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    gone: tuple[int, ...],
    half_removed: int,
    served_then: str,
) -> None:
    # given: versions 1, 2, 3 (3 served), looked at once
    metrics = ServerMetrics()
    for number in (1, 2, 3):
        write_version(tmp_path, number)
    watcher = versions(tmp_path, metrics)
    watcher.load_first()
    watcher.check()

    # when: `rm -r` is caught after a model went and before its labels did
    for number in gone:
        shutil.rmtree(tmp_path / str(number))
    (tmp_path / str(half_removed) / "model.keras").unlink()
    watcher.check()

    # then: nothing refused (no error, no count)
    assert watcher.slot.current.version == served_then
    assert refused(metrics, RefusedReason.LOAD) == 0
    assert not any("refused" in r.getMessage() for r in caplog.records)

    # when: the removal ends
    shutil.rmtree(tmp_path / str(half_removed))
    watcher.check()

    # then: the highest remaining version serves
    assert watcher.slot.current.version == served_then
    assert refused(metrics, RefusedReason.LOAD) == 0


def test_a_version_left_half_removed_is_refused_at_the_next_look(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = ServerMetrics()
    write_version(tmp_path, 1)
    write_version(tmp_path, 2)
    watcher = versions(tmp_path, metrics)
    watcher.load_first()
    watcher.check()
    (tmp_path / "2" / "model.keras").unlink()

    watcher.check()  # may be a removal in progress: waits
    assert refused(metrics, RefusedReason.LOAD) == 0
    watcher.check()  # unchanged: a labels file without a model, refused once

    assert refused(metrics, RefusedReason.LOAD) == 1
    assert watcher.slot.current.version == "1"


def test_with_every_directory_gone_the_served_version_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_version(tmp_path, 1)
    watcher = versions(tmp_path)
    watcher.load_first()
    shutil.rmtree(tmp_path / "1")

    assert not watcher.check()
    assert not watcher.check()

    assert watcher.slot.current.version == "1"
    assert sum("version 1 is gone" in r.getMessage() for r in caplog.records) == 1


def test_the_served_version_rewritten_broken_keeps_serving(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    write_version(tmp_path, 2)
    watcher = versions(tmp_path)
    watcher.load_first()

    write_version(tmp_path, 2, model="broken")

    assert not watcher.check()
    assert watcher.slot.current.version == "2"


def test_pinned_version_rolls_back_and_ignores_newer(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    write_version(tmp_path, 2)
    watcher = versions(tmp_path, model_version=1)
    watcher.load_first()

    write_version(tmp_path, 3)

    assert not watcher.check()
    assert watcher.slot.current.version == "1"


@pytest.mark.parametrize(
    ("labels", "same_epoch"),
    [
        pytest.param(LABELS, True, id="same-labels-keep-windows"),
        pytest.param(("green", "red", "blue"), False, id="same-labels-other-order"),
        pytest.param(("cat", "dog"), False, id="other-labels"),
    ],
)
def test_swap_changes_the_labels_epoch_only_when_labels_change(
    labels: tuple[str, ...], same_epoch: bool
) -> None:
    slot = ModelSlot.single(FakeClassifier(LABELS, {}))
    seen: list[str] = []
    slot.on_swap(lambda model: seen.append(model.version))

    new = slot.swap("2", FakeClassifier(labels, {}))

    assert slot.current is new and new.version == "2" and seen == ["2"]
    assert (new.labels_epoch == 0) is same_epoch


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"model_dir": Path("m")}, None, id="model-dir"),
        pytest.param({"model_dir": Path("m"), "model_version": 3}, None, id="pinned"),
        pytest.param(
            {"model_dir": Path("m"), "model_path": Path("x.keras")}, "not both", id="with-la"
        ),
        pytest.param(
            {"model_dir": Path("m"), "labels_path": Path("l.pkl")}, "not both", id="with-ohe"
        ),
        pytest.param({"model_version": 2}, "give --model-dir", id="version-without-dir"),
        pytest.param({"model_dir": Path("m"), "model_version": 0}, ">= 1", id="version-zero"),
        pytest.param({"model_dir": Path("m"), "model_poll_s": -1.0}, ">= 0", id="negative-poll"),
        pytest.param({"model_dir": Path("m"), "null_classes": 3}, "exclude", id="with-null-model"),
    ],
)
def test_model_dir_settings(fields: dict[str, Any], error: str | None) -> None:
    if error is None:
        assert ModelConfig(**fields).model_dir == Path("m")
    else:
        with pytest.raises(ConfigError, match=error):
            ModelConfig(**fields)
