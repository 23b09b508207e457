"""``stream-classify watch``: classify webcams, network streams, video files and folders live.

Thin: parses flags into a :class:`~camera_tools.watch.WatchConfig`, runs a
:class:`~camera_tools.watch.Watcher` with :class:`~camera_tools.watch.ConsoleLines` (label
changes, or every frame with ``--verbose``) and prints the summary table on stdout; logs go to
stderr.

Exit status: 0 done (all files classified, ``--duration`` reached or Ctrl+C); 1 a source or
the server connection failed; 2 nothing could start (server unreachable within
``--connect-timeout``, no screen for ``--display``, unusable source or output path).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from camera_tools.backoff import BackoffPolicy
from camera_tools.errors import CameraToolsError, DisplayUnavailableError
from camera_tools.live import LiveOutputs, add_live_arguments
from camera_tools.watch.config import WatchConfig, source_ids
from camera_tools.watch.connection import server_id
from camera_tools.watch.errors import ServerUnavailableError
from camera_tools.watch.live_observer import LiveObserver
from camera_tools.watch.metrics import WatchMetrics, parse_metrics_address
from camera_tools.watch.observers import WatchObserver
from camera_tools.watch.outputs import ConsoleLines
from camera_tools.watch.report import format_summary
from camera_tools.watch.runner import Watcher
from client import Delivery
from client.connection_args import add_connection_arguments, connection_from_args

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START = 0, 1, 2
DEFAULT_SERVER = "127.0.0.1:1234"


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _segments_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise argparse.ArgumentTypeError(f"must end in .csv or .jsonl, got {text!r}")
    return path


def _metrics_address(text: str) -> str:
    try:
        parse_metrics_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``watch`` flags to ``parser``."""
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="webcam index (0), /dev/videoN, rtsp:// or http(s):// URL (a web page is read "
        "through yt-dlp; ytdl:URL forces it), video file, image folder or glob; several run at "
        "once, each on its own stream",
    )
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        metavar="TARGET",
        help="classification server: HOST:PORT or any gRPC target, e.g. dns:///host:port or "
        "ipv4:10.0.0.1:1234,10.0.0.2:1234 (default %(default)s)",
    )
    parser.add_argument("--client-id", default="", help="name of this client in the server's logs")
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="time to reach the server at start (and per reconnect attempt); default %(default)s",
    )
    parser.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="reconnect attempts for a lost source or server before giving up (default: forever)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: until every file ends, or Ctrl+C)",
    )

    what = parser.add_argument_group("what is classified")
    what.add_argument(
        "--delivery",
        choices=("live", "lossless"),
        default=None,
        help="live: the server drops stale frames; lossless: every frame is answered "
        "(default: live for cameras and streams, lossless for files and folders)",
    )
    what.add_argument(
        "--window",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="frames averaged per label (default: the server's)",
    )
    what.add_argument(
        "-sk",
        "--skip",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="classify every (N+1)-th frame (default %(default)s: all)",
    )
    what.add_argument(
        "--fps",
        type=_positive_float,
        default=None,
        help="classify at most this many frames per second per source",
    )
    what.add_argument(
        "--realtime",
        action="store_true",
        help="play files at their native frame rate (default: as fast as the server answers)",
    )
    what.add_argument(
        "--folder-fps",
        type=_positive_float,
        default=10.0,
        help="frame rate given to image folders, for positions and --realtime (default %(default)s)",
    )
    what.add_argument(
        "--format",
        dest="page_format",
        default=None,
        metavar="FORMAT",
        help="yt-dlp format of web page sources, e.g. 'best[height<=480]' (default: the "
        "smallest video at or above the model's input size)",
    )
    what.add_argument(
        "--stall-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="silence after which a stream is reopened (default %(default)s)",
    )
    what.add_argument(
        "--in-flight",
        type=_positive_int,
        default=8,
        metavar="N",
        help="frames per source sent and not yet answered (default %(default)s)",
    )

    out = parser.add_argument_group("outputs (any combination)")
    out.add_argument(
        "-v", "--verbose", action="store_true", help="print every frame, not only label changes"
    )
    out.add_argument("--csv", type=Path, metavar="PATH", help="one row per classified frame")
    out.add_argument(
        "--segments",
        type=_segments_path,
        metavar="PATH",
        help="one row per stretch of the same label (.csv or .jsonl); "
        "times are positions in the video for files, wall clock for live sources",
    )
    out.add_argument(
        "--record",
        type=Path,
        metavar="OUT.mp4",
        help="annotated video (one file per source, OUT-<source>.mp4, when several)",
    )
    out.add_argument(
        "--display", action="store_true", help="show each source in a window (q or Esc quits)"
    )
    out.add_argument(
        "--metrics-address",
        type=_metrics_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free one; "
        "needs prometheus-client); default: off",
    )
    add_live_arguments(parser)
    add_connection_arguments(parser)


