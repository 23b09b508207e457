"""``stream-classify train`` on label folders, with ``--base``, ``--resume`` and bad inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow

FAST = ("--input-size", "32", "--batch-size", "8", "--min-per-class", "3", "--workers", "2")


@pytest.mark.timeout(180)
def test_folder_input_trains_then_resumes(
    tmp_path: Path,
    cli: Callable[..., int],
    colour_folders: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import keras  # here, not at collection: collecting a slow module must not load TensorFlow

    # given three colour label folders
    data = colour_folders(tmp_path / "data", per_label=12)
    out = tmp_path / "model"

    # when a two-epoch run trains on them
    assert cli("train", data, "--out", out, "--epochs", "2", *FAST) == 0, capsys.readouterr().err

    # then the outputs are a servable model, its labels and a card
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert tuple(model.inputs[0].shape) == (None, 32, 32, 3)
    assert model.outputs[0].shape[-1] == 3
    assert getattr(model, "optimizer", None) is None
    assert (out / "labels.txt").read_text() == "blue\ngreen\nred\n"
    card = (out / "MODEL_CARD.md").read_text()
    assert "| `red` | " in card and "small CNN from scratch" in card
    assert "2 of at most 2 (finished)" in card
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 2 and len(state["history"]) == 2
    assert "val_accuracy" in state["history"][0]
    printed = capsys.readouterr().out
    assert "serve: stream-classify serve -la" in printed

    # when it is resumed with a higher epoch limit
    assert cli("train", data, "--out", out, "--epochs", "3", "--resume", *FAST) == 0

    # then it went on from epoch 2 rather than starting again
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 3 and len(state["history"]) == 3
    assert "3 of at most 3" in (out / "MODEL_CARD.md").read_text()


def test_resume_without_checkpoint_is_a_clear_error(
    tmp_path: Path,
    cli: Callable[..., int],
    colour_folders: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = colour_folders(tmp_path / "data", per_label=6)
    code = cli("train", data, "--out", tmp_path / "m", "--resume", *FAST)
    assert code == 2
    assert f"error: --resume: no checkpoint in {tmp_path / 'm' / 'checkpoint'}" in (
        capsys.readouterr().err
    )


@pytest.mark.timeout(180)
def test_base_model_gets_a_new_head_and_val_inputs_validate(
    tmp_path: Path, cli: Callable[..., int], colour_folders: Callable[..., Path], tiny_model: Any
) -> None:
    import keras  # here, not at collection: collecting a slow module must not load TensorFlow

    # given the tests' tiny colour model (32x24 input), folders with a fourth colour, and
    # separate validation folders (one with a label the training data lacks)
    data = colour_folders(tmp_path / "data", per_label=9)
    (data / "grey").mkdir()
    for i in range(9):
        grey = np.full((48, 64, 3), 60 + 15 * i, np.uint8)
        cv2.imwrite(str(data / "grey" / f"g{i}.png"), grey)
    val = colour_folders(tmp_path / "val", per_label=2, seed=1)
    (val / "pink").mkdir()
    cv2.imwrite(str(val / "pink" / "p.png"), np.full((48, 64, 3), (200, 150, 255), np.uint8))
    out = tmp_path / "model"

    # when it is fine-tuned on them
    code = cli(
        "train", data, "--base", tiny_model.model_path, "--val", val, "--out", out,
        "--epochs", "2", "--batch-size", "8", "--min-per-class", "3",
    )  # fmt: skip

    # then the result keeps the base's input size and trunk, with a four-way head
    assert code == 0
    model = keras.models.load_model(out / "model.keras", compile=False)
    width, height = tiny_model.input_size
    assert tuple(model.inputs[0].shape) == (None, height, width, 3)
    assert model.layers[-1].name == "new_probabilities" and model.outputs[0].shape[-1] == 4
    base = keras.models.load_model(tiny_model.model_path, compile=False)
    assert {layer.name for layer in base.layers[:-1]} <= {layer.name for layer in model.layers}
    card = (out / "MODEL_CARD.md").read_text()
    assert f"{tiny_model.model_path} (head replaced, fine-tuned)" in card
    # and every training frame was trained on, the given folders validated
    assert "| `grey` | 9 | 0 |" in card and "| `red` | 9 | 2 |" in card
    assert f"Validation inputs: `{val}`" in card
    assert "label 'pink': in the validation inputs only" in card


def test_base_model_size_cannot_be_overridden(
    tmp_path: Path,
    cli: Callable[..., int],
    colour_folders: Callable[..., Path],
    tiny_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = colour_folders(tmp_path / "data", per_label=3)
    code = cli("train", data, "--base", tiny_model.model_path, "--out", tmp_path / "m", *FAST)
    assert code == 2
    assert "error: --input-size 32x32 contradicts the base model's 32x24" in capsys.readouterr().err


@pytest.mark.timeout(180)
def test_bad_inputs_are_reported_and_the_run_goes_on(
    tmp_path: Path,
    cli: Callable[..., int],
    colour_folders: Callable[..., Path],
    video_set: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given good colour folders plus an empty class, a corrupt image, and a segments file with
    # a missing video, overlapping rows and a label with too few frames
    data = colour_folders(tmp_path / "data", per_label=9)
    (data / "purple").mkdir()
    (data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    segments = tmp_path / "segments.csv"
    segments.write_text(
        "source,label,start_s,end_s\n"
        "c1.mp4,testsrc2,0,3.9\n"
        "c1.mp4,mandelbrot,2,6\n"
        "missing.mp4,life,0,4\n"
    )

    # when they are trained on together
    code = cli(
        "train", data, segments, "--videos", video_set.folder, "--out", tmp_path / "m",
        "--epochs", "1", "--input-size", "32", "--batch-size", "8", "--min-per-class", "8",
    )  # fmt: skip

    # then the usable parts make a model, and every skipped part is named with its place
    assert code == 0
    err = capsys.readouterr().err
    expected = [
        f"{data / 'purple'}: no images: label 'purple' skipped",
        f"{segments}:3: mandelbrot 2-6 s overlaps line 2 (testsrc2 0-3.9 s) of c1.mp4: row skipped",
        f"{segments}:4: video 'missing.mp4' not found",
        f"{data / 'red' / 'broken.jpg'}: cannot decode image: skipped",
        "label 'testsrc2': only 6 frame(s), fewer than --min-per-class 8: label skipped",
    ]
    for message in expected:
        assert message in err
    assert "skipped 5:" in err
    assert (tmp_path / "m" / "labels.txt").read_text().split() == ["blue", "green", "red"]
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "Skipped inputs: 5." in card and "missing.mp4" in card


def test_no_usable_input_is_an_error(
    tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data" / "empty").mkdir(parents=True)
    assert cli("train", tmp_path / "data", "--out", tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert "error: the inputs gave no frames" in err and "label 'empty' skipped" in err


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("order", "code", "expected"),
    [
        # Kept as given, not sorted, names trimmed: one training run checks all three (each
        # good case trains a model).
        (" green , red,blue", 0, "green\nred\nblue\n"),
        ("red,blue", 2, "training frames have labels outside the given order: ['green']"),
        ("red,blue,green,pink", 2, "labels without training frames: ['pink']"),
    ],
)
def test_labels_fixes_the_output_order(
    tmp_path: Path,
    cli: Callable[..., int],
    colour_folders: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    order: str,
    code: int,
    expected: str,
) -> None:
    # given three colour label folders
    data = colour_folders(tmp_path / "data", per_label=6)

    # when a one-epoch run is asked for this label order
    out = tmp_path / "m"
    result = cli("train", data, "--out", out, "--epochs", "1", "--label-order", order, *FAST)

    # then labels.txt (the output order) follows it, or the run says which labels do not fit
    assert result == code
    if code == 0:
        assert (out / "labels.txt").read_text() == expected
    else:
        assert f"error: {expected}" in capsys.readouterr().err


@pytest.mark.parametrize("order", ["red", "red,red,blue", "red,,blue"])
def test_labels_needs_two_distinct_names(
    tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str], order: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli("train", tmp_path, "--out", tmp_path / "m", "--label-order", order)

    assert exit_info.value.code == 2
    assert "expected two or more distinct comma-separated labels" in capsys.readouterr().err
