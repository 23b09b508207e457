"""Labelled folders: ``DATA/<label>/...`` images, nested folders allowed."""

from __future__ import annotations

from pathlib import Path

from camera_tools.sources import IMAGE_EXTENSIONS
from streaming.training.training_values import ImageItem, Problem


def scan_folder(root: Path) -> tuple[list[ImageItem], list[Problem]]:
    """List the images of every label folder under ``root``.

    Images directly in a label folder are independent examples. Images in a sub-folder
    (``DATA/cat/clip7/0001.jpg``) form one group: frames dumped from one video stay on one
    side of the validation split, so near-identical neighbours cannot leak into it.
    """
    items: list[ImageItem] = []
    problems: list[Problem] = []
    for entry in sorted(root.iterdir()):
        if entry.is_file():
            if entry.suffix.lower() in IMAGE_EXTENSIONS:
                problems.append(Problem(str(entry), "image is not inside a label folder: skipped"))
            continue
        label = entry.name
        found = [
            path
            for path in sorted(entry.rglob("*"))
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if not found:
            problems.append(Problem(str(entry), f"no images: label {label!r} skipped"))
            continue
        for path in found:
            relative = path.relative_to(entry)
            group = f"{root}/{label}/{relative.parts[0]}" if len(relative.parts) > 1 else str(path)
            items.append(ImageItem(path, label, group))
    return items, problems
