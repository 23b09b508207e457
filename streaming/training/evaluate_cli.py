"""``stream-classify evaluate``: score a model on labelled folders or annotated videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streaming.training.inputs_cli import INPUT_HELP, add_input_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="a .keras/.h5 file or SavedModel folder"
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="DATA", help=INPUT_HELP)
    parser.add_argument(
        "--labels", type=Path, metavar="FILE",
        help="the model's labels (.txt, .json or the old pickle; default: labels.txt beside the model)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help="where confusion.png and mistakes.png go (default: evaluation/ beside the model)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or a TensorFlow device")
    add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from streaming.server.model import load_classifier
    from streaming.server.serve_config import ModelConfig
    from streaming.server.server_errors import StreamingError
    from streaming.training.assessment import assess
    from streaming.training.evaluation import format_report
    from streaming.training.inputs_cli import load_options_from, print_problems
    from streaming.training.loading import load_inputs
    from streaming.training.training_errors import TrainingError

    if not args.model.exists():
        print(f"error: model not found: {args.model}", file=sys.stderr)
        return 2
    model_dir = args.model.parent if args.model.is_file() else args.model
    labels = args.labels or model_dir / "labels.txt"
    out = args.out or model_dir / "evaluation"
    try:
        classifier = load_classifier(
            ModelConfig(model_path=args.model, labels_path=labels, device=args.device)
        )
        description = classifier.description
        loaded = load_inputs(
            args.inputs,
            load_options_from(args, description.input_height, description.input_width),
        )
        result = assess(classifier, loaded.frames, out)
    except (TrainingError, StreamingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_problems(loaded.problems)
    for label, count in sorted(result.unknown.items()):
        print(f"skipped {count} frame(s) of {label!r}: not a label of the model", file=sys.stderr)
    print(format_report(result.evaluation))
    print(f"\nconfusion matrix: {result.confusion_png}\nworst mistakes: {result.mistakes_png}")
    return 0
