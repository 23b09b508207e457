"""``stream-classify report``: a timeline report of what happened on each source.

Reads segment files (``watch --segments``) and optionally an alert events file
(``watch --events``), writes one self-contained HTML file and optionally a PNG.

Exit status: 0 written; 2 unreadable input, nothing to report, or an unwritable output.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from camera_tools.camera_errors import CameraToolsError
from camera_tools.sinks.segments import Segment, read_segments
from camera_tools.timeline_report import build_timelines, read_events, write_report

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "segments", nargs="+", type=Path, metavar="SEGMENTS", help="segment files (.csv, .jsonl)"
    )
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    parser.add_argument("--png", type=Path, help="also draw the timelines into this PNG")
    parser.add_argument("--events", type=Path, help="alert events (JSON Lines) to include")
    parser.add_argument("--title", default="Timeline report", help="(default %(default)s)")
    parser.add_argument(
        "--gap",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="pauses between segments longer than this stay holes (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        segments: list[Segment] = []
        for path in args.segments:
            segments.extend(read_segments(path))
        events = read_events(args.events) if args.events is not None else []
        timelines = build_timelines(segments, events, gap_s=args.gap)
        write_report(timelines, args.out, png_path=args.png, title=args.title)
    except CameraToolsError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report of {len(timelines)} source(s) written to {args.out}")
    if args.png is not None:
        print(f"timeline picture written to {args.png}")
    return EXIT_OK
