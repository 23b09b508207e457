"""What happened on each source: a timeline report from segment files (and alert events).

Reads the segments ``watch --segments`` writes, per source works out how long each label
lasted, its share, how many stretches it had and the longest one, and renders one
self-contained HTML file (inline SVG and CSS, nothing fetched) and optionally a PNG drawn with
OpenCV. Colours are the overlay's, so the report matches the video and the web view.

Time attribution: a stretch lasts from its first frame to the first frame of the next stretch,
so consecutive stretches tile the timeline without holes; a pause longer than ``gap_s``
(a source down, or separate runs) stays a hole.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camera_tools.alerts import AlertEvent, event_from_dict
from camera_tools.camera_errors import CameraToolsError
from camera_tools.overlay import label_color, label_color_hex, short_source_name, text_color_on
from camera_tools.sinks.segments import Segment

_WALL_CLOCK_AFTER = 1e8  # times above this are time.time() values (1973+), below: file positions


class ReportError(CameraToolsError):
    """The report cannot be made: unreadable input or nothing to report."""


@dataclass(frozen=True)
class Stretch:
    """One stretch of a label on the timeline (``end_s`` may equal ``start_s``)."""

    label: str
    start_s: float
    end_s: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class LabelSummary:
    """How one label did on one source.

    Attributes:
        label: The label.
        seconds: Time spent in it.
        share: Fraction of the source's classified time (by frames when no time passed).
        count: Number of stretches.
        longest_s: Longest stretch in seconds.
        frames: Frames classified with it.
    """

    label: str
    seconds: float
    share: float
    count: int
    longest_s: float
    frames: int


@dataclass(frozen=True)
class SourceTimeline:
    """One source's report: its stretches, per-label summary and alerts."""

    source: str
    stretches: tuple[Stretch, ...]
    labels: tuple[LabelSummary, ...]
    alerts: tuple[AlertEvent, ...]

    @property
    def name(self) -> str:
        return short_source_name(self.source, max_length=60)

    @property
    def start_s(self) -> float:
        return self.stretches[0].start_s

    @property
    def end_s(self) -> float:
        return max(s.end_s for s in self.stretches)

    @property
    def wall_clock(self) -> bool:
        return self.start_s > _WALL_CLOCK_AFTER


def build_timelines(
    segments: Iterable[Segment], events: Iterable[AlertEvent] = (), *, gap_s: float = 5.0
) -> list[SourceTimeline]:
    """Group segments per source (in order of first appearance) and summarise each.

    Args:
        segments: Segments of any number of sources and files, in any order.
        events: Alert events; each is attached to its source.
        gap_s: A pause between segments longer than this is left as a hole.
    """
    by_source: dict[str, list[Segment]] = {}
    for segment in segments:
        by_source.setdefault(segment.source, []).append(segment)
    alerts: dict[str, list[AlertEvent]] = {}
    for event in events:
        alerts.setdefault(event.source, []).append(event)
    timelines = []
    for source, items in by_source.items():
        items.sort(key=lambda s: (s.start_s, s.first_frame))
        stretches = []
        for i, segment in enumerate(items):
            end = segment.end_s
            if i + 1 < len(items) and 0 <= items[i + 1].start_s - segment.end_s <= gap_s:
                end = items[i + 1].start_s
            stretches.append(Stretch(segment.label, segment.start_s, end, segment.frames))
        timelines.append(
            SourceTimeline(
                source,
                tuple(stretches),
                _summarise(stretches),
                tuple(sorted(alerts.get(source, ()), key=lambda e: e.at)),
            )
        )
    return timelines


def _summarise(stretches: Sequence[Stretch]) -> tuple[LabelSummary, ...]:
    seconds: dict[str, float] = {}
    frames: dict[str, int] = {}
    counts: dict[str, int] = {}
    longest: dict[str, float] = {}
    for stretch in stretches:
        label = stretch.label
        seconds[label] = seconds.get(label, 0.0) + stretch.seconds
        frames[label] = frames.get(label, 0) + stretch.frames
        counts[label] = counts.get(label, 0) + 1
        longest[label] = max(longest.get(label, 0.0), stretch.seconds)
    total_seconds = sum(seconds.values())
    total_frames = sum(frames.values())
    summaries = [
        LabelSummary(
            label,
            seconds[label],
            seconds[label] / total_seconds if total_seconds > 0 else frames[label] / total_frames,
            counts[label],
            longest[label],
            frames[label],
        )
        for label in seconds
    ]
    return tuple(sorted(summaries, key=lambda s: (-s.share, s.label)))


