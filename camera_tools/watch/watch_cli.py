"""``stream-classify watch``: classify webcams, network streams, video files and folders live.

Thin: parses flags into a :class:`~camera_tools.watch.WatchConfig` (which holds every setting,
and whose defaults the flags show), runs a
:class:`~camera_tools.watch.Watcher` with :class:`~camera_tools.watch.ConsoleLines` (label
changes, or every frame with ``--verbose``) and prints the summary table on stdout; logs go to
stderr.

Exit status: 0 done (all files classified, ``--duration`` reached or Ctrl+C); 1 a source or
the server connection failed; 2 nothing could start (server unreachable within
``--connect-timeout``, no screen for ``--display``, unusable source or output path).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from camera_tools.alert_options import AlertOptions
from camera_tools.alerts import (
    AlertRules,
    DownRule,
    LabelRule,
    parse_down_seconds,
    parse_label_rule,
)
from camera_tools.camera_errors import CameraToolsError, DisplayUnavailableError
from camera_tools.collect import CollectOptions, Collector
from camera_tools.live import LiveOptions, LiveOutputs
from camera_tools.restream import parse_restream_url
from camera_tools.watch.collect_observer import CollectObserver, server_labels
from camera_tools.watch.connection import server_id
from camera_tools.watch.live_observer import LiveObserver
from camera_tools.watch.observers import WatchObserver
from camera_tools.watch.outputs import ConsoleLines
from camera_tools.watch.runner import Watcher
from camera_tools.watch.source_summary import format_summary
from camera_tools.watch.watch_config import DEFAULT_RECONNECT, WatchConfig, source_ids
from camera_tools.watch.watch_errors import ServerUnavailableError
from camera_tools.watch.watch_metrics import WatchMetrics
from camera_tools.web import WebOptions
from client import Delivery
from client.connection_args import add_connection_arguments, connection_from_args
from client.host_port import parse_host_port

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


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _segments_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise argparse.ArgumentTypeError(f"must end in .csv or .jsonl, got {text!r}")
    return path


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` with its ValueError turned into a usage error that keeps the message."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return wrapped


def _host_port_text(text: str) -> str:
    parse_host_port(text)
    return text


def _default(name: str, of: type = WatchConfig) -> Any:
    """The default of a :class:`WatchConfig` (or ``of``) field: flags show it, never restate it."""
    (found,) = (f for f in dataclasses.fields(of) if f.name == name)
    return found.default


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
        default=_default("connect_timeout_s"),
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
        default=_default("window"),
        metavar="N",
        help="frames averaged per label (default: the server's)",
    )
    what.add_argument(
        "-sk",
        "--skip",
        type=_non_negative_int,
        default=_default("skip"),
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
        default=_default("folder_fps"),
        help="frame rate given to image folders, for positions and --realtime (default %(default)s)",
    )
    what.add_argument(
        "--format",
        dest="page_format",
        default=_default("page_format"),
        metavar="FORMAT",
        help="yt-dlp format of web page sources, e.g. 'best[height<=480]' (default: the "
        "smallest video at or above the model's input size)",
    )
    what.add_argument(
        "--stall-timeout",
        type=_positive_float,
        default=_default("stall_timeout_s"),
        metavar="SECONDS",
        help="silence after which a stream is reopened (default %(default)s)",
    )
    what.add_argument(
        "--in-flight",
        type=_positive_int,
        default=_default("max_in_flight"),
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
        type=_checked(_host_port_text),
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (:PORT is loopback, "
        "0.0.0.0:PORT every interface, port 0 any free one; needs prometheus-client); "
        "default: off",
    )
    _add_live_arguments(parser)
    _add_collect_arguments(parser)
    add_connection_arguments(parser)


def _add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    collect = parser.add_argument_group("collecting frames to label")
    collect.add_argument(
        "--collect",
        type=Path,
        metavar="DIR",
        help="keep the frames worth a person's look (low confidence, label changes, frame and "
        "window labels disagreeing, a small random sample) in DIR, as JPEGs plus "
        "DIR/collected.jsonl, for `stream-classify label`; an existing DIR is continued",
    )
    collect.add_argument(
        "--collect-below",
        type=_fraction,
        default=_default("below", CollectOptions),
        metavar="SCORE",
        help="a frame whose own score is below this is low confidence (default %(default)s)",
    )
    collect.add_argument(
        "--collect-max-per-min",
        type=_positive_int,
        default=_default("max_per_min", CollectOptions),
        metavar="N",
        help="frames kept per source per minute of the source (video time for files); "
        "default %(default)s",
    )
    collect.add_argument(
        "--collect-max-mb",
        type=_positive_float,
        default=_default("max_mb", CollectOptions),
        metavar="MB",
        help="size cap of DIR; the oldest images are deleted first (default %(default)s)",
    )
    collect.add_argument(
        "--collect-sample",
        type=_fraction,
        default=_default("sample", CollectOptions),
        metavar="RATE",
        help="also keep this share of all frames at random, whatever their label and score, "
        "so confident mistakes turn up (default %(default)s; 0: none)",
    )
    collect.add_argument(
        "--collect-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the random sample (default: a new one each run)",
    )


def _add_live_arguments(parser: argparse.ArgumentParser) -> None:
    web = parser.add_argument_group("web view")
    web.add_argument(
        "--web",
        type=_checked(_host_port_text),
        metavar="HOST:PORT",
        help="serve a live page of every source (e.g. 127.0.0.1:8080; :PORT is loopback; "
        "with another host, set --web-token)",
    )
    web.add_argument(
        "--web-token",
        metavar="TOKEN",
        help="require ?token=TOKEN or 'Authorization: Bearer TOKEN' on every web request",
    )
    parser.add_argument(
        "--restream",
        type=_checked(parse_restream_url),
        metavar="rtsp://HOST:PORT/",
        help="serve each source's annotated video as rtsp://HOST:PORT/<source> (H.264; needs "
        "Debian's python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly)",
    )
    alerts = parser.add_argument_group("alerts")
    alerts.add_argument(
        "--alert",
        dest="alerts",
        action="append",
        type=_checked(parse_label_rule),
        default=[],
        metavar="LABEL[,LABEL...]:SECONDS",
        help="raise an alert when a source's label stays in the set that long (repeatable), "
        "e.g. --alert black:5 --alert color_bars,static:10",
    )
    alerts.add_argument(
        "--alert-down",
        type=_checked(parse_down_seconds),
        metavar="SECONDS",
        help="raise an alert when a source stays down (reconnecting) that long",
    )
    alerts.add_argument(
        "--events", type=Path, metavar="PATH", help="append every alert raise/clear as JSON Lines"
    )
    alerts.add_argument(
        "--on-alert",
        metavar="CMD",
        help="run CMD on every raise/clear, with the event as JSON on stdin and ALERT_* "
        "environment variables (no shell; killed after 10 s)",
    )
    alerts.add_argument(
        "--webhook", metavar="URL", help="POST every raise/clear as JSON to URL (retried)"
    )


def _live_options(args: argparse.Namespace) -> LiveOptions:
    label_rules: list[LabelRule] = args.alerts
    down: DownRule | None = args.alert_down
    return LiveOptions(
        web=None if args.web is None else WebOptions.at(args.web, args.web_token),
        restream=args.restream,
        alerts=AlertOptions(
            rules=AlertRules(tuple(label_rules), down),
            events_path=args.events,
            on_alert=args.on_alert,
            webhook=args.webhook,
        ),
    )


def _collect_options(args: argparse.Namespace) -> CollectOptions | None:
    if args.collect is None:
        return None
    return CollectOptions(
        directory=args.collect,
        below=args.collect_below,
        max_per_min=args.collect_max_per_min,
        max_mb=args.collect_max_mb,
        sample=args.collect_sample,
        seed=args.collect_seed,
    )


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
        reconnect=dataclasses.replace(DEFAULT_RECONNECT, max_retries=args.max_retries),
        stall_timeout_s=args.stall_timeout,
        folder_fps=args.folder_fps,
        page_format=args.page_format,
        duration_s=args.duration,
        csv_path=args.csv,
        segments_path=args.segments,
        record_path=args.record,
        display=args.display,
        verbose=args.verbose,
        metrics_address=args.metrics_address,
        live=_live_options(args),
        collect=_collect_options(args),
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


def _announce(live: LiveOutputs, config: WatchConfig, console: TextIO) -> None:
    """Print where the web view and the re-streams are (ports may have been picked: port 0)."""
    if live.web is not None:
        print(f"web view: {live.web.url}", file=console, flush=True)
    if live.restreamer is not None:
        for source in source_ids(config.sources):
            print(f"re-stream of {source}: {live.restreamer.url(source)}", file=console, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run ``watch`` with parsed flags; returns the exit status."""
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return watch(config)


