"""Record (overlaid) frames to video files, one file per source."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from camera_tools.camera_errors import SinkError
from camera_tools.sinks.base import Classification, slugify

logger = logging.getLogger(__name__)


def derive_output_path(path: str | os.PathLike[str], source_id: str) -> Path:
    """``out.mp4`` + ``rtsp://***@cam/live`` → ``out-rtsp-cam-live.mp4`` (same folder)."""
    base = Path(path)
    return base.with_name(f"{base.stem}-{slugify(source_id)}{base.suffix or '.mp4'}")


class VideoRecorder:
    """Writes frames to MP4 with ``cv2.VideoWriter``.

    Writers open lazily on each source's first frame, which gives the frame size;
    later frames of another size are resized to it.

    Args:
        path: Output file (``.mp4``).
        fps: Frame rate written in the file.
        per_source: Write ``<stem>-<source-slug><suffix>`` per source instead of
            one file; set it when recording several sources.
        fourcc: Codec; ``mp4v`` works with the FFmpeg bundled in opencv-python.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: float,
        per_source: bool = False,
        fourcc: str = "mp4v",
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must have 4 characters, got {fourcc!r}")
        self.path = Path(path)
        self.fps = fps
        self.per_source = per_source
        self._fourcc = cv2.VideoWriter.fourcc(*fourcc)
        self._writers: dict[str, tuple[cv2.VideoWriter, tuple[int, int], Path]] = {}
        self.frames_written: dict[str, int] = {}

    def output_path(self, source_id: str) -> Path:
        """Where frames of ``source_id`` go."""
        return derive_output_path(self.path, source_id) if self.per_source else self.path

    def write(self, result: Classification, image: np.ndarray | None = None) -> None:
        if image is None:
            raise SinkError("VideoRecorder needs the frame image")
        self.write_image(result.source_id, image)

    def write_image(self, source_id: str, image: np.ndarray) -> None:
        """Append one BGR frame to the source's file."""
        if not self.per_source and self._writers and source_id not in self._writers:
            raise SinkError(
                f"recorder for {self.path} got a second source {source_id!r}; use per_source=True"
            )
        entry = self._writers.get(source_id)
        if entry is None:
            entry = self._open(source_id, image)
        writer, size, _ = entry
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        writer.write(image)
        self.frames_written[source_id] = self.frames_written.get(source_id, 0) + 1

    def _open(
        self, source_id: str, image: np.ndarray
    ) -> tuple[cv2.VideoWriter, tuple[int, int], Path]:
        path = self.output_path(source_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (image.shape[1], image.shape[0])
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, self._fourcc, self.fps, size)
        if not writer.isOpened():
            raise SinkError(
                f"cannot open video writer {path} ({size[0]}x{size[1]} at {self.fps:g} fps)"
            )
        logger.info("recording %s to %s", source_id, path)
        self._writers[source_id] = (writer, size, path)
        return self._writers[source_id]

    def close(self) -> None:
        for writer, _, _ in self._writers.values():
            writer.release()
        self._writers.clear()

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
