"""``stream-classify label DIR --dataset OUT``: label collected frames in a local web page."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from streaming.labelling.collected_frames import ORDERS
from streaming.labelling.label_server import DEFAULT_PORT

DEFAULT_WEB = f"127.0.0.1:{DEFAULT_PORT}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "collected", type=Path, metavar="DIR",
        help="the folder `watch --collect DIR` writes (collected.jsonl, frames/, labels.txt)",
    )  # fmt: skip
    parser.add_argument(
        "--dataset", type=Path, required=True, metavar="OUT",
        help="writes OUT/<label>/<id>.jpg (the label folders `train` reads) and "
        "OUT/decisions.jsonl; several pages and processes may share it",
    )  # fmt: skip
    parser.add_argument(
        "--web", default=DEFAULT_WEB, metavar="HOST:PORT",
        help="where the page listens (default %(default)s; :PORT is loopback, :0 a free port; "
        "with another host, set --web-token)",
    )  # fmt: skip
    parser.add_argument(
        "--web-token", metavar="TOKEN",
        help="require ?token=TOKEN or 'Authorization: Bearer TOKEN' on every request",
    )  # fmt: skip
    parser.add_argument(
        "--new-labels", default="", metavar="A,B",
        help="labels to offer besides the model's (DIR/labels.txt): new classes",
    )  # fmt: skip
    parser.add_argument(
        "--order", choices=ORDERS, default="confidence",
        help="confidence: lowest score first; time: as collected; source: by source, then "
        "time in it (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--lease-s", type=float, default=120.0, metavar="S",
        help="a frame shown on one page is kept from the other pages this long "
        "(default %(default)s)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from camera_tools.web import WebOptions, WebServerError
    from streaming.labelling.label_server import LabelServer
    from streaming.labelling.label_session import LabelSession, LabelSettings, parse_labels
    from streaming.labelling.labelling_errors import SetupError

    try:
        web = WebOptions.at(args.web, args.web_token)
        settings = LabelSettings(
            collected=args.collected,
            dataset=args.dataset,
            extra_labels=parse_labels(args.new_labels),
            order=args.order,
            lease_s=args.lease_s,
        )
        session = LabelSession(settings)
    except (SetupError, ValueError, OSError) as exc:
        print(f"label: {exc}", file=sys.stderr)
        return 2
    try:
        server = LabelServer(session, host=web.host, port=web.port, token=web.token)
    except (WebServerError, ValueError) as exc:
        session.close()
        print(f"label: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    # SIGTERM ends it like Ctrl+C (every decision is on disk already; this prints the counts).
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if main else None
    try:
        print(f"label page: {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        server.close()
        state = session.state()
        session.close()
    counts = ", ".join(f"{label} {n}" for label, n in state["counts"].items())
    print(f"labelled: {counts}; skipped {state['skipped']}; left {state['left']}", flush=True)
    return 0
