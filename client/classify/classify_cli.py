"""``stream-classify classify``: classify image files and folders through one LOSSLESS stream.

Results go to stdout (a table, CSV or JSON lines); progress, per-file problems and the summary go
to stderr. Exit status: 0 all classified, 1 some files failed, 2 the server cannot be reached.
This module only parses arguments; the work is in :mod:`client.classify`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from client._errors import ClassifierClientError
from client._sync import StreamClient
from client.classify.discover import discover_images
from client.classify.output import OUTPUT_FORMATS, make_writer
from client.classify.progress import Progress
from client.classify.run import ClassifySettings, classify_files
from client.connection_args import add_connection_arguments, connection_from_args

EXIT_OK, EXIT_SOME_FAILED, EXIT_UNREACHABLE = 0, 1, 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1..100, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``classify`` options to ``parser`` (the ``stream-classify classify`` subparser)."""
    parser.epilog = (
        "Exit status: 0 all images classified, 1 some files could not be read or classified, "
        "2 the server cannot be reached."
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files and folders (searched recursively for common image extensions); "
        "'-' reads paths from stdin, one per line",
    )
    parser.add_argument(
        "--server",
        default="127.0.0.1:1234",
        metavar="TARGET",
        help="host:port or a gRPC target such as dns:///host:port (default %(default)s)",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="table",
        help="stdout format: a readable table (default) or csv / jsonl for machines",
    )
    parser.add_argument(
        "--window",
        type=_positive_int,
        default=1,
        help="images averaged per prediction, in the order given (default 1: each image on its own, "
        "since unrelated photos should not be averaged; use more for frames of one scene)",
    )
    parser.add_argument(
        "--top-k",
        type=_positive_int,
        default=3,
        metavar="N",
        help="labels listed per image (default 3)",
    )
    parser.add_argument(
        "--wire-format",
        choices=("raw", "jpeg"),
        default="raw",
        help="send resized RAW pixels (default, best on fast links) or JPEG (slow links)",
    )
    parser.add_argument(
        "--jpeg-quality", type=_quality, default=90, metavar="Q", help="1-100 (default 90)"
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=min(4, os.cpu_count() or 1),
        help="threads decoding and resizing images (default %(default)s)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to reach the server (default 5)",
    )
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Classify ``args.paths``; returns the exit status."""
    try:
        connection = connection_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    settings = ClassifySettings(
        window=args.window,
        top_k=args.top_k,
        wire_format=args.wire_format,
        jpeg_quality=args.jpeg_quality,
        workers=args.workers,
    )
    progress = Progress(sys.stderr)
    found = discover_images(args.paths, sys.stdin)
    for missing in found.missing:
        progress.message(f"{missing.name}: {missing.reason}")
    try:
        client = StreamClient(args.server, connect_timeout=args.connect_timeout, **connection)
    except ClassifierClientError as exc:
        print(f"error: {exc.details}", file=sys.stderr)
        return EXIT_UNREACHABLE
    with client:
        if not found.paths:
            print("no images found", file=sys.stderr)
            return EXIT_SOME_FAILED if found.missing else EXIT_OK
        writer = make_writer(args.format, sys.stdout, found.paths, show_frame=args.window > 1)
        started = time.monotonic()
        try:
            outcome = classify_files(client, found.paths, settings, writer, progress)
        except ClassifierClientError as exc:
            progress.close()
            print(f"error: {exc.details}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except BrokenPipeError:
            # stdout's reader left (`| head`): stop quietly, and keep Python's exit-time flush
            # of stdout from raising the same error again.
            progress.close()
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_SOME_FAILED
        elapsed = max(time.monotonic() - started, 1e-9)
    progress.close()
    failed = outcome.failed + len(found.missing)
    classified = outcome.classified
    summary = (
        f"classified {classified} image(s) in {elapsed:.2f} s ({classified / elapsed:.1f} images/s)"
    )
    print(summary + (f"; {failed} failed" if failed else ""), file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK
