"""Turn training inputs (label folders, segment files) into one :class:`FrameSet`.

Images are decoded and videos sampled in a thread pool (OpenCV and TensorFlow release the GIL),
and every frame is resized by the server's own preprocessing, so the model is trained on
exactly the pixels it will be served.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streaming.server.serve_config import ModelConfig
from streaming.training.annotations import drop_overlaps, is_annotation_file, read_annotations
from streaming.training.folders import scan_folder
from streaming.training.sampling import SamplingPolicy, sample_video
from streaming.training.training_errors import DataError, import_tensorflow
from streaming.training.training_values import Annotation, FrameSet, ImageItem, Problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    """Where inputs are found and how they become model-sized frames.

    Attributes:
        height: model input height.
        width: model input width.
        sampling: how frames are taken from annotated videos.
        videos_dir: folder where segment files' ``source`` names are looked up.
        workers: threads decoding images and videos.
    """

    height: int
    width: int
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    videos_dir: Path | None = None
    workers: int = max(1, min(4, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ValueError(f"input size {self.width}x{self.height} is too small (min 8x8)")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")


@dataclass(frozen=True)
class Loaded:
    frames: FrameSet
    problems: tuple[Problem, ...]
    repeats_skipped: int


class ServerResize:
    """BGR frames of any size to uint8 RGB at the model size, resized by the server's function."""

    def __init__(self, height: int, width: int) -> None:
        from streaming.server.model import make_preprocess

        self._tf = import_tensorflow()
        self._preprocess = make_preprocess(self._tf, ModelConfig(), height, width, 3)

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        elif image_bgr.shape[2] == 4:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        with self._tf.device("/CPU:0"):
            out = self._preprocess(self._tf.convert_to_tensor(rgb[None]))
        # The server feeds float 0-255 (scaling "raw"): rounding to uint8 moves a pixel by <= 0.5.
        return np.clip(np.rint(out.numpy()[0]), 0, 255).astype(np.uint8)


def load_inputs(inputs: Sequence[Path], options: LoadOptions) -> Loaded:
    """Load every input; unusable parts become problems, the rest is returned.

    Raises:
        DataError: no input gave a single frame.
    """
    items: list[ImageItem] = []
    rows: list[Annotation] = []
    problems: list[Problem] = []
    for path in inputs:
        if path.is_dir():
            found, bad = scan_folder(path)
            items += found
        elif is_annotation_file(path):
            found_rows, bad = read_annotations(path, options.videos_dir)
            rows += found_rows
        elif not path.exists():
            bad = [Problem(str(path), "input not found: skipped")]
        else:
            bad = [Problem(str(path), "not a label folder or a .csv/.jsonl segments file: skipped")]
        problems += bad
    rows, across_files = drop_overlaps(rows)
    problems += across_files
    resize = ServerResize(options.height, options.width)
    by_video: dict[Path, list[Annotation]] = defaultdict(list)
    for row in rows:
        by_video[row.video.resolve()].append(row)
    parts: list[FrameSet] = []
    repeats = 0
    with ThreadPoolExecutor(options.workers) as pool:
        image_results = pool.map(lambda item: _load_image(item, resize), items)
        video_results = pool.map(
            lambda job: sample_video(job[0], job[1], options.sampling, resize), by_video.items()
        )
        kept_images: list[tuple[ImageItem, np.ndarray]] = []
        for item, image in zip(items, image_results, strict=True):
            if image is None:
                problems.append(Problem(str(item.path), "cannot decode image: skipped"))
            else:
                kept_images.append((item, image))
        if kept_images:
            parts.append(
                FrameSet(
                    np.stack([image for _, image in kept_images]),
                    tuple(item.label for item, _ in kept_images),
                    tuple(item.group for item, _ in kept_images),
                    tuple(str(item.path) for item, _ in kept_images),
                )
            )
        for video, sample in zip(by_video, video_results, strict=True):
            problems += sample.problems
            repeats += sample.repeats
            if sample.frames:
                parts.append(
                    FrameSet(
                        np.stack([f.image for f in sample.frames]),
                        tuple(f.row.label for f in sample.frames),
                        tuple(options.sampling.group(video, f.time_s) for f in sample.frames),
                        tuple(f"{f.row.video}@{f.time_s:.2f}s" for f in sample.frames),
                    )
                )
    frames = FrameSet.concat(parts, options.height, options.width)
    if not len(frames):
        raise DataError(
            "the inputs gave no frames" + "".join(f"\n  {problem}" for problem in problems)
        )
    return Loaded(frames, tuple(problems), repeats)


def _load_image(item: ImageItem, resize: ServerResize) -> np.ndarray | None:
    # imdecode from bytes rather than imread: paths with non-ASCII characters work everywhere.
    try:
        data = np.fromfile(item.path, np.uint8)
    except OSError:
        return None
    image: Any = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0:
        return None
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    return resize(image)


def drop_small_classes(frames: FrameSet, min_frames: int) -> tuple[FrameSet, list[Problem]]:
    """Leave out labels with fewer than ``min_frames`` frames (reported, not fatal)."""
    counts = frames.counts()
    small = {label for label, count in counts.items() if count < min_frames}
    problems = [
        Problem(
            f"label {label!r}",
            f"only {counts[label]} frame(s), fewer than --min-per-class {min_frames}: label skipped",
        )
        for label in sorted(small)
    ]
    keep = [i for i, label in enumerate(frames.labels) if label not in small]
    return frames.subset(keep), problems
