"""`promote` on real tiny Keras models, and `evaluate --model A --model B` side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import publish_version

pytestmark = pytest.mark.slow

CHANNEL = {"red": 0, "green": 1, "blue": 2}  # RGB channel each colour shows most


def colour_model(path: Path, labels: Sequence[str], *, blind_to: str = "") -> Path:
    """A tiny Keras classifier that reads the mean colour (``blind_to``: a label it never says)."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((24, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    conv = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(x))
    features = keras.layers.Concatenate()([conv, keras.layers.GlobalAveragePooling2D()(x)])
    outputs = keras.layers.Dense(len(labels), activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    kernel, bias = model.layers[-1].get_weights()
    kernel[:] = 0.0
    for i, label in enumerate(labels):
        if label != blind_to:
            kernel[-3 + CHANNEL[label], i] = 8.0
    bias[:] = 0.0
    model.layers[-1].set_weights([kernel, bias])
    model.save(path)
    return path


@dataclass(frozen=True)
class Loop:
    data: Path  # red and green folders
    labelled: Path  # what the label page wrote: blue frames the served model called green
    holdout: Path  # red, green and blue folders never trained on
    models: Path  # the model directory: version 1 knows red and green only
    run: Path  # `train data labelled --base models/1/model.keras`: knows blue too


def label_blue_frames(root: Path, count: int) -> Path:
    """Blue frames collected while version 1 served (it says green), labelled on the page."""
    import json

    import cv2
    import numpy as np

    from streaming.labelling.label_session import LabelSession, LabelSettings
    from tests.streaming.training.conftest import colour_image

    collected = root / "collected"
    (collected / "frames").mkdir(parents=True)
    (collected / "labels.txt").write_text("red\ngreen\n")
    rng = np.random.default_rng(9)
    with (collected / "collected.jsonl").open("w") as log:
        for i in range(count):
            frame_id = f"cam-{i:04d}"
            cv2.imwrite(str(collected / "frames" / f"{frame_id}.jpg"), colour_image("blue", rng))
            entry = {"id": frame_id, "image": f"frames/{frame_id}.jpg", "source": "cam",
                     "frame": i, "time": i / 10, "label": "green", "score": 0.55}  # fmt: skip
            log.write(json.dumps(entry) + "\n")
    out = root / "labelled"
    session = LabelSession(LabelSettings(collected, out, extra_labels=("blue",)))
    try:
        while (frame := session.show("test").frame) is not None:
            session.decide("test", frame.id, "blue")
    finally:
        session.close()
    return out


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    import shutil

    from streaming.cli import main
    from tests.streaming.training.conftest import write_colour_folders

    root = tmp_path_factory.mktemp("promote")
    data = write_colour_folders(root / "data", per_label=12)
    shutil.rmtree(data / "blue")  # version 1 never saw blue
    labelled = label_blue_frames(root, 12)
    holdout = write_colour_folders(root / "holdout", per_label=6, seed=5)
    models = root / "models"
    models.mkdir()
    publish_version(models, 1, colour_model(root / "two.keras", ["red", "green"]), ["red", "green"])
    run = root / "run"
    # fine-tune the served version on the old data plus the label page's folder (a new class)
    code = main(
        ["train", str(data), str(labelled), "--base", str(models / "1" / "model.keras"),
         "--out", str(run), "--epochs", "6", "--batch-size", "8", "--learning-rate", "0.05",
         "--min-per-class", "3", "--workers", "2", "--seed", "1"]
    )  # fmt: skip
    assert code == 0
    return Loop(data, labelled, holdout, models, run)


def test_the_run_records_its_validation_frames(loop: Loop) -> None:
    from streaming.training.holdout import VALIDATION_FILE, ValidationRecord

    record = ValidationRecord.load(loop.run / VALIDATION_FILE)
    assert record.inputs == (str(loop.data), str(loop.labelled)) and record.val_inputs == ()
    frames, problems = record.load_frames(24, 32)
    assert problems == () and set(frames.labels) == {"red", "green", "blue"}
    assert 0 < len(frames) < 36  # a held-out part, never the training frames
    assert all(o.startswith((str(loop.data), str(loop.labelled))) for o in frames.origins)


@pytest.mark.timeout(300)
def test_promote_publishes_a_model_that_learnt_a_new_class(
    loop: Loop, tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from streaming.server.model_versions import ModelVersions
    from streaming.server.serve_config import ModelConfig

    models = tmp_path / "models"
    shutil.copytree(loop.models, models)
    (models / "7").mkdir()  # a version being written by hand (no labels yet): its number is taken

    # when the run is promoted
    code = cli("promote", loop.run, "--model-dir", models, "--holdout", loop.holdout)

    # then both models were scored side by side, and the run became version 8
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "A: version 1" in printed and "B: new" in printed
    blue = next(line for line in printed.splitlines() if line.startswith("blue "))
    assert "(not a label of A)" in blue
    assert "not worse" in printed and "better on blue" in printed
    assert f"promoted: {models / '8'} (version 8)" in printed
    assert sorted(p.name for p in models.iterdir()) == ["1", "7", "8"]  # no .tmp- left
    assert (models / "8" / "labels.txt").read_text() == "blue\ngreen\nred\n"
    assert "better on blue" in (models / "8" / "PROMOTION.txt").read_text()
    # and a server on the directory serves it
    versions = ModelVersions(ModelConfig(model_dir=models), max_batch=2)
    assert versions.load_first().current.version == "8"


@pytest.mark.timeout(300)
def test_a_worse_model_is_not_promoted_unless_forced(
    loop: Loop, tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    # given a run whose model never says green (as if trained on bad labels), no validation.json
    models = tmp_path / "models"
    shutil.copytree(loop.models, models)
    run = tmp_path / "bad-run"
    run.mkdir()
    colour_model(run / "model.keras", ["red", "green", "blue"], blind_to="green")
    (run / "labels.txt").write_text("red\ngreen\nblue\n")

    # when it is promoted on held-out data
    code = cli("promote", run, "--model-dir", models, "--holdout", loop.holdout)

    # then it is refused, with the reason, and version 1 stays alone
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "worse: " in printed and "recall of green 0.0% < 100.0% (old)" in printed
    assert "not promoted: version 1 keeps serving" in printed
    assert sorted(p.name for p in models.iterdir()) == ["1"]

    # when it is forced
    code = cli("promote", run, "--model-dir", models, "--holdout", loop.holdout, "--force")
    assert code == 0
    assert "--force: promoted anyway" in capsys.readouterr().out
    assert (models / "2" / "model.keras").is_file() and (models / "2" / "labels.txt").is_file()


@pytest.mark.parametrize(
    ("setup", "args", "error"),
    [
        ("empty_run", [], "has no model.keras and labels.txt"),
        ("no_record", [], "validation.json not found (a run of an older train?): pass --holdout"),
        ("no_model_dir", [], "model directory not found"),
    ],
)
def test_promote_errors(
    loop: Loop,
    tmp_path: Path,
    cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    setup: str,
    args: list[str],
    error: str,
) -> None:
    import shutil

    run, models = tmp_path / "run", tmp_path / "models"
    run.mkdir()
    if setup != "no_model_dir":
        models.mkdir()
    if setup != "empty_run":
        shutil.copyfile(loop.run / "model.keras", run / "model.keras")
        shutil.copyfile(loop.run / "labels.txt", run / "labels.txt")
    assert cli("promote", run, "--model-dir", models, *args) == 2
    assert error in capsys.readouterr().err


def test_promote_into_an_empty_directory_makes_version_1(
    loop: Loop, tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    assert cli("promote", loop.run, "--model-dir", models) == 0
    printed = capsys.readouterr().out
    assert "no version of" in printed and "becomes version 1" in printed
    assert (models / "1" / "labels.txt").is_file()


def test_evaluate_compares_models_side_by_side(
    loop: Loop, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(
        "evaluate", "--model", loop.models / "1" / "model.keras", "--model",
        loop.run / "model.keras", loop.holdout,
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    lines = printed.splitlines()
    assert lines[0] == f"A: 1 ({loop.models / '1' / 'model.keras'})"
    assert lines[1] == f"B: run ({loop.run / 'model.keras'})"
    red = next(line for line in lines if line.startswith("red "))
    assert red.split()[:4] == ["red", "6", "1.000", "1.000"]  # version 1 is right on red
    blue = next(line for line in lines if line.startswith("blue ")).split()
    assert blue[1:4] == ["6", "-", "0.000"] and float(blue[5]) > 0.5  # the new one learnt it
    accuracy = lines[-1].split()
    assert accuracy[:3] == ["accuracy", "18", "0.667"] and float(accuracy[3]) > 0.8


def test_a_run_whose_data_moved_is_compared_on_the_holdout_alone(
    loop: Loop, tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shutil

    # given a run whose training data is gone since (its validation.json points nowhere)
    run, models = tmp_path / "run", tmp_path / "models"
    shutil.copytree(loop.run, run)
    shutil.copytree(loop.models, models)
    record = json.loads((run / "validation.json").read_text())
    record["inputs"] = [str(tmp_path / "gone")]
    (run / "validation.json").write_text(json.dumps(record))

    # when it is promoted with separate held-out data, then that alone decides
    assert cli("promote", run, "--model-dir", models, "--holdout", loop.holdout) == 0
    captured = capsys.readouterr()
    assert "validation.json: the inputs gave no frames" in captured.err
    assert "accuracy       18" in captured.out and (models / "2").is_dir()
    # and without it, it is an error
    assert cli("promote", run, "--model-dir", models) == 2
    assert "the inputs gave no frames" in capsys.readouterr().err
