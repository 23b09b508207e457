"""Command-line flags for alerts, shared by every command that watches sources.

``add_alert_arguments(parser)`` adds ``--alert``, ``--alert-down``, ``--events``,
``--on-alert`` and ``--webhook``; :func:`build_alerts` turns the parsed flags into an
:class:`~camera_tools.alerts.AlertMonitor` wired to its outputs (or ``None`` without rules).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from camera_tools.alert_outputs import (
    AlertOutput,
    AlertOutputs,
    CommandAlertOutput,
    ConsoleAlertOutput,
    JsonlAlertOutput,
    WebhookAlertOutput,
)
from camera_tools.alerts import (
    AlertEvent,
    AlertMonitor,
    AlertRules,
    DownRule,
    LabelRule,
    parse_down_seconds,
    parse_label_rule,
)


def _label_rule(text: str) -> LabelRule:
    try:
        return parse_label_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _down_rule(text: str) -> DownRule:
    try:
        return parse_down_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_alert_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("alerts")
    group.add_argument(
        "--alert",
        dest="alerts",
        action="append",
        type=_label_rule,
        default=[],
        metavar="LABEL[,LABEL...]:SECONDS",
        help="raise an alert when a source's label stays in the set that long (repeatable), "
        "e.g. --alert black:5 --alert color_bars,static:10",
    )
    group.add_argument(
        "--alert-down",
        type=_down_rule,
        metavar="SECONDS",
        help="raise an alert when a source stays down (reconnecting) that long",
    )
    group.add_argument(
        "--events", type=Path, metavar="PATH", help="append every alert raise/clear as JSON Lines"
    )
    group.add_argument(
        "--on-alert",
        metavar="CMD",
        help="run CMD on every raise/clear, with the event as JSON on stdin and ALERT_* "
        "environment variables (no shell; killed after 10 s)",
    )
    group.add_argument(
        "--webhook", metavar="URL", help="POST every raise/clear as JSON to URL (retried)"
    )


def build_alerts(
    args: argparse.Namespace,
    *,
    console: TextIO = sys.stdout,
    extra: Sequence[Callable[[AlertEvent], None]] = (),
) -> tuple[AlertMonitor, AlertOutputs] | None:
    """The monitor and outputs for the parsed flags; ``None`` when no rule is given.

    Args:
        args: Parsed flags (see :func:`add_alert_arguments`).
        console: Where the one-line-per-event console output goes.
        extra: More receivers of every event (e.g. ``WebHub.publish_alert``).

    Raises:
        ValueError: A bad ``--on-alert`` or ``--webhook`` value.
        camera_tools.camera_errors.SinkError: The events file cannot be opened.
    """
    rules = AlertRules(tuple(args.alerts), args.alert_down)
    if rules.empty:
        return None
    outputs: list[AlertOutput] = [ConsoleAlertOutput(console)]
    try:
        if args.events is not None:
            outputs.append(JsonlAlertOutput(args.events))
        if args.on_alert:
            outputs.append(CommandAlertOutput(args.on_alert))
        if args.webhook:
            outputs.append(WebhookAlertOutput(args.webhook))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    dispatch = AlertOutputs(outputs, extra=extra)
    return AlertMonitor(rules, dispatch), dispatch
