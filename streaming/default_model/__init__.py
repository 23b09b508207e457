"""The embedded "broadcast signal monitor" model served when no user model is given.

Only paths live here, so importing this package never pulls in TensorFlow. The model takes
``(96, 96, 3)`` float32 RGB frames in 0-255 and returns softmax probabilities over the labels
in ``labels.txt`` (one per line, in output order). See ``MODEL_CARD.md``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LABELS_PATH", "MODEL_PATH"]

_HERE = Path(__file__).resolve().parent

MODEL_PATH: Path = _HERE / "broadcast_monitor.keras"
LABELS_PATH: Path = _HERE / "labels.txt"
