"""A folder as `watch --collect DIR` writes it, made by the tests: JPEGs and collected.jsonl lines."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MODEL_LABELS = ("program", "black", "color_bars")


@dataclass(frozen=True)
class Collected:
    """What was written: the folder and each entry, in the order of collected.jsonl."""

    folder: Path
    entries: tuple[dict[str, Any], ...]

    def ids(self) -> list[str]:
        return [entry["id"] for entry in self.entries]

    def by_score(self) -> list[str]:
        """Ids lowest score first: the page's default order (scores are all different)."""
        return [e["id"] for e in sorted(self.entries, key=lambda e: (e["score"], e["id"]))]


BAR_COLOURS = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192),
               (0, 0, 192), (192, 0, 0)]  # fmt: skip


def frame_image(index: int, width: int = 320, height: int = 180) -> np.ndarray:
    """A broadcast-like frame (a scene, near-black with a logo, colour bars, snow) unique to
    ``index``: a bar along the bottom as long as the index says."""
    rng = np.random.default_rng(index)
    kind = index % 4
    if kind == 0:  # a scene: a gradient with a moving block
        ramp = np.linspace(40, 210, width, dtype=np.uint8)
        image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
        image[:, :, 0] = (image[:, :, 0].astype(int) + index * 23) % 256
        x = (index * 31) % (width - 80)
        image[50:130, x : x + 80] = (40, 90, 200)
    elif kind == 1:  # near black, a channel logo in a corner
        image = np.full((height, width, 3), 8, np.uint8)
        image[12:30, width - 50 : width - 14] = 150
    elif kind == 2:  # colour bars
        image = np.zeros((height, width, 3), np.uint8)
        edges = np.linspace(0, width, len(BAR_COLOURS) + 1).astype(int)
        for colour, x0, x1 in zip(BAR_COLOURS, edges, edges[1:], strict=False):
            image[:, x0:x1] = colour
    else:  # snow
        image = rng.integers(0, 256, (height, width, 1), dtype=np.uint8).repeat(3, axis=2)
    image[height - 6 :, : 8 + (index * 13) % (width - 8)] = 255
    return image


def entry(index: int, *, source: str = "cam1", score: float | None = None) -> dict[str, Any]:
    frame_id = f"{re.sub(r'[^A-Za-z0-9]+', '_', source).strip('_')}-{index:06d}"
    label = MODEL_LABELS[index % len(MODEL_LABELS)]
    value = score if score is not None else round(0.31 + (index * 37 % 60) / 100, 4)
    return {
        "id": frame_id,
        "image": f"frames/{frame_id}.jpg",
        "source": source,
        "frame": index * 5,
        "time": index * 0.2,
        "wall_time": f"2026-12-04T10:00:{index:02d}.000000Z",
        "label": label,
        "score": value,
        "top": [[label, value], [MODEL_LABELS[(index + 1) % 3], round(1 - value, 4)]],
        "window_label": label,
        "window_score": value,
        "model_version": "1",
        "reasons": ["low_confidence"] if value < 0.6 else ["sample"],
    }


def write_collected(
    folder: Path,
    count: int,
    *,
    start: int = 0,
    sources: Sequence[str] = ("cam1",),
    labels: Sequence[str] | None = MODEL_LABELS,
) -> Collected:
    """Append ``count`` frames (indices from ``start``) to ``folder``, as the collector does."""
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    if labels is not None:
        (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    entries = []
    with (folder / "collected.jsonl").open("a") as log:
        for index in range(start, start + count):
            data = entry(index, source=sources[index % len(sources)])
            ok = cv2.imwrite(str(folder / data["image"]), frame_image(index))
            assert ok
            log.write(json.dumps(data) + "\n")
            entries.append(data)
    return Collected(folder, tuple(entries))
