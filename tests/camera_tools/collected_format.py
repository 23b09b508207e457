"""The line format of ``collected.jsonl`` (what ``stream-classify label`` reads), for the tests of
the folder and of ``watch --collect``: each field and its JSON type."""

from __future__ import annotations

FIELDS = {
    "id": str,
    "image": str,
    "source": str,
    "frame": int,
    "time": float,
    "wall_time": str,
    "label": str,
    "score": float,
    "top": list,
    "window_label": str,
    "window_score": float,
    "model_version": str,
    "reasons": list,
}
