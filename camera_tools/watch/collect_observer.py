"""``watch --collect`` as a watch observer: :class:`CollectObserver`.

:class:`~camera_tools.collect.Collector` is part of the camera library and knows nothing of the
watch application; this adapter turns each classified frame into an
:class:`~camera_tools.collect.AnsweredFrame` and tells the collector when a source ends and when
the server connection is (re)made, so ``labels.txt`` follows the server's model.
"""

from __future__ import annotations

from camera_tools.collect import AnsweredFrame, CollectCounts, Collector, FetchLabels
from camera_tools.states import SourceEvent, SourceState
from camera_tools.watch.connection import fetch_model_info
from camera_tools.watch.observers import ClassifiedFrame, WatchObserver
from camera_tools.watch.source_summary import SourceSummary
from camera_tools.watch.watch_config import WatchConfig


class CollectObserver(WatchObserver):
    """Feeds a :class:`~camera_tools.collect.Collector` from the watcher.

    Args:
        collector: Closed with this observer.
        server_id: The ``source_id`` of the server connection's state changes
            (:attr:`Watcher.server_id <camera_tools.watch.Watcher.server_id>`).
    """

    wants_images = True  # kept frames are saved as they were captured

    def __init__(self, collector: Collector, *, server_id: str) -> None:
        self.collector = collector
        self._server_id = server_id
        self._started: dict[str, float] = {}  # live source -> capture time of its first answer
        self.counts: CollectCounts | None = None  # after close

    def on_frame(self, frame: ClassifiedFrame) -> None:
        result, prediction = frame.classification, frame.prediction
        if result.position_s is not None:
            time_s = result.position_s
        else:
            started = self._started.setdefault(result.source_id, result.captured_at)
            time_s = result.captured_at - started
        self.collector.offer(
            AnsweredFrame(
                source=result.source_id,
                frame=result.frame_index,
                time_s=time_s,
                wall_time=result.captured_at,
                label=prediction.frame_label or prediction.label,
                score=prediction.frame_score if prediction.frame_label else prediction.score,
                top=tuple((scored.label, scored.score) for scored in prediction.top_k),
                window_label=prediction.label,
                window_score=prediction.score,
                model_version=prediction.model_version,
                image=frame.image,
            )
        )

    def on_state(self, event: SourceEvent) -> None:
        if event.source_id == self._server_id and event.state is SourceState.CONNECTED:
            self.collector.refresh_labels()

    def on_source_finished(self, summary: SourceSummary) -> None:
        self.collector.finish_source(summary.source)

    def close(self) -> None:
        self.counts = self.collector.close()


def server_labels(config: WatchConfig) -> FetchLabels:
    """What the collector asks for ``labels.txt``: the server's model version and labels now."""

    def fetch() -> tuple[str, tuple[str, ...]]:
        info = fetch_model_info(config)
        return info.model_version, info.labels

    return fetch
