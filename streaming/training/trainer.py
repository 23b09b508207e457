"""Fit a classifier on labelled frames: the one trainer behind ``stream-classify train``.

Outputs in ``out``: ``model.keras`` (the best epoch by validation loss, float32, no optimizer
state: what ``serve -la`` loads), ``labels.txt`` (what ``serve -ohe`` loads), ``MODEL_CARD.md``,
``evaluation/`` pictures, ``checkpoint/`` (the last epoch with its optimizer, for
``--resume``), and ``validation.json`` (which frames were held out, for ``promote``; written
by :mod:`streaming.training.job`).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from streaming.server.serve_config import ModelConfig
from streaming.training.assessment import Assessment, assess
from streaming.training.backbones import Backbone, serving_copy
from streaming.training.input_pipeline import Augmentation, evaluation_dataset, training_dataset
from streaming.training.training_errors import DataError, TrainingError, import_tensorflow
from streaming.training.training_values import FrameSet

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
CARD_FILE = "MODEL_CARD.md"
CHECKPOINT_DIR = "checkpoint"
EVALUATION_DIR = "evaluation"

Outcome = Literal["finished", "early stop", "interrupted"]


@dataclass(frozen=True)
class FitSettings:
    """How to fit.

    Attributes:
        backbone: the network to start from.
        epochs: most epochs (early stopping usually ends sooner).
        batch_size: frames per step.
        learning_rate: peak rate of the cosine schedule; None picks 2e-3 from scratch and
            5e-4 for a pretrained backbone (fine-tuning needs smaller steps).
        patience: epochs without a better validation loss before stopping.
        seed: seeds weights, shuffling and augmentation.
        balance: weight the loss so every class counts as much as the largest.
        augmentation: see :class:`Augmentation`.
        mixed_precision: ``auto`` uses float16 compute on a GPU only.
        resume: continue from ``out/checkpoint`` instead of starting anew.
        verbose: Keras' progress output (0 none, 1 bars, 2 one line per epoch).
    """

    backbone: Backbone = field(default_factory=Backbone)
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float | None = None
    patience: int = 5
    seed: int = 0
    balance: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    resume: bool = False
    verbose: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch size and patience must be >= 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError("learning rate must be > 0")
        if self.mixed_precision not in ("auto", "on", "off"):
            raise ValueError("mixed precision must be auto, on or off")

    @property
    def peak_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 5e-4 if self.backbone.pretrained else 2e-3


@dataclass(frozen=True)
class FitResult:
    """What a fit produced. ``assessment`` is None only when no epoch finished."""

    out: Path
    labels: tuple[str, ...]
    best_epoch: int
    epochs_run: int
    outcome: Outcome
    seconds: float
    assessment: Assessment | None

    @property
    def model_path(self) -> Path:
        return self.out / MODEL_FILE

    @property
    def labels_path(self) -> Path:
        return self.out / LABELS_FILE


@dataclass
class _State:
    """Saved beside the last checkpoint so ``--resume`` knows where it was."""

    labels: list[str]
    epochs_done: int = 0
    best_epoch: int = 0
    best_val_loss: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)

    @staticmethod
    def load(path: Path) -> _State:
        data = json.loads(path.read_text())
        return _State(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)


def fit(
    train: FrameSet,
    val: FrameSet,
    out: Path,
    settings: FitSettings,
    labels: tuple[str, ...] | None = None,
) -> FitResult:
    """Train on ``train``, keep the epoch with the lowest validation loss, assess it on ``val``.

    Ctrl+C ends the fit early; the best model so far is kept and assessed. ``labels`` fixes
    the output order (default: sorted), e.g. to keep an existing model's ``labels.txt`` order.

    Raises:
        DataError: fewer than two labels, or validation frames of a label not trained on.
        TrainingError: ``--resume`` with no checkpoint, or one made for other labels.
    """
    tf = import_tensorflow()
    import keras

    labels = labels or tuple(sorted(train.counts()))
    missing = sorted(set(train.labels) - set(labels))
    if missing:
        raise DataError(f"training frames have labels outside the given order: {missing}")
    empty = [label for label in labels if not train.counts()[label]]
    if empty:
        raise DataError(f"labels without training frames: {empty}")
    if len(labels) < 2:
        raise DataError(f"need at least two labels to train a classifier, got {list(labels)}")
    extra = sorted(set(val.labels) - set(labels))
    if extra:
        raise DataError(f"validation frames have labels with no training frames: {extra}")
    if not len(val):
        raise DataError("no validation frames")
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = out / CHECKPOINT_DIR
    checkpoint_dir.mkdir(exist_ok=True)
    state_path, last_path = checkpoint_dir / "state.json", checkpoint_dir / "last.keras"
    started = time.monotonic()

    keras.utils.set_random_seed(settings.seed)
    policy_before = keras.mixed_precision.global_policy().name
    use_mixed = settings.mixed_precision == "on" or (
        settings.mixed_precision == "auto" and bool(tf.config.list_physical_devices("GPU"))
    )
    if use_mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        if settings.resume:
            state, model = _resume(state_path, last_path, labels)
        else:
            state = _State(list(labels))
            height, width = train.images.shape[1:3]
            model = settings.backbone.build(len(labels), (height, width))
            _compile(keras, model, settings, steps=_steps(len(train), settings.batch_size))
        (out / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
        index = {label: i for i, label in enumerate(labels)}
        train_ids = np.array([index[label] for label in train.labels])
        val_ids = np.array([index[label] for label in val.labels])
        data = training_dataset(
            tf, train.images, train_ids,
            batch_size=settings.batch_size, seed=settings.seed, augmentation=settings.augmentation,
        )  # fmt: skip
        val_data = evaluation_dataset(tf, val.images, val_ids, batch_size=settings.batch_size)
        keeper = _BestKeeper(state, settings, out / MODEL_FILE, last_path, state_path)
        callback = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: keeper.end_epoch(model, epoch, logs)
        )
        outcome: Outcome = "finished"
        interrupted: list[bool] = []
        if state.epochs_done < settings.epochs and keeper.patience_left():
            try:
                with _ctrl_c_stops(model, interrupted):
                    model.fit(
                        data,
                        validation_data=val_data,
                        epochs=settings.epochs,
                        initial_epoch=state.epochs_done,
                        class_weight=_class_weights(train.counts(), labels)
                        if settings.balance
                        else None,
                        callbacks=[callback],
                        shuffle=False,  # the pipeline shuffles, seeded
                        verbose=settings.verbose,
                    )
            except KeyboardInterrupt:  # the second Ctrl+C, or one from another handler
                interrupted.append(True)
        if interrupted:
            outcome = "interrupted"
            logger.warning(
                "interrupted: keeping the best model so far (epoch %d)", state.best_epoch
            )
        if outcome != "interrupted" and keeper.stopped_early:
            outcome = "early stop"
    finally:
        keras.mixed_precision.set_global_policy(policy_before)
    assessment = None
    if state.best_epoch:
        from streaming.server.model import load_classifier

        classifier = load_classifier(
            ModelConfig(model_path=out / MODEL_FILE, labels_path=out / LABELS_FILE)
        )
        assessment = assess(classifier, val, out / EVALUATION_DIR)
    return FitResult(
        out,
        labels,
        state.best_epoch,
        state.epochs_done,
        outcome,
        time.monotonic() - started,
        assessment,
    )


@contextmanager
def _ctrl_c_stops(model: Any, interrupted: list[bool]) -> Iterator[None]:
    """Ctrl+C during ``fit`` stops training after the current step; a second one at once.

    A ``KeyboardInterrupt`` raised wherever the signal lands can cut a checkpoint write or a
    ``tf.data`` call in half (seen as a run that never ended after Ctrl+C), so the first one only
    asks Keras to stop (``stop_training``, checked after every step and epoch).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = signal.getsignal(signal.SIGINT)
    restore = previous if previous is not None else signal.default_int_handler

    def stop(signum: int, frame: Any) -> None:
        interrupted.append(True)
        model.stop_training = True
        signal.signal(signal.SIGINT, restore)  # a second Ctrl+C interrupts at once
        logger.warning("Ctrl+C: stopping after this step (again to stop at once)")

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, restore)


