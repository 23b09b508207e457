"""The temporal cue: a stream tells snow from a picture where one frame cannot.

One frame cannot always tell fine texture (gravel, turf, a busy illustration) from snow, but two
frames can: snow is redrawn every frame, so its fine detail never repeats and its change from
one frame to the next is noise, while a picture's detail stays where it was, or moves with the
camera. Per stream the server keeps a small copy of the last frame's model input
(``signature``, 9 KB at 96×96) and, for the labels a still picture cannot have (``static`` for
the embedded model), compares the frame with it:

* **veto** - the model's best label is one of them, yet the frame is a picture: its detail
  repeated (``stillness`` at ``MIN_STILLNESS`` or above), or its whole change is the previous
  frame moved by a fraction of a pixel (a shaking camera: ``shift_explained`` at
  ``MIN_SHIFT_EXPLAINED`` or above, with the coarse picture unchanged). Those labels are taken
  out of the frame's probabilities and the rest renormalised.
* **boost** - the model's best label is another, but one of them would be best with its odds
  multiplied by ``BOOST_ODDS``, and the frame changed like snow: almost no detail repeated, no
  camera movement explains the change, the coarse picture stayed. Their odds are multiplied
  (faint snow the model half-sees, where a single 96×96 frame has averaged most of the grain
  away).

Both happen before the frame enters the window. A cut changes the coarse picture: neither a
shift nor snow is read into it. A frame of snow frozen by a decoder repeats and is vetoed (it
is no longer a live tuner's snow). Single-image calls (the old API, ``classify`` of one image)
and a stream's first frame have no previous frame and get the model's own answer.
"""

from __future__ import annotations

import enum
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
# The share of the frame's change that a sub-pixel shift of the previous frame must explain for
# the frame to count as a moved picture. Snow's change is independent of the picture's
# gradients: by chance a shift explains ~0.1 % of it (2 of ~2,100 degrees of freedom), at most
# 1.5 % even for heavily JPEG-blocked noise; a shaken camera over texture 1-49 %, mostly over
# 3 % (MODEL_CARD.md, "Temporal cue").
MIN_SHIFT_EXPLAINED = 0.03
# The coarse picture (8×8-pixel block means of the signature) must stay within this RMS change
# (0-255) for a shift to count or snow to be boosted: a shake moves it by 0.2-2.7, faint snow's
# redraw by about 1, a cut by tens. (Strong snow moves it too, 8 in the sets, ~13 for
# full-range noise: the model needs no cue there.)
MAX_COARSE_CHANGE = 4.0
# Snow-like change: at most this share of detail repeated, and a shift explains at most this much.
MAX_SNOW_STILLNESS = 0.25
MAX_SNOW_SHIFT_EXPLAINED = 0.01
# How much a snow-like change multiplies the cue labels' odds.
BOOST_ODDS = 2.0
_COARSE_BLOCK = 8


class CueEffect(enum.Enum):
    """What the temporal cue did to a frame's probabilities."""

    VETO = "veto"
    BOOST = "boost"


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


def shift_explained(previous: np.ndarray, current: np.ndarray) -> float | None:
    """The share of the change from ``previous`` to ``current`` that one small global shift
    (plus a brightness offset) explains: a least-squares fit of the difference on the two
    frames' mean gradients (a first-order Lucas-Kanade step). ``None`` when nothing changed or
    the two cannot be compared."""
    if previous.shape != current.shape or min(current.shape) < 3:
        return None
    # Twice the mean frame's central differences: the factor does not change the explained share.
    both = previous + current
    gx = (both[1:-1, 2:] - both[1:-1, :-2]).ravel()
    gy = (both[2:, 1:-1] - both[:-2, 1:-1]).ravel()
    diff = (current[1:-1, 1:-1] - previous[1:-1, 1:-1]).ravel()
    n = float(diff.size)
    sd, sx, sy = float(diff.sum()), float(gx.sum()), float(gy.sum())
    energy = float(np.dot(diff, diff)) - sd * sd / n  # the offset is fitted first: centre on it
    if energy <= 1e-6:
        return None
    # The 2×2 normal equations of the centred fit, solved in closed form (a few µs, not a
    # general solver's tens).
    xx = float(np.dot(gx, gx)) - sx * sx / n
    yy = float(np.dot(gy, gy)) - sy * sy / n
    xy = float(np.dot(gx, gy)) - sx * sy / n
    xd = float(np.dot(gx, diff)) - sx * sd / n
    yd = float(np.dot(gy, diff)) - sy * sd / n
    det = xx * yy - xy * xy
    if det <= 1e-9 * max(xx * yy, 1e-30):  # flat frames, or gradients along one line only
        return None
    a = (yy * xd - xy * yd) / det
    b = (xx * yd - xy * xd) / det
    return min(1.0, max(0.0, (a * xd + b * yd) / energy))


