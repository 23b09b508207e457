"""The temporal cue: a frame that matches its stream's previous frame is not snow.

One frame cannot always tell fine texture (gravel, turf, a busy illustration) from snow, but two
frames can: snow is redrawn every frame, so its fine detail never repeats, while a picture's
detail stays where it was unless the camera moves. Per stream the server keeps a small copy of
the last frame's model input (``signature``, 9 KB at 96×96); when the model's best label for a
frame is one a still picture cannot have (``static`` for the embedded model), the share of the
frame's detail that repeated since the previous frame (``stillness``) is measured, and at
``MIN_STILLNESS`` or above that label is taken out of the frame's probabilities (the others are
renormalised) before they enter the window.

Only the one direction: a frame is never *made* snow because it changed (motion and cuts change
every pixel too). A frame of snow frozen by a decoder or a stream that repeats one still image of
snow is called by the other labels: it is no longer a live tuner's snow. Single-image calls (the
old API, ``classify`` of one image) have no previous frame and get the model's own answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The signature is the model input's green channel (the luma's largest part) sampled to about
# this many pixels a side: fine enough for single-pixel detail at the model's scale.
SIGNATURE_SIDE = 48
# A pixel's detail (a 4-neighbour Laplacian of the signature) below this level is flat picture,
# not counted either way (0-255 input scale).
DETAIL_FLOOR = 3.0
# A detailed pixel repeated when its detail changed by less than this share of its level.
REPEAT_TOLERANCE = 0.35
# Too little detail to judge (a nearly flat frame): no decision.
MIN_DETAILED_SHARE = 0.05
# The share of detailed pixels that must repeat for the frame to count as still. Snow, even under
# a receiver's menu, repeats 10-45 % (its independent draws repeat by chance, the graphics do);
# a still picture, even re-compressed, repeats over 90 % (MODEL_CARD.md, "Temporal cue").
MIN_STILLNESS = 0.75


def signature(image: np.ndarray) -> np.ndarray:
    """A small float32 copy of one model input (H×W×C or H×W) kept until the stream's next frame."""
    plane = image[..., min(1, image.shape[-1] - 1)] if image.ndim == 3 else image
    step = max(1, min(plane.shape[:2]) // SIGNATURE_SIDE)
    return np.array(plane[::step, ::step], dtype=np.float32)


def _detail(plane: np.ndarray) -> np.ndarray:
    return (
        4 * plane[1:-1, 1:-1]
        - plane[:-2, 1:-1]
        - plane[2:, 1:-1]
        - plane[1:-1, :-2]
        - plane[1:-1, 2:]
    )


def stillness(previous: np.ndarray, current: np.ndarray) -> float | None:
    """The share of ``current``'s detailed pixels whose detail repeats ``previous``'s, or
    ``None`` when the two cannot be compared (other sizes) or there is too little detail."""
    if previous.shape != current.shape or min(current.shape) < 3:
        return None
    a, b = _detail(previous), _detail(current)
    level = 0.5 * (np.abs(a) + np.abs(b))
    detailed = level > DETAIL_FLOOR
    count = int(np.count_nonzero(detailed))
    if count < MIN_DETAILED_SHARE * detailed.size:
        return None
    repeated = np.abs(a - b) < REPEAT_TOLERANCE * level
    return int(np.count_nonzero(repeated & detailed)) / count


def label_indices(labels: Sequence[str], still_labels: Sequence[str]) -> tuple[int, ...]:
    """The positions of ``still_labels`` among the model's ``labels`` (absent ones ignored)."""
    wanted = set(still_labels)
    return tuple(i for i, label in enumerate(labels) if label in wanted)


def veto_still(
    probs: np.ndarray, indices: Sequence[int], previous: np.ndarray | None, current: np.ndarray
) -> np.ndarray | None:
    """``probs`` without the labels at ``indices`` (renormalised) when its best label is one of
    them and ``current`` repeats ``previous``; ``None`` when the model's answer stands."""
    if previous is None or not indices or int(probs.argmax()) not in indices:
        return None
    still = stillness(previous, current)
    if still is None or still < MIN_STILLNESS:
        return None
    kept = np.array(probs, dtype=np.float32)
    kept[list(indices)] = 0.0
    total = float(kept.sum())
    if total <= 0.0:  # every other label at exactly zero: nothing better to say
        return None
    return kept / total
