"""``MODEL_CARD.md``: what a trained model is, how it was made, how well it did, how to serve it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from streaming.training.evaluation import format_report
from streaming.training.sampling import SamplingPolicy
from streaming.training.trainer import FitResult, FitSettings
from streaming.training.training_values import Problem

MAX_PROBLEMS_LISTED = 100


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states besides the fit itself."""

    inputs: tuple[Path, ...]
    val_inputs: tuple[Path, ...]
    val_split: float
    input_size: tuple[int, int]
    sampling: SamplingPolicy
    train_counts: Counter[str]
    val_counts: Counter[str]
    problems: tuple[Problem, ...]
    repeats_skipped: int


def write_model_card(
    path: Path, result: FitResult, settings: FitSettings, facts: CardFacts
) -> Path:
    height, width = facts.input_size
    out = result.out
    a = result.assessment
    scores = {c.label: c for c in a.evaluation.per_class} if a else {}
    lines = [
        f"# {out.name}: image classifier for {', '.join(result.labels)}",
        "",
        f"Trained by `stream-classify train` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Serve it",
        "",
        "```sh",
        f"stream-classify serve -la {out / 'model.keras'} -ohe {out / 'labels.txt'}",
        "```",
        "",
        "## Model",
        "",
        "| | |",
        "| --- | --- |",
        "| File | `model.keras` (Keras 3, float32, no optimizer state) |",
        "| Labels | `labels.txt`, one per line, in output order |",
        f"| Input | `({height}, {width}, 3)` float32 RGB in 0-255, resized by the server's own resize |",
        f"| Output | softmax probabilities, shape `({len(result.labels)},)` |",
        f"| Backbone | {settings.backbone.describe()} |",
        "",
        "## Labels",
        "",
        "| label | training frames | validation frames | precision | recall | F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in result.labels:
        c = scores.get(label)
        metrics = f"{c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f}" if c else "- | - | -"
        lines.append(
            f"| `{label}` | {facts.train_counts[label]} | {facts.val_counts[label]} | {metrics} |"
        )
    aug = settings.augmentation
    lines += [
        "",
        "## Training",
        "",
        f"* Epochs: {result.epochs_run} of at most {settings.epochs} ({result.outcome}); "
        f"best epoch {result.best_epoch} by validation loss; {result.seconds:.0f} s.",
        f"* Batch {settings.batch_size}, AdamW with cosine decay from "
        f"{settings.peak_learning_rate:g}, seed {settings.seed}, "
        f"class weights {'on' if settings.balance else 'off'}, "
        f"patience {settings.patience}.",
        f"* Augmentation: crop to {aug.min_crop:.0%}-100 %, flip {'on' if aug.flip else 'off'}, "
        f"brightness ±{aug.brightness:g}, contrast ±{aug.contrast:.0%}, "
        f"JPEG q25-90 on {aug.jpeg_probability:.0%}, downscale on {aug.downscale_probability:.0%}.",
        "",
        "## Data",
        "",
        f"* Training inputs: {', '.join(f'`{p}`' for p in facts.inputs)}.",
        (
            f"* Validation inputs: {', '.join(f'`{p}`' for p in facts.val_inputs)}."
            if facts.val_inputs
            else f"* Validation: {facts.val_split:.0%} held out by whole videos / "
            f"{facts.sampling.block_s:g} s blocks / folders of frames, so no neighbour leaks."
        ),
        f"* Videos sampled at {facts.sampling.fps:g} frames/s, {facts.sampling.cut_margin_s:g} s "
        f"skipped around each cut; {facts.repeats_skipped} near-identical frames skipped.",
        f"* Skipped inputs: {len(facts.problems)}.",
    ]
    lines += [f"  * {problem}" for problem in facts.problems[:MAX_PROBLEMS_LISTED]]
    if len(facts.problems) > MAX_PROBLEMS_LISTED:
        lines.append(f"  * ... and {len(facts.problems) - MAX_PROBLEMS_LISTED} more")
    lines += ["", "## Validation results", ""]
    if a is None:
        lines.append("No epoch finished, so there is no model to evaluate.")
    else:
        lines += [
            "```",
            format_report(a.evaluation),
            "```",
            "",
            f"![confusion matrix]({a.confusion_png.relative_to(out)})",
            "",
            f"Most confident mistakes: ![mistakes]({a.mistakes_png.relative_to(out)})",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
