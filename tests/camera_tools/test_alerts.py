from __future__ import annotations

import json

import pytest

from camera_tools.alert_options import AlertOptions, build_alerts
from camera_tools.alerts import (
    AlertEvent,
    AlertKind,
    AlertMonitor,
    AlertRules,
    DownRule,
    LabelRule,
    event_from_dict,
    parse_down_seconds,
    parse_label_rule,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_table(
    rules: AlertRules, steps: list[tuple[float, str]]
) -> list[tuple[float, AlertKind, str]]:
    """Feed (time offset, label or 'down'/'up'/'tick') steps; return (offset, kind, rule)."""
    clock = FakeClock()
    events: list[AlertEvent] = []
    monitor = AlertMonitor(rules, events.append, clock=clock)
    for offset, what in steps:
        clock.now = 1000.0 + offset
        if what == "down":
            monitor.observe_state("cam", up=False, reason="connection refused")
        elif what == "up":
            monitor.observe_state("cam", up=True)
        elif what == "tick":
            monitor.tick()
        else:
            monitor.observe_label("cam", what)
    return [(e.at - 1000.0, e.kind, e.rule) for e in events]


def frames(start: float, end: float, label: str, step: float = 0.5) -> list[tuple[float, str]]:
    count = round((end - start) / step)
    return [(start + i * step, label) for i in range(count + 1)]


BLACK5 = AlertRules((LabelRule(frozenset({"black"}), 5.0),))
RAISED, CLEARED = AlertKind.RAISED, AlertKind.CLEARED


@pytest.mark.parametrize(
    ("rules", "steps", "expected"),
    [
        # black for 5 s (and more) raises once, and clears once when the picture comes back
        (
            BLACK5,
            frames(0, 2, "program") + frames(2.5, 9, "black") + frames(9.5, 12, "program"),
            [(7.5, RAISED, "black:5"), (9.5, CLEARED, "black:5")],
        ),
        # flicker: black for 4.5 s at most, three times, raises nothing
        (
            BLACK5,
            (frames(0, 4.5, "black") + frames(5, 6, "program")) * 1
            + frames(6.5, 11, "black")
            + frames(11.5, 12, "program")
            + frames(12.5, 17, "black"),
            [],
        ),
        # a set of labels: switching between them keeps the alert going
        (
            AlertRules((parse_label_rule("color_bars,static:10"),)),
            frames(0, 6, "color_bars") + frames(6.5, 12, "static") + frames(12.5, 13, "program"),
            [(10.0, RAISED, "color_bars,static:10"), (12.5, CLEARED, "color_bars,static:10")],
        ),
        # two rules on one source are independent
        (
            AlertRules(
                (LabelRule(frozenset({"black"}), 1.0), LabelRule(frozenset({"black"}), 3.0))
            ),
            frames(0, 4, "black") + [(4.5, "program")],
            [
                (1.0, RAISED, "black:1"),
                (3.0, RAISED, "black:3"),
                (4.5, CLEARED, "black:1"),
                (4.5, CLEARED, "black:3"),
            ],
        ),
        # down for longer than allowed: raised by a tick, cleared when the source is back
        (
            AlertRules(down=DownRule(10.0)),
            [(0, "program"), (1, "down"), (5, "tick"), (11, "tick"), (12, "tick"), (20, "up")],
            [(11.0, RAISED, "down:10"), (20.0, CLEARED, "down:10")],
        ),
        # down briefly: nothing; a classified frame also means the source is up again
        (
            AlertRules(down=DownRule(10.0)),
            [
                (0, "down"),
                (9, "tick"),
                (9.5, "program"),
                (30, "tick"),
                (31, "down"),
                (42, "tick"),
                (45, "program"),
            ],
            [(42.0, RAISED, "down:10"), (45.0, CLEARED, "down:10")],
        ),
    ],
    ids=["black-5s", "flicker", "label-set", "two-rules", "down", "down-brief"],
)
def test_alert_tables(
    rules: AlertRules, steps: list[tuple[float, str]], expected: list[tuple[float, AlertKind, str]]
) -> None:
    assert run_table(rules, steps) == expected


def test_alert_event_round_trips_through_json() -> None:
    events: list[AlertEvent] = []
    clock = FakeClock()
    monitor = AlertMonitor(BLACK5, events.append, clock=clock)
    for offset in (0.0, 5.0):
        clock.now = 1000.0 + offset
        monitor.observe_label("rtsp://***@cam/live", "black")
    assert monitor.active() == {"rtsp://***@cam/live": ["black:5"]}
    (event,) = events
    data = json.loads(event.to_json())
    assert data["kind"] == "raised" and data["duration_s"] == 5.0 and data["label"] == "black"
    assert event_from_dict(data) == event
    assert "ALERT raised black:5 on rtsp://***@cam/live after 5.0 s" in event.describe()


@pytest.mark.parametrize(
    ("text", "labels", "seconds"),
    [
        ("black:5", {"black"}, 5.0),
        ("color_bars, static:10", {"color_bars", "static"}, 10.0),
        ("a:b:0.5", {"a:b"}, 0.5),
    ],
)
def test_parse_label_rule(text: str, labels: set[str], seconds: float) -> None:
    rule = parse_label_rule(text)
    assert rule.labels == labels and rule.seconds == seconds


@pytest.mark.parametrize(
    "text", ["black", ":5", "black:", "black:x", "black:-1", "a,,b:3", "x:nan"]
)
def test_parse_label_rule_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_label_rule(text)


@pytest.mark.parametrize("text", ["x", "-3", "inf"])
def test_parse_down_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_down_seconds(text)


def test_options_build_a_monitor_only_with_rules() -> None:
    assert build_alerts(AlertOptions()) is None
    rules = AlertRules(
        (parse_label_rule("black:5"), parse_label_rule("static:2")), parse_down_seconds("30")
    )
    built = build_alerts(AlertOptions(rules))
    assert built is not None
    monitor, outputs = built
    assert [r.name for r in monitor.rules.labels] == ["black:5", "static:2"]
    assert monitor.rules.down == DownRule(30.0)
    outputs.close()