def watch(config: WatchConfig, console: TextIO | None = None) -> int:
    """Run the watcher with its outputs as ``config`` asks; returns the exit status.

    Lines and the summary go to ``console`` (``sys.stdout`` as it is at the call), errors to
    ``sys.stderr``.
    """
    console = sys.stdout if console is None else console
    observers: list[WatchObserver] = [ConsoleLines(console, verbose=config.verbose)]
    metrics: WatchMetrics | None = None
    if config.metrics_address is not None:
        try:  # before connecting: a missing package or a busy port is a start-up error
            metrics = WatchMetrics(config)
            metrics.serve(config.metrics_address)
        except CameraToolsError as exc:
            print(f"watch: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
        observers.append(metrics)
    try:  # before connecting: a busy port or a missing GStreamer is a start-up error
        live = LiveOutputs.start(config.live, source_ids(config.sources), console=console)
    except (CameraToolsError, ValueError) as exc:
        if metrics is not None:
            metrics.close()
        print(f"watch: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    if live.active:
        _announce(live, config, console)
        observers.append(LiveObserver(live, server_id=server_id(config.server)))
    collecting: CollectObserver | None = None
    if config.collect is not None:
        try:  # before connecting: a folder that cannot be written is a start-up error
            collector = Collector(config.collect, fetch_labels=server_labels(config))
        except CameraToolsError as exc:
            live.close()
            if metrics is not None:
                metrics.close()
            print(f"watch: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
        collecting = CollectObserver(collector, server_id=server_id(config.server))
        observers.append(collecting)
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
    print(format_summary(report), file=console, flush=True)
    for source, (path, frames) in watcher.recorded.items():
        print(f"recorded {source}: {path} ({frames} frames)", file=console, flush=True)
    if collecting is not None and collecting.counts is not None and config.collect is not None:
        print(
            f"collected into {config.collect.directory}: {collecting.counts.describe()}",
            file=console,
            flush=True,
        )
    return EXIT_FAILED if report.failed else EXIT_OK
