"""The built-in outputs of the watch application, each a :class:`WatchObserver`.

* :class:`ConfiguredOutputs`: the sinks a :class:`WatchConfig` asks for (``--csv``,
  ``--segments``, ``--record``, ``--display``), plus any extra :class:`Sink`.
* :class:`ConsoleLines`: one line per label change per source (or per frame when verbose).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from camera_tools.overlay import OverlayPainter
from camera_tools.sinks import (
    CsvFrameLog,
    DisplaySink,
    SegmentLog,
    Sink,
    VideoRecorder,
    derive_output_path,
)
from camera_tools.watch.observers import ClassifiedFrame, WatchObserver
from camera_tools.watch.source_summary import SourceSummary
from camera_tools.watch.watch_config import WatchConfig, source_ids

logger = logging.getLogger(__name__)

_CSV_FLUSH_EVERY = 20  # rows: a crash loses at most this many, and the disk is not hit per frame
_QUIT_KEYS = (ord("q"), 27)  # q and Esc in a display window


def record_paths(path: Path, specs: Sequence[str]) -> dict[str, Path]:
    """Where each source is recorded: ``path`` itself for one source, else ``<stem>-<name>``.

    The name is the file or folder name for local sources (full paths would make long names
    that differ only past :func:`~camera_tools.sinks.slugify`'s length limit), else the
    redacted URL; repeated names get ``-2``, ``-3``...
    """
    ids = source_ids(specs)
    if len(specs) == 1:
        return {ids[0]: path}
    paths: dict[str, Path] = {}
    used: set[Path] = set()
    for spec, source_id in zip(specs, ids, strict=True):
        short = source_id if "://" in spec else (Path(spec).name or source_id)
        candidate, n = derive_output_path(path, short), 1
        while candidate in used:
            n += 1
            candidate = derive_output_path(path, f"{short}-{n}")
        used.add(candidate)
        paths[source_id] = candidate
    return paths


class ConfiguredOutputs(WatchObserver):
    """The sinks that ``config`` asks for, and ``extra`` ones, fed with every classified frame.

    Args:
        config: Which outputs (csv, segments, record, display) and where.
        extra: More sinks to write every :class:`~camera_tools.sinks.Classification` to.
        on_quit: Called when q or Esc is pressed in a display window.

    Raises:
        SinkError: An output file cannot be opened.
        DisplayUnavailableError: ``display`` was asked for without a screen.
    """

    def __init__(
        self,
        config: WatchConfig,
        *,
        extra: Sequence[Sink] = (),
        on_quit: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self.sinks: list[Sink] = list(extra)
        self.segments: SegmentLog | None = None
        self.display: DisplaySink | None = None
        self._recorders: dict[str, VideoRecorder] = {}
        self._fps: dict[str, tuple[float, float]] = {}  # source -> (last answer time, smoothed fps)
        self._painter = OverlayPainter()  # the same badge, name and strip as the web view
        self._record_paths = (
            record_paths(config.record_path, config.sources)
            if config.record_path is not None
            else {}
        )
        # Only the overlaid outputs need the frames: without them no image is kept in flight.
        self.wants_images = config.display or config.record_path is not None
        try:
            if config.csv_path is not None:
                self.sinks.append(CsvFrameLog(config.csv_path, flush_every=_CSV_FLUSH_EVERY))
            if config.segments_path is not None:
                self.segments = SegmentLog(config.segments_path)
                self.sinks.append(self.segments)
            if config.display:
                self.display = DisplaySink(
                    on_key=lambda key: on_quit() if key in _QUIT_KEYS else None
                )
        except BaseException:
            self.close()
            raise

    def on_frame(self, frame: ClassifiedFrame) -> None:
        result = frame.classification
        for sink in self.sinks:
            sink.write(result)
        if frame.image is None or not self.wants_images:
            return
        image = self._painter.paint(
            frame.image,
            source=result.source_id,
            label=result.label,
            score=result.score,
            fps=self._measure_fps(result.source_id),
            extra=() if result.position_s is None else (f"t={result.position_s:.2f}s",),
            # A file's strip spans seconds of video, however fast it is classified.
            at=result.captured_at if result.position_s is None else result.position_s,
            timestamp=result.captured_at,
        )
        if self._config.record_path is not None:
            recorder = self._recorders.get(result.source_id)
            if recorder is None:
                path = self._record_paths[result.source_id]
                recorder = VideoRecorder(path, fps=frame.playback_fps)
                self._recorders[result.source_id] = recorder
            recorder.write(result, image)
        if self.display is not None:
            self.display.write(result, image)

    def on_source_finished(self, summary: SourceSummary) -> None:
        if self.segments is not None:
            self.segments.flush_source(summary.source)

    def recorded(self) -> dict[str, tuple[Path, int]]:
        """Per source, the recording's path and its frame count so far."""
        return {
            source: (rec.output_path(source), rec.frames_written.get(source, 0))
            for source, rec in self._recorders.items()
        }

    def _measure_fps(self, source: str) -> float | None:
        now = time.monotonic()
        last, fps = self._fps.get(source, (None, 0.0))
        if last is not None and now > last:
            fps = 1.0 / (now - last) if fps == 0 else 0.9 * fps + 0.1 / (now - last)
        self._fps[source] = (now, fps)
        return fps or None

    def close(self) -> None:
        for closable in [*self.sinks, *self._recorders.values(), self.display]:
            if closable is None:
                continue
            try:
                closable.close()
            except Exception:
                logger.exception("error closing an output")


class ConsoleLines(WatchObserver):
    """Writes one line per label change per source (or per frame when ``verbose``) to ``out``.

    A line: ``HH:MM:SS.mmm  SOURCE  LABEL  SCORE[  @POSITIONs][  frame N  (FRAME_LABEL)]``.
    """

    def __init__(self, out: TextIO, *, verbose: bool = False) -> None:
        self._out = out
        self._verbose = verbose
        self._last: dict[str, str] = {}

    def on_frame(self, frame: ClassifiedFrame) -> None:
        result = frame.classification
        changed = self._last.get(result.source_id) != result.label
        self._last[result.source_id] = result.label
        if not (changed or self._verbose):
            return
        clock = dt.datetime.fromtimestamp(result.captured_at).strftime("%H:%M:%S.%f")[:-3]
        position = "" if result.position_s is None else f"  @{result.position_s:.2f}s"
        detail = ""
        if self._verbose:
            detail = f"  frame {result.frame_index}  ({result.frame_label or '-'})"
        self._out.write(
            f"{clock}  {result.source_id}  {result.label}  {result.score:.3f}{position}{detail}\n"
        )
        self._out.flush()
