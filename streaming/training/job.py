"""A whole ``train`` run: load inputs, drop what cannot be used, split, fit, write the model card."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from streaming.training.holdout import VALIDATION_FILE, ValidationRecord
from streaming.training.loading import LoadOptions, drop_small_classes, load_inputs
from streaming.training.model_card import CardFacts, write_model_card
from streaming.training.sampling import SamplingPolicy
from streaming.training.split import split_by_group
from streaming.training.trainer import CARD_FILE, FitResult, FitSettings, fit
from streaming.training.training_errors import DataError
from streaming.training.training_values import FrameSet, Problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainJob:
    """Everything ``stream-classify train`` was asked to do.

    Attributes:
        inputs: label folders and segment files to train on.
        out: output folder.
        val_inputs: separate validation data; when empty, ``val_split`` of the inputs is held out.
        val_split: share of each label held out (by whole groups) for validation.
        input_size: ``(height, width)`` for the small network; pretrained backbones fix their own.
        min_per_class: labels with fewer frames are skipped (reported).
        labels: output order of the labels; None sorts them. Every one needs training frames.
        sampling: how frames are taken from videos.
        videos_dir: where segment files' video names are looked up.
        workers: threads decoding images and videos.
        fit: how to fit.
    """

    inputs: tuple[Path, ...]
    out: Path
    val_inputs: tuple[Path, ...] = ()
    val_split: float = 0.2
    input_size: tuple[int, int] | None = None
    min_per_class: int = 10
    labels: tuple[str, ...] | None = None
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    videos_dir: Path | None = None
    workers: int = max(1, min(4, os.cpu_count() or 1))
    fit: FitSettings = field(default_factory=FitSettings)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("give at least one input")
        if not 0.0 < self.val_split < 1.0:
            raise ValueError(f"validation split must be between 0 and 1, got {self.val_split}")
        if self.min_per_class < 1:
            raise ValueError("min per class must be >= 1")


@dataclass(frozen=True)
class JobResult:
    fit: FitResult
    problems: tuple[Problem, ...]
    card_path: Path


def run_job(job: TrainJob) -> JobResult:
    """Run it; skipped inputs are logged as warnings and listed in the result and the card.

    Raises:
        DataError: nothing left to train or validate on.
        TrainingError: see :func:`streaming.training.trainer.fit`.
    """
    size = job.fit.backbone.input_size(job.input_size)
    options = LoadOptions(size[0], size[1], job.sampling, job.videos_dir, job.workers)
    loaded = load_inputs(job.inputs, options)
    frames, small = drop_small_classes(loaded.frames, job.min_per_class)
    problems = [*loaded.problems, *small]
    repeats = loaded.repeats_skipped
    if job.val_inputs:
        val_loaded = load_inputs(job.val_inputs, options)
        problems += val_loaded.problems
        repeats += val_loaded.repeats_skipped
        train, val = frames, _known_labels_only(val_loaded.frames, frames, problems)
    else:
        train, val = split_by_group(frames, job.val_split, job.fit.seed)
    for problem in problems:
        logger.warning("%s", problem)
    if problems:
        logger.warning(
            "skipped %d input(s)/label(s), listed above; going on with the rest", len(problems)
        )
    train_counts, val_counts = train.counts(), val.counts()
    for label in sorted(train_counts):
        logger.info(
            "label %s: %d training frames, %d validation frames",
            label,
            train_counts[label],
            val_counts[label],
        )
    job.out.mkdir(parents=True, exist_ok=True)
    # What `promote` scores the old and the new model on: the frames this run never trained on.
    ValidationRecord.of_run(job.inputs, job.val_inputs, val, job.sampling, job.videos_dir).save(
        job.out / VALIDATION_FILE
    )
    result = fit(train, val, job.out, job.fit, labels=job.labels)
    facts = CardFacts(
        job.inputs,
        job.val_inputs,
        job.val_split,
        size,
        job.sampling,
        train_counts,
        val_counts,
        tuple(problems),
        repeats,
    )
    card = write_model_card(job.out / CARD_FILE, result, job.fit, facts)
    return JobResult(result, tuple(problems), card)


def _known_labels_only(val: FrameSet, train: FrameSet, problems: list[Problem]) -> FrameSet:
    known = set(train.labels)
    unknown = sorted(set(val.labels) - known)
    for label in unknown:
        problems.append(
            Problem(
                f"label {label!r}", "in the validation inputs only: its validation frames skipped"
            )
        )
    kept = val.subset([i for i, label in enumerate(val.labels) if label in known])
    if not len(kept):
        raise DataError("the validation inputs have no frames of the trained labels")
    return kept