def _steps(frames: int, batch_size: int) -> int:
    return max(1, math.ceil(frames / batch_size))


def _compile(keras: Any, model: Any, settings: FitSettings, steps: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(
        settings.peak_learning_rate, decay_steps=settings.epochs * steps, alpha=0.05
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def _resume(state_path: Path, last_path: Path, labels: tuple[str, ...]) -> tuple[_State, Any]:
    import keras

    if not (state_path.is_file() and last_path.is_file()):
        raise TrainingError(f"--resume: no checkpoint in {state_path.parent}")
    state = _State.load(state_path)
    if tuple(state.labels) != labels:
        raise TrainingError(
            f"--resume: the checkpoint was trained on labels {state.labels}, the data has {list(labels)}"
        )
    try:
        model = keras.models.load_model(last_path)
    except Exception as exc:  # Keras raises many types for bad files
        raise TrainingError(f"--resume: cannot load {last_path}: {exc}") from exc
    logger.info(
        "resuming after epoch %d (best so far: epoch %d)", state.epochs_done, state.best_epoch
    )
    return state, model


def _class_weights(counts: Counter[str], labels: tuple[str, ...]) -> dict[int, float]:
    """Weights that make every class weigh as much in the loss as in a balanced set."""
    total = sum(counts[label] for label in labels)
    return {i: total / (len(labels) * counts[label]) for i, label in enumerate(labels)}


def _save_atomically(model: Any, path: Path) -> None:
    # A reader (or a Ctrl+C) never sees half a file.
    tmp = path.with_name(f".{path.stem}.partial.keras")
    model.save(tmp)
    tmp.replace(path)


class _BestKeeper:
    """Each epoch: save the serving model when validation loss improves, checkpoint, log a line,
    and ask to stop after ``patience`` epochs without improvement (counted across ``--resume``)."""

    def __init__(
        self,
        state: _State,
        settings: FitSettings,
        best_path: Path,
        last_path: Path,
        state_path: Path,
    ) -> None:
        self._state = state
        self._settings = settings
        self._best_path = best_path
        self._last_path = last_path
        self._state_path = state_path
        self.stopped_early = False

    def patience_left(self) -> bool:
        if not self._state.best_epoch:
            return True
        left = self._state.epochs_done - self._state.best_epoch < self._settings.patience
        self.stopped_early = not left
        return left

    def end_epoch(self, model: Any, epoch: int, logs: dict[str, float] | None) -> None:
        logs = logs or {}
        state = self._state
        val_loss = float(logs.get("val_loss", math.inf))
        improved = val_loss < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_epoch = val_loss, epoch + 1
            _save_atomically(serving_copy(model), self._best_path)
        state.epochs_done = epoch + 1
        state.history.append({key: round(float(value), 5) for key, value in logs.items()})
        _save_atomically(model, self._last_path)
        state.save(self._state_path)
        logger.info(
            "epoch %d/%d: loss %.4f, accuracy %.1f%%, val_loss %.4f, val_accuracy %.1f%%%s",
            epoch + 1,
            self._settings.epochs,
            logs.get("loss", math.nan),
            100 * logs.get("accuracy", math.nan),
            val_loss,
            100 * logs.get("val_accuracy", math.nan),
            "  (best, saved)" if improved else "",
        )
        if not self.patience_left():
            logger.info(
                "stopping: validation loss has not improved for %d epochs", self._settings.patience
            )
            model.stop_training = True
