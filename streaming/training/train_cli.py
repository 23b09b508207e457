"""``stream-classify train``: a model for your own classes from label folders or annotated videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streaming.training.inputs_cli import (
    INPUT_HELP,
    add_input_arguments,
    positive,
    sampling_from,
    size,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help=INPUT_HELP)
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="writes DIR/model.keras, DIR/labels.txt, DIR/MODEL_CARD.md and DIR/evaluation/",
    )  # fmt: skip
    parser.add_argument(
        "--val", nargs="+", type=Path, default=[], metavar="INPUT",
        help="separate validation inputs (default: hold out --val-split of the inputs)",
    )  # fmt: skip
    parser.add_argument(
        "--val-split", type=float, default=0.2,
        help="share of each label held out by whole videos/blocks/frame folders (default %(default)s)",
    )  # fmt: skip
    model = parser.add_argument_group("model")
    choice = model.add_mutually_exclusive_group()
    choice.add_argument(
        "--backbone", choices=("small", "broadcast"), default="small",
        help="small: a small CNN from scratch; broadcast: the embedded broadcast monitor "
        "fine-tuned (default %(default)s)",
    )  # fmt: skip
    choice.add_argument(
        "--base", type=Path, metavar="MODEL.keras",
        help="fine-tune any Keras classifier: its last Dense layer is replaced",
    )  # fmt: skip
    model.add_argument(
        "--keep-head", action="store_true",
        help="with --base or --backbone broadcast: keep the model's last layer and go on "
        "training it (the same labels in the same order, see --label-order)",
    )  # fmt: skip
    model.add_argument(
        "--input-size", type=size, metavar="WxH",
        help="frame size for the small network (default 96x96); pretrained models fix their own",
    )  # fmt: skip
    fitting = parser.add_argument_group("fitting")
    fitting.add_argument("--epochs", type=int, default=30, help="at most (default %(default)s)")
    fitting.add_argument("--batch-size", type=int, default=32, help="(default %(default)s)")
    fitting.add_argument(
        "--learning-rate", type=positive,
        help="peak rate (default 2e-3 from scratch, 5e-4 fine-tuning)",
    )  # fmt: skip
    fitting.add_argument(
        "--patience", type=int, default=5,
        help="stop after this many epochs without a better validation loss (default %(default)s)",
    )  # fmt: skip
    fitting.add_argument(
        "--seed", type=int, default=0, help="for repeatable runs (default %(default)s)"
    )
    fitting.add_argument(
        "--label-order", type=_label_order, metavar="A,B,...",
        help="output order of the labels (default: sorted), e.g. to keep an existing "
        "model's labels.txt order",
    )  # fmt: skip
    fitting.add_argument(
        "--min-per-class", type=int, default=10,
        help="labels with fewer frames are skipped (default %(default)s)",
    )  # fmt: skip
    fitting.add_argument(
        "--no-balance", action="store_true", help="do not weight classes by their frequency"
    )
    fitting.add_argument(
        "--no-flip", action="store_true", help="never mirror frames (text, layout matter)"
    )
    fitting.add_argument("--no-augment", action="store_true", help="train on frames as they are")
    fitting.add_argument(
        "--mixed-precision", choices=("auto", "on", "off"), default="auto",
        help="float16 compute; auto = on a GPU only (default %(default)s)",
    )  # fmt: skip
    fitting.add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoint after a stop"
    )
    add_input_arguments(parser)


def _label_order(text: str) -> tuple[str, ...]:
    labels = tuple(part.strip() for part in text.split(","))
    if len(labels) < 2 or "" in labels or len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(
            f"expected two or more distinct comma-separated labels, got {text!r}"
        )
    return labels


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from streaming.server.server_errors import StreamingError
    from streaming.training.backbones import Backbone
    from streaming.training.input_pipeline import Augmentation
    from streaming.training.inputs_cli import print_problems
    from streaming.training.job import TrainJob, run_job
    from streaming.training.trainer import FitSettings
    from streaming.training.training_errors import TrainingError

    try:
        augmentation = Augmentation.none() if args.no_augment else Augmentation()
        if args.no_flip:
            augmentation = replace(augmentation, flip=False)
        settings = FitSettings(
            backbone=Backbone(args.backbone, args.base, args.keep_head),
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            patience=args.patience,
            seed=args.seed,
            balance=not args.no_balance,
            augmentation=augmentation,
            mixed_precision=args.mixed_precision,
            resume=args.resume,
            verbose=1 if sys.stdout.isatty() else 2,
        )
        job = TrainJob(
            inputs=tuple(args.inputs),
            out=args.out,
            val_inputs=tuple(args.val),
            val_split=args.val_split,
            input_size=args.input_size,
            min_per_class=args.min_per_class,
            labels=args.label_order,
            sampling=sampling_from(args),
            videos_dir=args.videos,
            workers=args.workers,
            fit=settings,
        )
        result = run_job(job)
    except (TrainingError, StreamingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_problems(result.problems)
    fitted = result.fit
    if fitted.assessment is None:
        print("stopped before the first epoch ended: no model was saved", file=sys.stderr)
        return 130
    evaluation = fitted.assessment.evaluation
    print(
        f"{fitted.outcome} after {fitted.epochs_run} epochs in {fitted.seconds:.0f} s; "
        f"best epoch {fitted.best_epoch}: validation accuracy {evaluation.accuracy:.2%} "
        f"on {evaluation.frames} frames"
    )
    print(f"model: {fitted.model_path}\nlabels: {fitted.labels_path}\ncard: {result.card_path}")
    print(f"serve: stream-classify serve -la {fitted.model_path} -ohe {fitted.labels_path}")
    return 130 if fitted.outcome == "interrupted" else 0
