"""Pictures of an evaluation: the confusion matrix (matplotlib) and a contact sheet of mistakes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from streaming.training.evaluation import Evaluation
from streaming.training.training_errors import MissingExtraError


def save_confusion_png(evaluation: Evaluation, path: Path) -> Path:
    """Row-normalised colours with the counts written in each cell."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingExtraError(
            "the confusion-matrix picture needs matplotlib: "
            "pip install 'stream-classification[train]'"
        ) from exc
    matrix = evaluation.confusion
    share = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    n = len(evaluation.labels)
    side = 2.5 + 0.6 * n
    figure, axes = plt.subplots(figsize=(side + 1, side))
    try:
        shown = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        axes.set_xticks(range(n), evaluation.labels, rotation=45, ha="right")
        axes.set_yticks(range(n), evaluation.labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("truth")
        axes.set_title(f"accuracy {evaluation.accuracy:.1%} on {evaluation.frames} frames")
        for i in range(n):
            for j in range(n):
                axes.text(
                    j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black",
                )  # fmt: skip
        figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def save_contact_sheet(
    evaluation: Evaluation, images: np.ndarray, path: Path, limit: int = 24, columns: int = 6
) -> Path:
    """The most confident mistakes as tiles captioned ``truth -> predicted (confidence)``.

    With no mistakes the sheet says so, so the file always exists for the model card.
    """
    tile, caption = 160, 34
    mistakes = evaluation.mistakes[:limit]
    rows = max(1, -(-len(mistakes) // columns))
    sheet = np.full((rows * (tile + caption), columns * tile, 3), 255, np.uint8)
    if not mistakes:
        cv2.putText(sheet, "no mistakes", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    for k, mistake in enumerate(mistakes):
        top, left = (k // columns) * (tile + caption), (k % columns) * tile
        picture = cv2.cvtColor(images[mistake.index], cv2.COLOR_RGB2BGR)
        scale = tile / max(picture.shape[:2])
        picture = cv2.resize(
            picture,
            (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale))),
            interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA,
        )
        sheet[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
        for line, text in enumerate(
            (
                f"{mistake.true_label} -> {mistake.predicted}",
                f"{mistake.confidence:.2f} {Path(mistake.origin).name}",
            )
        ):
            cv2.putText(
                sheet, text[:26], (left + 3, top + tile + 13 + 15 * line),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 160) if line == 0 else (60, 60, 60), 1,
                cv2.LINE_AA,
            )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"cannot write {path}")
    return path
