"""Alerts on what matters: a source stuck on some labels, or down, for longer than allowed.

Rules come from ``--alert LABEL[,LABEL...]:SECONDS`` and ``--alert-down SECONDS``. Each
(source, rule) pair has a small state machine that is given the time explicitly, so the
policy is tested without clocks or sleeps; :class:`AlertMonitor` owns the clock, feeds the
machines and hands every raise and clear (an :class:`AlertEvent`) to one callback.

Example:
    >>> rule = parse_label_rule("black:5")
    >>> machine = LabelAlertState("cam", rule)
    >>> steps = [(0, "black"), (5, "black"), (6, "program")]
    >>> [event and event.kind.value for event in (machine.update(l, t) for t, l in steps)]
    [None, 'raised', 'cleared']
"""

from __future__ import annotations

import enum
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


class AlertKind(enum.StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(frozen=True)
class LabelRule:
    """Alert when a source's window-averaged label stays in ``labels`` for ``seconds``.

    Attributes:
        labels: The labels that count (any of them, switching between them included).
        seconds: How long the source must stay in the set before the alert is raised.
    """

    labels: frozenset[str]
    seconds: float

    def __post_init__(self) -> None:
        if not self.labels or any(not label for label in self.labels):
            raise ValueError("an alert rule needs at least one non-empty label")
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValueError(f"alert seconds must be a finite number >= 0, got {self.seconds}")

    @property
    def name(self) -> str:
        """The rule as written on the command line, labels sorted: ``color_bars,static:10``."""
        return f"{','.join(sorted(self.labels))}:{self.seconds:g}"


@dataclass(frozen=True)
class DownRule:
    """Alert when a source stays down (reconnecting, stalled, offline, failed) for ``seconds``."""

    seconds: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValueError(f"down seconds must be a finite number >= 0, got {self.seconds}")

    @property
    def name(self) -> str:
        return f"down:{self.seconds:g}"


def parse_label_rule(text: str) -> LabelRule:
    """Parse ``LABEL[,LABEL...]:SECONDS`` (the ``--alert`` flag).

    Raises:
        ValueError: With a message that says what is wrong (argparse shows it as is).

    Example:
        >>> parse_label_rule("color_bars, static:10").name
        'color_bars,static:10'
    """
    labels_text, sep, seconds_text = text.rpartition(":")
    if not sep or not labels_text.strip():
        raise ValueError(f"expected LABEL[,LABEL...]:SECONDS, got {text!r}")
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ValueError(f"SECONDS must be a number in {text!r}, got {seconds_text!r}") from None
    labels = frozenset(part.strip() for part in labels_text.split(","))
    if "" in labels:
        raise ValueError(f"empty label in {text!r}")
    return LabelRule(labels, seconds)


def parse_down_seconds(text: str) -> DownRule:
    """Parse the ``--alert-down SECONDS`` value."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"--alert-down needs a number of seconds, got {text!r}") from None
    return DownRule(seconds)


@dataclass(frozen=True)
class AlertEvent:
    """One raise or clear of an alert; JSON-serialisable through :meth:`to_dict`.

    Attributes:
        kind: ``raised`` or ``cleared``.
        rule: The rule's name (``black:5``, ``down:30``).
        source: Source id (credentials redacted).
        at: Wall-clock time of the raise or clear (``time.time()``).
        since: When the condition started (first frame in the set, or when the source went down).
        duration_s: ``at - since``.
        label: The label that raised or cleared it (``None`` for down alerts).
        detail: Short human-readable reason.
    """

    kind: AlertKind
    rule: str
    source: str
    at: float
    since: float
    duration_s: float
    label: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def active(self) -> bool:
        return self.kind is AlertKind.RAISED

    def describe(self) -> str:
        """One line for the console: ``ALERT raised black:5 on cam1 after 5.0 s (black)``."""
        what = f" ({self.detail})" if self.detail else ""
        return f"ALERT {self.kind.value} {self.rule} on {self.source} after {self.duration_s:.1f} s{what}"


class LabelAlertState:
    """The state machine of one :class:`LabelRule` on one source.

    Raised once when the label has stayed in the set for the rule's seconds (measured from the
    first result in the set to the current one); cleared once on the first result outside it.
    """

    def __init__(self, source: str, rule: LabelRule) -> None:
        self.source = source
        self.rule = rule
        self._since: float | None = None
        self.active = False

    def update(self, label: str, now: float) -> AlertEvent | None:
        if label in self.rule.labels:
            if self._since is None:
                self._since = now
            if not self.active and now - self._since >= self.rule.seconds:
                self.active = True
                return self._event(AlertKind.RAISED, label, now, f"{label} for too long")
            return None
        since, self._since = self._since, None
        if self.active and since is not None:
            self.active = False
            return AlertEvent(
                AlertKind.CLEARED,
                self.rule.name,
                self.source,
                now,
                since,
                now - since,
                label,
                f"now {label}",
            )
        return None

    def _event(self, kind: AlertKind, label: str, now: float, detail: str) -> AlertEvent:
        assert self._since is not None
        return AlertEvent(
            kind, self.rule.name, self.source, now, self._since, now - self._since, label, detail
        )


class DownAlertState:
    """The state machine of the :class:`DownRule` on one source.

    The source goes down with :meth:`down` and comes back with :meth:`up`; :meth:`check`
    raises once the time down reaches the rule's seconds (no frames arrive while down, so
    time must be checked on its own).
    """

    def __init__(self, source: str, rule: DownRule) -> None:
        self.source = source
        self.rule = rule
        self._since: float | None = None
        self._reason = ""
        self.active = False

    def down(self, now: float, reason: str = "") -> AlertEvent | None:
        if self._since is None:
            self._since = now
            self._reason = reason
        return self.check(now)

    def up(self, now: float) -> AlertEvent | None:
        since, self._since = self._since, None
        if self.active and since is not None:
            self.active = False
            return AlertEvent(
                AlertKind.CLEARED, self.rule.name, self.source, now, since, now - since, None, "up"
            )
        return None

    def check(self, now: float) -> AlertEvent | None:
        if self._since is None or self.active or now - self._since < self.rule.seconds:
            return None
        self.active = True
        return AlertEvent(
            AlertKind.RAISED,
            self.rule.name,
            self.source,
            now,
            self._since,
            now - self._since,
            None,
            self._reason or "down",
        )


@dataclass(frozen=True)
class AlertRules:
    """Every rule of a run: label rules and an optional down rule."""

    labels: tuple[LabelRule, ...] = ()
    down: DownRule | None = None

    @property
    def empty(self) -> bool:
        return not self.labels and self.down is None


class AlertMonitor:
    """Runs every rule on every source and reports raises and clears to ``on_event``.

    Thread-safe: results, state changes and :meth:`tick` may come from different threads.
    ``on_event`` is called with the monitor's lock released, so a slow callback delays only
    the call that raised the event, never another thread's bookkeeping; it must not raise
    (use :class:`camera_tools.alert_outputs.AlertOutputs`, which catches and logs).

    Args:
        rules: What to alert on.
        on_event: Receives every :class:`AlertEvent`.
        clock: Wall clock (``time.time``), injectable for tests.
    """

    def __init__(
        self,
        rules: AlertRules,
        on_event: Callable[[AlertEvent], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self._on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._labels: dict[str, list[LabelAlertState]] = {}
        self._down: dict[str, DownAlertState] = {}
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def observe_label(self, source: str, label: str) -> None:
        """A classified frame of ``source`` with its window-averaged ``label``."""
        with self._lock:
            now = self._clock()
            machines = self._labels.get(source)
            if machines is None:
                machines = self._labels[source] = [
                    LabelAlertState(source, rule) for rule in self.rules.labels
                ]
            events = [machine.update(label, now) for machine in machines]
            down = self._down_state(source)
            if down is not None:
                events.append(down.up(now))  # a classified frame means the source is up
        self._emit(events)

    def observe_state(self, source: str, *, up: bool, reason: str = "") -> None:
        """``source`` went down (``up=False``: reconnecting, stalled, offline, failed) or came back."""
        with self._lock:
            now = self._clock()
            down = self._down_state(source)
            if down is None:
                return
            event = down.up(now) if up else down.down(now, reason)
        self._emit([event])

    def tick(self) -> None:
        """Check the time-based rules (down alerts) now; call every second or so."""
        with self._lock:
            now = self._clock()
            events = [machine.check(now) for machine in self._down.values()]
        self._emit(events)

    def active(self) -> dict[str, list[str]]:
        """Names of the active rules per source (sources with none are left out)."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for source, machines in self._labels.items():
                out.setdefault(source, []).extend(m.rule.name for m in machines if m.active)
            for source, down in self._down.items():
                if down.active:
                    out.setdefault(source, []).append(down.rule.name)
            return {source: names for source, names in out.items() if names}

    def start(self, interval_s: float = 1.0) -> None:
        """Call :meth:`tick` from a daemon thread every ``interval_s`` until :meth:`close`."""
        if self._ticker is not None or self.rules.down is None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.tick()

        self._ticker = threading.Thread(target=loop, name="alert-ticker", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def _down_state(self, source: str) -> DownAlertState | None:
        if self.rules.down is None:
            return None
        machine = self._down.get(source)
        if machine is None:
            machine = self._down[source] = DownAlertState(source, self.rules.down)
        return machine

    def _emit(self, events: Iterable[AlertEvent | None]) -> None:
        for event in events:
            if event is not None:
                self._on_event(event)


def event_from_dict(data: Mapping[str, Any]) -> AlertEvent:
    """Read back an event written by :meth:`AlertEvent.to_dict` (e.g. from a JSONL file).

    Raises:
        ValueError: On a record that is not an alert event.
    """
    try:
        return AlertEvent(
            kind=AlertKind(data["kind"]),
            rule=str(data["rule"]),
            source=str(data["source"]),
            at=float(data["at"]),
            since=float(data["since"]),
            duration_s=float(data["duration_s"]),
            label=None if data.get("label") is None else str(data["label"]),
            detail=str(data.get("detail", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an alert event: {exc}") from None
