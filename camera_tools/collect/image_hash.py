"""A cheap fingerprint of a frame, to skip near-duplicates: :func:`fingerprint`.

The fingerprint is a 64-bit difference hash (dHash: is each pixel of a 9x8 grey thumbnail
brighter than its left neighbour?) plus the thumbnail's mean colour. The hash alone ignores
brightness and colour, so every flat frame (black, a solid colour) would hash the same: the mean
colour tells a black frame from a blue one. Computed on a nearest-neighbour 36x32 sample of
the frame first, so its cost does not grow with the frame's size.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import cv2
import numpy as np

_SAMPLE_SIZE = (36, 32)  # (width, height): 4x4 samples averaged into each thumbnail pixel
_THUMB_SIZE = (9, 8)  # 9 columns give 8 left-right differences per row: 64 bits
MAX_COLOUR_DIFFERENCE = 24.0  # mean colours further apart (per channel, 0-255) are different


@dataclass(frozen=True)
class Fingerprint:
    """What two frames are compared by.

    Attributes:
        bits: The 64-bit difference hash.
        colour: Mean (B, G, R) of the thumbnail.
    """

    bits: int
    colour: tuple[float, float, float]

    def distance(self, other: Fingerprint) -> int:
        """Bits in which the two hashes differ (0-64)."""
        return (self.bits ^ other.bits).bit_count()

    def near(self, other: Fingerprint, max_bits: int) -> bool:
        """Whether ``other`` looks like the same picture: close hashes and close colours.

        Example:
            >>> black = Fingerprint(0, (0.0, 0.0, 0.0))
            >>> black.near(Fingerprint(1, (4.0, 4.0, 4.0)), max_bits=6)
            True
            >>> black.near(Fingerprint(0, (200.0, 0.0, 0.0)), max_bits=6)
            False
        """
        close = all(
            abs(a - b) <= MAX_COLOUR_DIFFERENCE
            for a, b in zip(self.colour, other.colour, strict=True)
        )
        return close and self.distance(other) <= max_bits


def fingerprint(image: np.ndarray) -> Fingerprint:
    """The fingerprint of a BGR (or grey) uint8 frame of any size."""
    sample = cv2.resize(image, _SAMPLE_SIZE, interpolation=cv2.INTER_NEAREST)
    thumb = cv2.resize(sample, _THUMB_SIZE, interpolation=cv2.INTER_AREA)
    grey = thumb if thumb.ndim == 2 else cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY)
    grey = grey.astype(np.int16)
    brighter = (grey[:, 1:] > grey[:, :-1]).ravel()
    bits = int.from_bytes(np.packbits(brighter).tobytes(), "big")
    mean = cv2.mean(thumb)
    colour = (mean[0], mean[0], mean[0]) if thumb.ndim == 2 else (mean[0], mean[1], mean[2])
    return Fingerprint(bits, colour)


class RecentFingerprints:
    """The fingerprints of a source's last ``size`` kept frames.

    Example:
        >>> recent = RecentFingerprints(size=2, max_bits=6)
        >>> recent.add(Fingerprint(0, (0.0, 0.0, 0.0)))
        >>> recent.has_near(Fingerprint(3, (1.0, 1.0, 1.0)))
        True
    """

    def __init__(self, size: int, max_bits: int) -> None:
        self._kept: collections.deque[Fingerprint] = collections.deque(maxlen=size)
        self._max_bits = max_bits

    def has_near(self, candidate: Fingerprint) -> bool:
        return any(candidate.near(kept, self._max_bits) for kept in self._kept)

    def add(self, kept: Fingerprint) -> None:
        self._kept.append(kept)
