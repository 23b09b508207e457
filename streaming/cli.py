"""``stream-classify``: the console-script front door.

It only dispatches: each subcommand lives next to the code it drives, as a module with
``add_arguments(parser)`` and ``run(args) -> int``. Nothing imports this module, so it may depend
on every package (server, client, camera tools, benchmark) while they stay independent.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from client.logformat import JsonLogFormatter
from streaming import __version__

# name -> (module, help). A module whose package is not installed leaves its command out.
COMMANDS = {
    "serve": ("streaming.server.serve_cli", "run the classification server"),
    "classify": (
        "client.classify.classify_cli",
        "classify image files and folders through one stream",
    ),
    "watch": (
        "camera_tools.watch.watch_cli",
        "classify webcams, RTSP/HTTP streams, video files and folders",
    ),
    "report": ("camera_tools.report_cli", "write a timeline report (HTML, PNG) from segment files"),
    "bench": (
        "streaming.bench.bench_cli",
        "measure the server against the model and transport limits",
    ),
    "train": ("streaming.training.train_cli", "train a model for your own classes"),
    "evaluate": (
        "streaming.training.evaluate_cli",
        "score a model, or compare models, on labelled frames or videos",
    ),
    "label": (
        "streaming.labelling.label_cli",
        "label the frames `watch --collect` kept, in a local web page",
    ),
    "promote": (
        "streaming.training.promote_cli",
        "publish a trained model as the next version of a model directory if it is not worse",
    ),
}

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-classify", description="Classify live video streams with one batched model."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="(default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="log lines on stderr: text for people, json (one object per line) for log "
        "collectors (default %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of the product is not installed
            raise
        sub = commands.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter() if args.log_format == "json" else logging.Formatter(LOG_FORMAT)
    )
    logging.basicConfig(level=args.log_level, handlers=[handler])
    # Python's warnings would otherwise be plain lines among the JSON ones.
    logging.captureWarnings(args.log_format == "json")
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
