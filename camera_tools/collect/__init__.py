"""Collecting the frames worth a person's look (``watch --collect DIR``), for labelling later.

* :mod:`~camera_tools.collect.collect_options`: :class:`CollectOptions`, the folder and bounds.
* :mod:`~camera_tools.collect.frame_selection`: the rules (why a frame is kept) and the rate cap.
* :mod:`~camera_tools.collect.image_hash`: a cheap fingerprint to skip near-duplicate frames.
* :mod:`~camera_tools.collect.collect_folder`: the folder's format (images, ``collected.jsonl``,
  ``labels.txt``) and its size cap.
* :mod:`~camera_tools.collect.collector`: :class:`Collector`, the rules and a writer thread.
"""

from __future__ import annotations

from camera_tools.collect.collect_folder import (
    FRAMES_DIR,
    JSONL_NAME,
    LABELS_NAME,
    CollectFolder,
    record,
)
from camera_tools.collect.collect_options import CollectOptions
from camera_tools.collect.collector import CollectCounts, Collector, FetchLabels, scale_down
from camera_tools.collect.frame_selection import (
    AnsweredFrame,
    Candidate,
    RateCap,
    Reason,
    SourceSelector,
    own_reasons,
)
from camera_tools.collect.image_hash import Fingerprint, RecentFingerprints, fingerprint

__all__ = [
    "FRAMES_DIR",
    "JSONL_NAME",
    "LABELS_NAME",
    "AnsweredFrame",
    "Candidate",
    "CollectCounts",
    "CollectFolder",
    "CollectOptions",
    "Collector",
    "FetchLabels",
    "Fingerprint",
    "RateCap",
    "Reason",
    "RecentFingerprints",
    "SourceSelector",
    "fingerprint",
    "own_reasons",
    "record",
    "scale_down",
]
