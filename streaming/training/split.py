"""A validation split that does not leak: every group lies wholly on one side."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import numpy as np

from streaming.training.training_errors import DataError
from streaming.training.training_values import FrameSet

logger = logging.getLogger(__name__)


def split_by_group(frames: FrameSet, fraction: float, seed: int) -> tuple[FrameSet, FrameSet]:
    """Move whole groups to validation until each label has about ``fraction`` of its frames there.

    Groups are visited in a seeded random order; a group goes to validation while one of its
    labels is short of its share, unless that would leave a label with no training frame.

    Raises:
        DataError: some label cannot be validated without leaking (it lives in one group).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(frames.groups):
        members[group].append(index)
    group_counts = {
        group: Counter(frames.labels[i] for i in indices) for group, indices in members.items()
    }
    totals = frames.counts()
    target = {label: fraction * count for label, count in totals.items()}
    in_val: Counter[str] = Counter()
    val_groups: list[str] = []
    order = np.random.default_rng(seed).permutation(sorted(members))
    for group in (str(g) for g in order):
        counts = group_counts[group]
        wanted = any(in_val[label] < target[label] for label in counts)
        keeps_training = all(totals[label] - in_val[label] - n > 0 for label, n in counts.items())
        if wanted and keeps_training:
            val_groups.append(group)
            in_val.update(counts)
    missing = sorted(label for label in totals if in_val[label] == 0)
    if missing:
        raise DataError(
            f"cannot hold out validation frames of {', '.join(map(repr, missing))} without "
            "leaking: all their frames come from one video/time block or folder of frames. "
            "Add another source of each, or pass --val with separate data."
        )
    chosen = set(val_groups)
    val_index = [i for i, group in enumerate(frames.groups) if group in chosen]
    train_index = [i for i, group in enumerate(frames.groups) if group not in chosen]
    return frames.subset(train_index), frames.subset(val_index)