def read_events(path: str | os.PathLike[str]) -> list[AlertEvent]:
    """Read an ``--events`` JSON Lines file.

    Raises:
        ReportError: Unreadable file or a line that is not an alert event.
    """
    path = Path(path)
    events = []
    try:
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    events.append(event_from_dict(json.loads(line)))
                except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                    raise ReportError(f"{path}:{number}: not an alert event: {exc}") from None
    except OSError as exc:
        raise ReportError(f"cannot read events file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not a text file: {exc}") from None
    return events


def format_duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``.

    Example:
        >>> format_duration(4.25), format_duration(185), format_duration(3720)
        ('4.2 s', '3 min 05 s', '1 h 02 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_time(seconds: float, wall_clock: bool) -> str:
    """A wall-clock time as local date and time, a file position as ``h:mm:ss.s``."""
    if wall_clock:
        return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}"


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d232a; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } .muted { color: #68737d; }
section { margin: 22px 0 30px; } h2 { font-size: 17px; margin: 0 0 6px; }
svg.timeline { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; margin-top: 8px; min-width: 480px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #e3e7ea; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
  vertical-align: -1px; margin-right: 6px; }
.raised { color: #c0392b; font-weight: 600; } .cleared { color: #27ae60; }
"""
_SVG_WIDTH = 1000
_SVG_BAR = 34


def render_html(timelines: Sequence[SourceTimeline], *, title: str = "Timeline report") -> str:
    """One self-contained HTML page: per source a timeline, a label table and its alerts."""
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{len(timelines)} source{"s" if len(timelines) != 1 else ""}; '
        f"generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}</p>",
    ]
    for timeline in timelines:
        parts.append(_source_html(timeline))
    parts.append("</body></html>")
    return "\n".join(parts)


def _source_html(timeline: SourceTimeline) -> str:
    esc = html.escape
    clock = timeline.wall_clock
    span = timeline.end_s - timeline.start_s
    rows = "".join(
        f'<tr><td><span class=swatch style="background:{label_color_hex(s.label)}"></span>'
        f"{esc(s.label)}</td><td class=num>{format_duration(s.seconds)}</td>"
        f"<td class=num>{s.share * 100:.1f}%</td><td class=num>{s.count}</td>"
        f"<td class=num>{format_duration(s.longest_s)}</td></tr>"
        for s in timeline.labels
    )
    alerts = ""
    if timeline.alerts:
        alert_rows = "".join(
            f"<tr><td>{esc(format_time(e.at, True))}</td>"
            f'<td class="{e.kind.value}">{e.kind.value}</td><td>{esc(e.rule)}</td>'
            f"<td class=num>{format_duration(e.duration_s)}</td><td>{esc(e.detail)}</td></tr>"
            for e in timeline.alerts
        )
        alerts = (
            "<h3>Alerts</h3><table class=alerts><tr><th>time</th><th>event</th><th>rule</th>"
            f"<th>after</th><th>detail</th></tr>{alert_rows}</table>"
        )
    return (
        f'<section class="source"><h2 title="{esc(timeline.source)}">{esc(timeline.name)}</h2>'
        f'<div class="muted">{esc(format_time(timeline.start_s, clock))} – '
        f"{esc(format_time(timeline.end_s, clock))} ({format_duration(span)})</div>"
        f"{_timeline_svg(timeline)}"
        "<table class=labels><tr><th>label</th><th>time</th><th>share</th><th>stretches</th>"
        f"<th>longest</th></tr>{rows}</table>{alerts}</section>"
    )


def _timeline_svg(timeline: SourceTimeline) -> str:
    esc = html.escape
    start, span = timeline.start_s, max(timeline.end_s - timeline.start_s, 1e-9)
    height = _SVG_BAR + 18
    rects = []
    for stretch in timeline.stretches:
        x = (stretch.start_s - start) / span * _SVG_WIDTH
        width = max(0.5, stretch.seconds / span * _SVG_WIDTH)  # a single frame stays visible
        tip = (
            f"{stretch.label}: {format_time(stretch.start_s, timeline.wall_clock)}, "
            f"{format_duration(stretch.seconds)}"
        )
        rects.append(
            f'<rect class="stretch" data-label="{esc(stretch.label)}" x="{x:.2f}" y="0" '
            f'width="{width:.2f}" height="{_SVG_BAR}" fill="{label_color_hex(stretch.label)}">'
            f"<title>{esc(tip)}</title></rect>"
        )
    # Alert times are wall clock: they only line up with a live source's timeline.
    for event in timeline.alerts if timeline.wall_clock else ():
        if event.active:
            x = (event.at - start) / span * _SVG_WIDTH
            rects.append(
                f'<line x1="{x:.2f}" x2="{x:.2f}" y1="0" y2="{_SVG_BAR}" stroke="#c0392b" '
                f'stroke-width="2"><title>{esc(event.describe())}</title></line>'
            )
    clock = timeline.wall_clock
    axis = (
        f'<text x="0" y="{height - 3}" font-size="12" fill="#68737d">'
        f"{esc(format_time(timeline.start_s, clock))}</text>"
        f'<text x="{_SVG_WIDTH}" y="{height - 3}" font-size="12" fill="#68737d" '
        f'text-anchor="end">{esc(format_time(timeline.end_s, clock))}</text>'
    )
    return (
        f'<svg class="timeline" viewBox="0 0 {_SVG_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="timeline of labels">'
        f'<rect x="0" y="0" width="{_SVG_WIDTH}" height="{_SVG_BAR}" fill="#eef1f3"/>'
        f"{''.join(rects)}{axis}</svg>"
    )


# -- PNG -----------------------------------------------------------------------------------

_PNG_WIDTH = 1200
_ROW_H = 110
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_png(timelines: Sequence[SourceTimeline]) -> np.ndarray:
    """The timelines as one BGR image: per source its name, bar and a legend with shares."""
    margin = 20
    image = np.full((margin + _ROW_H * max(1, len(timelines)), _PNG_WIDTH, 3), 255, np.uint8)
    bar_w = _PNG_WIDTH - 2 * margin
    for row, timeline in enumerate(timelines):
        top = margin + row * _ROW_H
        cv2.putText(
            image, timeline.name, (margin, top + 18), _FONT, 0.6, (40, 35, 29), 1, cv2.LINE_AA
        )
        bar_top, bar_bottom = top + 28, top + 62
        image[bar_top:bar_bottom, margin : margin + bar_w] = (243, 241, 238)
        start, span = timeline.start_s, max(timeline.end_s - timeline.start_s, 1e-9)
        for stretch in timeline.stretches:
            x0 = margin + int((stretch.start_s - start) / span * bar_w)
            x1 = max(x0 + 1, margin + int((stretch.end_s - start) / span * bar_w))
            image[bar_top:bar_bottom, x0:x1] = label_color(stretch.label)
        x = margin
        for summary in timeline.labels:
            color = label_color(summary.label)
            text = f"{summary.label} {summary.share * 100:.1f}%"
            (w, _), _ = cv2.getTextSize(text, _FONT, 0.5, 1)
            if x + w + 30 > _PNG_WIDTH:
                break
            cv2.rectangle(image, (x, top + 72), (x + w + 12, top + 94), color, cv2.FILLED)
            cv2.putText(
                image, text, (x + 6, top + 88), _FONT, 0.5, text_color_on(color), 1, cv2.LINE_AA
            )
            x += w + 24
    return image


def write_report(
    timelines: Sequence[SourceTimeline],
    html_path: str | os.PathLike[str],
    *,
    png_path: str | os.PathLike[str] | None = None,
    title: str = "Timeline report",
) -> None:
    """Write the HTML (and PNG) report.

    Raises:
        ReportError: Nothing to report, or a file cannot be written.
    """
    if not timelines:
        raise ReportError("no segments to report")
    try:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(render_html(timelines, title=title), encoding="utf-8")
        if png_path is not None:
            Path(png_path).parent.mkdir(parents=True, exist_ok=True)
            ok, encoded = cv2.imencode(".png", render_png(timelines))
            if not ok:
                raise ReportError("PNG encoding failed")
            Path(png_path).write_bytes(encoded.tobytes())
    except OSError as exc:
        raise ReportError(f"cannot write the report: {exc}") from exc
