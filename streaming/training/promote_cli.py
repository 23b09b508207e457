"""``stream-classify promote RUN_DIR --model-dir DIR``: publish a trained model if it is not worse.

Exit status: 0 promoted, 1 not promoted (worse than the serving version), 2 an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streaming.training.inputs_cli import INPUT_HELP, add_input_arguments

PROMOTED, NOT_PROMOTED, ERROR = 0, 1, 2


def _tolerance(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR",
        help="what `train --out RUN_DIR` wrote (model.keras, labels.txt, validation.json)",
    )  # fmt: skip
    parser.add_argument(
        "--model-dir", type=Path, required=True, metavar="DIR",
        help="the directory `serve --model-dir` serves; the model becomes DIR/<N+1>",
    )  # fmt: skip
    parser.add_argument(
        "--holdout", action="append", type=Path, default=[], metavar="DATA",
        help="more held-out data to compare on, besides the run's validation frames "
        "(repeat for several): " + INPUT_HELP,
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true",
        help="publish even when the new model is worse (the comparison is still printed)",
    )  # fmt: skip
    parser.add_argument(
        "--tolerance", type=_tolerance, default=None, metavar="X",
        help="how far accuracy and each label's recall may fall (0-1, default 0.02)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or a TensorFlow device")
    add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from streaming.server.server_errors import StreamingError
    from streaming.training.holdout import VALIDATION_FILE, ValidationRecord
    from streaming.training.inputs_cli import load_options_from, print_problems
    from streaming.training.loading import load_inputs
    from streaming.training.model_comparison import (
        DEFAULT_TOLERANCE,
        format_side_by_side,
        judge,
    )
    from streaming.training.promote import (
        load_model,
        next_version,
        publish,
        score_models,
        serving_version,
    )
    from streaming.training.trainer import LABELS_FILE, MODEL_FILE
    from streaming.training.training_errors import DataError, TrainingError
    from streaming.training.training_values import FrameSet, Problem

    run_dir: Path = args.run_dir
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if not (run_dir / MODEL_FILE).is_file() or not (run_dir / LABELS_FILE).is_file():
        print(f"error: {run_dir} has no {MODEL_FILE} and {LABELS_FILE}", file=sys.stderr)
        return ERROR
    if not args.model_dir.is_dir():
        print(f"error: model directory not found: {args.model_dir}", file=sys.stderr)
        return ERROR
    problems: list[Problem] = []
    try:
        record = None
        if (run_dir / VALIDATION_FILE).exists() or not args.holdout:
            record = ValidationRecord.load(run_dir / VALIDATION_FILE)

        def load_frames(height: int, width: int) -> FrameSet:
            parts = []
            if record is not None:
                try:
                    frames, found = record.load_frames(height, width, args.workers)
                except DataError as exc:
                    if not args.holdout:
                        raise
                    # Moved or deleted since the run: --holdout alone still compares.
                    problems.append(Problem(str(run_dir / VALIDATION_FILE), str(exc)))
                else:
                    parts.append(frames)
                    problems.extend(found)
            if args.holdout:
                loaded = load_inputs(args.holdout, load_options_from(args, height, width))
                parts.append(loaded.frames)
                problems.extend(loaded.problems)
            return FrameSet.concat(parts, height, width)

        new = load_model("new", run_dir / MODEL_FILE, device=args.device)
        serving = serving_version(args.model_dir, args.device)
        number = next_version(args.model_dir)
        models = [new] if serving is None else [serving[1], new]
        scores = score_models(models, load_frames)
    except (TrainingError, StreamingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR
    print_problems(sorted(set(problems), key=str))
    paths = [str(model.path) for model in models]
    comparison = format_side_by_side(scores, paths)
    print(comparison)
    if serving is None:
        verdict_line = (
            f"no version of {args.model_dir} loads: the new model becomes version {number}"
        )
        promote = True
    else:
        verdict = judge(scores[0], scores[1], tolerance)
        promote = verdict.not_worse or args.force
        word = "not worse" if verdict.not_worse else "worse"
        verdict_line = f"new vs version {serving[0]}: {word}: " + "; ".join(verdict.reasons)
        if not verdict.not_worse and args.force:
            verdict_line += " (--force: promoted anyway)"
    print(f"\n{verdict_line}")
    if not promote:
        print(f"not promoted: version {serving[0] if serving else '-'} keeps serving")
        return NOT_PROMOTED
    try:
        folder = publish(run_dir, args.model_dir, number, f"{comparison}\n\n{verdict_line}")
    except (TrainingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR
    print(f"promoted: {folder} (version {number}); a server on {args.model_dir} swaps it in")
    return PROMOTED