def coarse_change(previous: np.ndarray, current: np.ndarray) -> float | None:
    """The RMS change of the two frames' 8×8-pixel block means (0-255 scale)."""
    if previous.shape != current.shape:
        return None
    k = _COARSE_BLOCK
    h, w = (current.shape[0] // k) * k, (current.shape[1] // k) * k
    if not h or not w:
        return None
    diff = (current[:h, :w] - previous[:h, :w]).reshape(h // k, k, w // k, k).mean(axis=(1, 3))
    return float(np.sqrt(np.mean(diff * diff)))


def label_indices(labels: Sequence[str], still_labels: Sequence[str]) -> tuple[int, ...]:
    """The positions of ``still_labels`` among the model's ``labels`` (absent ones ignored)."""
    wanted = set(still_labels)
    return tuple(i for i, label in enumerate(labels) if label in wanted)


def apply_cue(
    probs: np.ndarray, indices: Sequence[int], previous: np.ndarray | None, current: np.ndarray
) -> tuple[np.ndarray, CueEffect] | None:
    """``probs`` after the temporal cue (the labels at ``indices`` vetoed or boosted, see the
    module's text) and what it did, or ``None`` when the model's answer stands. Either effect
    changes the frame's best label."""
    if previous is None or not indices or previous.shape != current.shape:
        return None
    best = int(probs.argmax())
    if best in indices:
        if not _picture(previous, current):
            return None
        kept = np.array(probs, dtype=np.float32)
        kept[list(indices)] = 0.0
        total = float(kept.sum())
        if total <= 0.0:  # every other label at exactly zero: nothing better to say
            return None
        return kept / total, CueEffect.VETO
    if BOOST_ODDS * max(float(probs[i]) for i in indices) <= float(probs[best]):
        return None  # raised odds would not change the answer: the comparison is not worth it
    if not _snow_like(previous, current):
        return None
    boosted = np.array(probs, dtype=np.float32)
    boosted[list(indices)] *= BOOST_ODDS
    return boosted / float(boosted.sum()), CueEffect.BOOST


def _picture(previous: np.ndarray, current: np.ndarray) -> bool:
    """The frame repeats the previous one, or shows it moved by a fraction of a pixel."""
    still = stillness(previous, current)
    if still is not None and still >= MIN_STILLNESS:
        return True
    moved = shift_explained(previous, current)
    return moved is not None and moved >= MIN_SHIFT_EXPLAINED and _same_scene(previous, current)


def _snow_like(previous: np.ndarray, current: np.ndarray) -> bool:
    """Almost no detail repeated and no shift explains the change: redrawn noise."""
    still = stillness(previous, current)
    if still is None or still > MAX_SNOW_STILLNESS:
        return False
    moved = shift_explained(previous, current)
    return (
        moved is not None and moved <= MAX_SNOW_SHIFT_EXPLAINED and _same_scene(previous, current)
    )


def _same_scene(previous: np.ndarray, current: np.ndarray) -> bool:
    """No cut or fade: the coarse picture stayed (a shift's fit means nothing across a cut)."""
    coarse = coarse_change(previous, current)
    return coarse is not None and coarse <= MAX_COARSE_CHANGE
