"""Alert settings as a typed value, and the monitor wired to its outputs that they ask for.

The ``watch`` command line builds an :class:`AlertOptions` (``--alert``, ``--alert-down``,
``--events``, ``--on-alert``, ``--webhook``); :func:`build_alerts` turns it into an
:class:`~camera_tools.alerts.AlertMonitor` wired to its outputs (or ``None`` without rules).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from camera_tools.alerts import AlertEvent, AlertMonitor, AlertRules


@dataclass(frozen=True)
class AlertOptions:
    """What to alert on and where alerts go (``watch --alert ...``); the defaults alert on nothing.

    Attributes:
        rules: Label rules and the optional down rule.
        events_path: Append every raise/clear to this file as JSON Lines.
        on_alert: Run this command (no shell) on every raise/clear, the event on its stdin.
        webhook: POST every raise/clear as JSON to this URL.
    """

    rules: AlertRules = field(default_factory=AlertRules)
    events_path: Path | None = None
    on_alert: str | None = None
    webhook: str | None = None


def build_alerts(
    options: AlertOptions,
    *,
    console: TextIO = sys.stdout,
    extra: Sequence[Callable[[AlertEvent], None]] = (),
) -> tuple[AlertMonitor, AlertOutputs] | None:
    """The monitor and outputs ``options`` ask for; ``None`` when they have no rule.

    Args:
        options: The rules and outputs.
        console: Where the one-line-per-event console output goes.
        extra: More receivers of every event (e.g. ``WebHub.publish_alert``).

    Raises:
        ValueError: A bad ``--on-alert`` or ``--webhook`` value.
        camera_tools.camera_errors.SinkError: The events file cannot be opened.
    """
    if options.rules.empty:
        return None
    outputs: list[AlertOutput] = [ConsoleAlertOutput(console)]
    try:
        if options.events_path is not None:
            outputs.append(JsonlAlertOutput(options.events_path))
        if options.on_alert:
            outputs.append(CommandAlertOutput(options.on_alert))
        if options.webhook:
            outputs.append(WebhookAlertOutput(options.webhook))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    dispatch = AlertOutputs(outputs, extra=extra)
    return AlertMonitor(options.rules, dispatch), dispatch
