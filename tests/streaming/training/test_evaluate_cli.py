"""``stream-classify evaluate``: scores printed, confusion matrix and mistakes saved as PNG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_evaluate_prints_scores_and_writes_both_pictures(
    tmp_path: Path,
    cli: Callable[..., int],
    colour_folders: Callable[..., Path],
    tiny_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given the tiny colour model and colour folders, one red image painted blue (a sure mistake)
    data = colour_folders(tmp_path / "data", per_label=4)
    cv2.imwrite(str(data / "red" / "really_blue.png"), np.full((48, 64, 3), (230, 0, 0), np.uint8))
    out = tmp_path / "eval"

    # when it is evaluated
    code = cli(
        "evaluate", tiny_model.model_path, data, "--labels", tiny_model.labels_path, "--out", out
    )

    # then the report and both pictures are there
    assert code == 0
    printed = capsys.readouterr().out
    assert "frames 13" in printed and "precision  recall" in printed
    assert "confusion (rows = truth, columns = predicted)" in printed
    red_row = next(
        line for line in printed.splitlines() if line.startswith("red ") and "0." not in line
    )
    assert int(red_row.split()[3]) >= 1  # the painted image counted as red predicted blue
    confusion = cv2.imread(str(out / "confusion.png"))
    mistakes = cv2.imread(str(out / "mistakes.png"))
    assert confusion is not None and confusion.shape[0] > 100
    assert mistakes is not None and mistakes.shape[1] == 6 * 160
    # the worst mistake's tile shows the blue picture (BGR: blue channel high)
    assert mistakes[40:120, 40:120, 0].mean() > 150 > mistakes[40:120, 40:120, 2].mean()


def test_evaluate_missing_model_is_a_clear_error(
    tmp_path: Path, cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    assert cli("evaluate", tmp_path / "nope.keras", tmp_path / "data") == 2
    assert "error: model not found" in capsys.readouterr().err
