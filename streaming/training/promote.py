"""``promote``: score a trained model against the serving version and publish it as the next one.

The serving version is the one ``serve --model-dir DIR`` serves: the highest ready version
(a ``DIR/<N>/`` with its labels file) that loads. The candidate is published only when it is
not worse (:func:`streaming.training.model_comparison.judge`), unless forced, and by the
model directory's ready rule: written whole into ``DIR/.tmp-<N>`` (a name the server never
looks at), then renamed to ``DIR/<N>`` in one step.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streaming.server.model import Classifier, load_classifier
from streaming.server.model_versions import scan
from streaming.server.serve_config import ModelConfig
from streaming.training.assessment import predict
from streaming.training.model_comparison import ModelScores, score_predictions
from streaming.training.trainer import CARD_FILE, LABELS_FILE, MODEL_FILE
from streaming.training.training_errors import DataError, TrainingError
from streaming.training.training_values import FrameSet

logger = logging.getLogger(__name__)

COMPARISON_FILE = "PROMOTION.txt"


class PromoteError(TrainingError):
    """Nothing can be promoted (no trained model in the run, a model directory to make)."""


@dataclass(frozen=True)
class NamedModel:
    """A loaded model and what the comparison calls it."""

    name: str
    path: Path
    classifier: Classifier


def load_model(
    name: str, model_path: Path, labels_path: Path | None = None, device: str = "auto"
) -> NamedModel:
    """Load a model as the server would (labels default to ``labels.txt`` beside it).

    Raises:
        streaming.server.server_errors.StreamingError: It does not load.
    """
    folder = model_path.parent if model_path.is_file() else model_path
    labels = labels_path or folder / LABELS_FILE
    config = ModelConfig(model_path=model_path, labels_path=labels, device=device)
    return NamedModel(name, model_path, load_classifier(config))


def serving_version(model_dir: Path, device: str = "auto") -> tuple[int, NamedModel] | None:
    """The version ``serve --model-dir`` serves: the highest ready one that loads (or none)."""
    found = scan(model_dir)
    for number in sorted(found, reverse=True):
        files = found[number]
        if not files.ready or files.model_path is None:
            continue
        try:
            model = load_model(f"version {number}", files.model_path, files.labels_path, device)
        except Exception as exc:  # the server refuses it too and goes on down
            logger.warning("version %d does not load (%s): the server would skip it", number, exc)
            continue
        return number, model
    return None


def next_version(model_dir: Path) -> int:
    """One above every version folder, ready or not (a half-written one keeps its number)."""
    return max(scan(model_dir), default=0) + 1


def score_models(
    models: Sequence[NamedModel], load_frames: Callable[[int, int], FrameSet]
) -> list[ModelScores]:
    """Score every model on the same frames, loaded at each model's own input size.

    Raises:
        DataError: The frames have no label any of the models knows.
    """
    cache: dict[tuple[int, int], FrameSet] = {}
    known = {label for m in models for label in m.classifier.description.labels}
    scores = []
    reference: tuple[str, ...] | None = None
    for model in models:
        description = model.classifier.description
        size = (description.input_height, description.input_width)
        if size not in cache:
            cache[size] = load_frames(*size)
        frames = cache[size]
        unknown = sorted(set(frames.labels) - known)
        if unknown and reference is None:
            logger.warning("held-out frames of labels no model has are left out: %s", unknown)
        frames = frames.subset([i for i, label in enumerate(frames.labels) if label in known])
        if not len(frames):
            raise DataError(f"the held-out frames have no label of the models: {sorted(known)}")
        if reference is None:
            reference = frames.origins
        elif frames.origins != reference:
            raise DataError("the held-out frames differ between input sizes; pass --holdout")
        labels = description.labels
        predicted = [labels[i] for i in predict(model.classifier, frames.images).argmax(axis=1)]
        scores.append(score_predictions(model.name, labels, frames.labels, predicted))
    return scores


def publish(run_dir: Path, model_dir: Path, number: int, comparison: str) -> Path:
    """Write the run's model as ``model_dir/<number>`` by the ready rule; returns the folder.

    Raises:
        PromoteError: ``model_dir/<number>`` appeared meanwhile.
        OSError: It cannot be written (the temporary folder is removed).
    """
    final = model_dir / str(number)
    tmp = model_dir / f".tmp-{number}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # Model first, labels last, in case anything ever reads the folder by its final rules.
        for name in (MODEL_FILE, CARD_FILE, LABELS_FILE):
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, tmp / name)
        (tmp / COMPARISON_FILE).write_text(comparison + "\n", encoding="utf-8")
        for path in tmp.iterdir():
            with path.open("rb") as file:
                os.fsync(file.fileno())
        if final.exists():
            raise PromoteError(f"{final} appeared meanwhile: run promote again")
        tmp.rename(final)  # atomic on one file system: the version appears whole
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fd = os.open(model_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final
