"""Command-line options ``train`` and ``evaluate`` share: how inputs are read and sampled."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streaming.training.loading import LoadOptions
from streaming.training.sampling import SamplingPolicy
from streaming.training.training_values import Problem

INPUT_HELP = (
    "a label folder (DATA/<label>/images..., sub-folders allowed) or a segments file "
    "(.csv/.jsonl with source,label,start_s,end_s rows in seconds, as `watch --segments` writes)"
)


def size(text: str) -> tuple[int, int]:
    """``WxH`` or ``N`` (square) to ``(height, width)``."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 8:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT or N (>= 8), got {text!r}")
    return parts[1], parts[0]


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs")
    group.add_argument(
        "--videos",
        type=Path,
        metavar="DIR",
        help="folder where segment files' video names are found",
    )
    group.add_argument(
        "--sample-fps",
        type=positive,
        default=2.0,
        help="frames taken per second of video (default %(default)s)",
    )
    group.add_argument(
        "--cut-margin", type=float, default=0.5, metavar="S",
        help="seconds skipped after each segment start and before each end (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--min-change", type=float, default=2.0, metavar="LEVELS",
        help="skip a frame whose mean grey difference to the last kept one is below this "
        "(0-255, default %(default)s; 0 keeps every frame)",
    )  # fmt: skip
    group.add_argument(
        "--block-seconds", type=positive, default=60.0, metavar="S",
        help="long videos are split into blocks this long; a block is never split between "
        "training and validation (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
        help="threads decoding images and videos (default %(default)s)",
    )  # fmt: skip


def sampling_from(args: argparse.Namespace) -> SamplingPolicy:
    return SamplingPolicy(args.sample_fps, args.cut_margin, args.min_change, args.block_seconds)


def load_options_from(args: argparse.Namespace, height: int, width: int) -> LoadOptions:
    return LoadOptions(height, width, sampling_from(args), args.videos, args.workers)


def print_problems(problems: tuple[Problem, ...] | list[Problem]) -> None:
    """CLI output: every skipped part, then how many."""
    if not problems:
        return
    print(f"skipped {len(problems)}:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