def build_config(args: argparse.Namespace) -> WatchConfig:
    """Turn parsed flags into a :class:`WatchConfig`.

    Raises:
        ValueError: A bad setting, or a TLS file that is missing or unreadable.
    """
    connection = connection_from_args(args)
    return WatchConfig(
        sources=tuple(args.sources),
        server=args.server,
        window=args.window,
        delivery=None if args.delivery is None else Delivery[args.delivery.upper()],
        skip=args.skip,
        max_fps=args.fps,
        realtime=args.realtime,
        max_in_flight=args.in_flight,
        client_id=args.client_id,
        connect_timeout_s=args.connect_timeout,
        reconnect=BackoffPolicy(
            initial_delay=0.5, max_delay=10.0, jitter=0.1, max_retries=args.max_retries
        ),
        stall_timeout_s=args.stall_timeout,
        folder_fps=args.folder_fps,
        page_format=args.page_format,
        duration_s=args.duration,
        csv_path=args.csv,
        segments_path=args.segments,
        record_path=args.record,
        display=args.display,
        credentials=connection["credentials"],
        token=connection["token"],
        load_balancing=connection["load_balancing"],
    )


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``stop`` (a clean shutdown) while the watcher runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: object) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _announce(live: LiveOutputs, config: WatchConfig) -> None:
    """Print where the web view and the re-streams are (ports may have been picked: port 0)."""
    if live.web is not None:
        print(f"web view: {live.web.url}", flush=True)
    if live.restreamer is not None:
        for source in source_ids(config.sources):
            print(f"re-stream of {source}: {live.restreamer.url(source)}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run ``watch`` with parsed flags; returns the exit status."""
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    observers: list[WatchObserver] = [ConsoleLines(sys.stdout, verbose=args.verbose)]
    metrics: WatchMetrics | None = None
    if args.metrics_address is not None:
        try:  # before connecting: a missing package or a busy port is a start-up error
            metrics = WatchMetrics(config)
            metrics.serve(args.metrics_address)
        except CameraToolsError as exc:
            print(f"watch: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
        observers.append(metrics)
    try:  # before connecting: a busy port or a missing GStreamer is a start-up error
        live = LiveOutputs.from_args(args, source_ids(config.sources), console=sys.stdout)
    except (CameraToolsError, ValueError) as exc:
        if metrics is not None:
            metrics.close()
        print(f"watch: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    if live.active:
        _announce(live, config)
        observers.append(LiveObserver(live, server_id=server_id(config.server)))
    watcher = Watcher(config, observers=observers)
    try:
        with _stop_on_signals(watcher.stop):
            report = watcher.run()
    except DisplayUnavailableError as exc:
        print(f"watch: cannot --display: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except ServerUnavailableError as exc:
        print(f"watch: cannot reach the server at {config.server}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except CameraToolsError as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    print(format_summary(report), flush=True)
    for source, (path, frames) in watcher.recorded.items():
        print(f"recorded {source}: {path} ({frames} frames)", flush=True)
    return EXIT_FAILED if report.failed else EXIT_OK
