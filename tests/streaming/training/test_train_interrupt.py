"""Ctrl+C during ``stream-classify train`` keeps the best model so far, assessed and documented."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.timeout(330)
def test_ctrl_c_after_an_epoch_keeps_the_best_model(
    tmp_path: Path, colour_folders: Callable[..., Path]
) -> None:
    # given a long training run in its own process
    data = colour_folders(tmp_path / "data", per_label=9)
    out = tmp_path / "model"
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", "train", str(data), "--out", str(out),
         "--epochs", "500", "--patience", "500", "--input-size", "32", "--batch-size", "8",
         "--min-per-class", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        # when Ctrl+C arrives after the second epoch line
        assert process.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stderr, selectors.EVENT_READ)
        deadline, seen = time.monotonic() + 150, ""
        while "epoch 2/500" not in seen and time.monotonic() < deadline:
            if selector.select(timeout=1):
                line = process.stderr.readline()
                if not line:
                    break
                seen += line
        assert "epoch 2/500" in seen, seen
        process.send_signal(signal.SIGINT)
        # the best model is saved, evaluated and plotted after the signal: minutes on a loaded machine
        out_text, err_text = process.communicate(timeout=150)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)

    # then it stops with 130 and leaves a served-ready model, its labels and a card
    assert process.returncode == 130, err_text
    assert "interrupted: keeping the best model so far" in err_text
    assert (out / "model.keras").is_file() and (out / "labels.txt").is_file()
    card = (out / "MODEL_CARD.md").read_text()
    assert "(interrupted)" in card and "## Validation results" in card
    assert "serve: stream-classify serve -la" in out_text
