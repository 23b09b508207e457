"""``stream-classify evaluate``: score a model on labelled folders or annotated videos.

``evaluate MODEL DATA...`` scores one model (report, confusion matrix, mistakes);
``evaluate --model A --model B DATA...`` scores several on the same frames, side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streaming.training.inputs_cli import INPUT_HELP, add_input_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="[MODEL] DATA",
        help="the model (a .keras/.h5 file or SavedModel folder; left out with --model), then "
        "the data: " + INPUT_HELP,
    )  # fmt: skip
    parser.add_argument(
        "--model", dest="models", action="append", type=Path, default=[], metavar="MODEL",
        help="compare models on the same data, side by side (repeat: --model A --model B); "
        "each one's labels are labels.txt beside it",
    )  # fmt: skip
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

    if args.models:
        return _compare(args)
    if len(args.paths) < 2:
        print("error: give a model and at least one DATA input", file=sys.stderr)
        return 2
    args.model, args.inputs = args.paths[0], args.paths[1:]
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


def _compare(args: argparse.Namespace) -> int:
    """Several models on the same frames: one table of per-label precision/recall and accuracy."""
    from streaming.server.server_errors import StreamingError
    from streaming.training.inputs_cli import load_options_from, print_problems
    from streaming.training.loading import load_inputs
    from streaming.training.model_comparison import format_side_by_side
    from streaming.training.promote import load_model, score_models
    from streaming.training.training_errors import TrainingError
    from streaming.training.training_values import FrameSet, Problem

    if args.labels is not None:
        print(
            "error: --labels takes one model; with --model, labels.txt beside each", file=sys.stderr
        )
        return 2
    missing = [str(path) for path in args.models if not path.exists()]
    if missing:
        print(f"error: model not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    problems: list[Problem] = []

    def load_frames(height: int, width: int) -> FrameSet:
        loaded = load_inputs(args.paths, load_options_from(args, height, width))
        problems.extend(p for p in loaded.problems if p not in problems)
        return loaded.frames

    try:
        models = [
            load_model(path.parent.name if path.is_file() else path.name, path, device=args.device)
            for path in args.models
        ]
        scores = score_models(models, load_frames)
    except (TrainingError, StreamingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_problems(problems)
    print(format_side_by_side(scores, [str(path) for path in args.models]))
    return 0
