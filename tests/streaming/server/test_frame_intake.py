"""Decode on arrival: frames become model-sized uint8 images before any float conversion."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from streaming.server.frame_intake import STARVED_HOLD_S, FrameIntake
from streaming.server.server_errors import FrameRejected
from streaming.server.server_values import Encoding, FrameData, ModelDescription


@pytest.fixture
def intake() -> Iterator[Callable[..., FrameIntake]]:
    made: list[FrameIntake] = []

    def make(width: int = 32, height: int = 24, channels: int = 3) -> FrameIntake:
        description = ModelDescription(("a", "b"), width, height, channels, "m", "cpu")
        made.append(
            FrameIntake(description, max_frame_side=8192, max_frame_pixels=8192 * 8192, workers=2)
        )
        return made[-1]

    yield make
    for each in made:
        each.shutdown()


def raw(image: np.ndarray, encoding: Encoding = Encoding.RAW_RGB) -> FrameData:
    height, width, channels = image.shape
    return FrameData(7, encoding, width, height, channels, image.tobytes())


def encoded(image: np.ndarray, encoding: Encoding) -> FrameData:
    ok, data = cv2.imencode(".jpg" if encoding == Encoding.JPEG else ".png", image[:, :, ::-1])
    assert ok
    return FrameData(7, encoding, 0, 0, 0, data.tobytes())


def test_a_large_raw_frame_is_resized_as_uint8_to_the_model_input(
    intake: Callable[..., FrameIntake],
) -> None:
    # given: a 3000x2000 frame, red on the left half and blue on the right
    image = np.zeros((2000, 3000, 3), np.uint8)
    image[:, :1500] = (255, 0, 0)
    image[:, 1500:] = (0, 0, 255)
    # when
    out = intake().decode_now(raw(image))
    # then: model-sized uint8, the picture kept
    assert isinstance(out, np.ndarray)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert tuple(out[12, 2]) == (255, 0, 0) and tuple(out[12, 29]) == (0, 0, 255)


@pytest.mark.parametrize("encoding", [Encoding.JPEG, Encoding.PNG])
@pytest.mark.parametrize("size", [(64, 48), (32, 24), (16, 12)])
def test_encoded_frames_of_any_size_arrive_model_sized(
    encoding: Encoding,
    size: tuple[int, int],
    intake: Callable[..., FrameIntake],
) -> None:
    image = np.full((size[1], size[0], 3), (10, 200, 30), np.uint8)
    out = asyncio.run(intake().decode(encoded(image, encoding)))
    assert isinstance(out, np.ndarray)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - (10, 200, 30)).max() <= 8  # JPEG is lossy


def test_a_grey_model_gets_one_channel(intake: Callable[..., FrameIntake]) -> None:
    image = np.full((100, 100, 3), 128, np.uint8)
    out = intake(channels=1).decode_now(raw(image))
    assert isinstance(out, np.ndarray) and out.shape == (24, 32, 1)


@pytest.mark.parametrize(
    ("frame", "needs"),
    [
        pytest.param(raw(np.zeros((24, 32, 3), np.uint8)), False, id="raw-at-model-size-is-a-view"),
        pytest.param(
            raw(np.zeros((24, 32, 3), np.uint8), Encoding.RAW_BGR), False, id="raw-bgr-at-size"
        ),
        pytest.param(raw(np.zeros((48, 64, 3), np.uint8)), True, id="raw-needs-resizing"),
        pytest.param(FrameData(0, Encoding.JPEG, 32, 24, 3, b"x"), True, id="jpeg-always"),
    ],
)
def test_only_frames_that_need_work_go_to_the_pool(
    frame: FrameData, needs: bool, intake: Callable[..., FrameIntake]
) -> None:
    assert intake().needs_decoding(frame) is needs


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(FrameData(3, Encoding.JPEG, 0, 0, 0, b"nope"), "cannot decode JPEG", id="bad"),
        pytest.param(FrameData(3, Encoding.RAW_RGB, 4, 4, 3, b"\0"), "data is 1 bytes", id="short"),
        pytest.param(FrameData(3, 9, 4, 4, 3, b"\0"), "unsupported encoding 9", id="encoding"),
    ],
)
def test_undecodable_frames_come_back_as_frame_errors(
    frame: FrameData, message: str, intake: Callable[..., FrameIntake]
) -> None:
    out = intake().decode_now(frame)
    assert isinstance(out, FrameRejected)
    assert message in str(out)


@pytest.mark.parametrize(
    ("frame_size", "before", "after"),
    [
        pytest.param((32, 24), False, True, id="at-the-old-size-now-decoded"),
        pytest.param((48, 40), True, False, id="at-the-new-size-now-a-reshape"),
        pytest.param((64, 64), True, True, id="other-size-always-decoded"),
    ],
)
def test_retarget_sizes_frames_for_the_new_model_version(
    intake: Callable[..., FrameIntake], frame_size: tuple[int, int], before: bool, after: bool
) -> None:
    # given: an intake for a 32x24 model and a RAW frame
    frames = intake()
    width, height = frame_size
    frame = raw(np.full((height, width, 3), 90, np.uint8))
    assert frames.needs_decoding(frame) is before
    # when: a 48x40 version is swapped in
    frames.retarget(ModelDescription(("a", "b", "c"), 48, 40, 3, "v2", "cpu"))
    # then: frames are sized for it
    assert frames.needs_decoding(frame) is after
    out = frames.decode_now(frame)
    assert isinstance(out, np.ndarray) and out.shape == (40, 48, 3)


def _policies_of_decoders(other_than: set[threading.Thread]) -> dict[str, set[int]]:
    """The scheduling policies (field 41 of /proc/self/task/TID/stat) of the decoding threads
    started since ``other_than`` was taken (earlier tests' pools may still be ending), by pool."""
    policies: dict[str, set[int]] = {}
    for thread in set(threading.enumerate()) - other_than:
        if thread.name.startswith("sc-decode") and thread.native_id is not None:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            pool = thread.name.rsplit("_", 1)[0]  # ThreadPoolExecutor names threads PREFIX_N
            policies.setdefault(pool, set()).add(int(stat.rsplit(")", 1)[1].split()[38]))
    return policies


_SMALL_JPEG = np.full((48, 64, 3), 90, np.uint8)
_LARGE_RAW = np.full((600, 800, 3), 90, np.uint8)  # 1.4 MB: past LARGE_PAYLOAD_BYTES


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
@pytest.mark.parametrize(
    ("priority", "image", "encoding", "policies"),
    [
        ("idle", _SMALL_JPEG, Encoding.JPEG, {"sc-decode": {os.SCHED_IDLE}}),
        # a large payload is memory held while it waits: it decodes at normal priority
        ("idle", _LARGE_RAW, Encoding.RAW_RGB, {"sc-decode-large": {os.SCHED_OTHER}}),
        ("normal", _SMALL_JPEG, Encoding.JPEG, {"sc-decode": {os.SCHED_OTHER}}),
        ("normal", _LARGE_RAW, Encoding.RAW_RGB, {"sc-decode": {os.SCHED_OTHER}}),
    ],
)
def test_decoding_threads_run_at_the_priority_asked(
    priority: str, image: np.ndarray, encoding: Encoding, policies: dict[str, set[int]]
) -> None:
    description = ModelDescription(("a", "b"), 32, 24, 3, "m", "cpu")
    before = set(threading.enumerate())
    intake = FrameIntake(description, 8192, 8192 * 8192, workers=2, priority=priority)
    try:
        frame = raw(image) if encoding == Encoding.RAW_RGB else encoded(image, encoding)
        out = asyncio.run(intake.decode(frame))
        assert isinstance(out, np.ndarray) and out.shape == (24, 32, 3)  # decoded all the same
        assert _policies_of_decoders(before) == policies
    finally:
        intake.shutdown()


class _HeldIdleIntake(FrameIntake):
    """Idle-priority decoders that wait at ``gate`` (a host whose other programs take every
    core); the normal-priority pool decodes at once. ``finished`` names who decoded what."""

    def __init__(self, patience_s: float, clock: Callable[[], float] = lambda: 0.0) -> None:
        description = ModelDescription(("a", "b"), 32, 24, 3, "m", "cpu")
        super().__init__(
            description, 8192, 8192 * 8192, 1, "idle", idle_patience_s=patience_s, clock=clock
        )
        self.gate = threading.Event()
        self.finished: list[tuple[str, int]] = []

    def decode_now(self, frame: FrameData) -> np.ndarray | FrameRejected:
        pool = threading.current_thread().name.rsplit("_", 1)[0]
        if pool == "sc-decode":
            self.gate.wait(10)
        self.finished.append((pool, frame.seq))
        return super().decode_now(frame)


def _jpeg(seq: int) -> FrameData:
    frame = encoded(np.full((48, 64, 3), 90, np.uint8), Encoding.JPEG)
    return dataclasses.replace(frame, seq=seq)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("held", "frames", "answered_by", "starved"),
    [
        # the idle decoder is free: it answers within its patience
        (False, 1, [("sc-decode", 1)], 0),
        # the idle decoder started and gets no CPU: the normal pool answers after the patience
        (True, 1, [("sc-decode-large", 1)], 1),
        # the one idle decoder is taken by frame 1, frame 2 never started there: both go to the
        # normal pool, and frame 2's idle attempt is withdrawn (never decoded twice)
        (True, 2, [("sc-decode-large", 1), ("sc-decode-large", 2)], 2),
    ],
)
def test_a_frame_starved_of_idle_decoders_is_decoded_at_normal_priority(
    held: bool, frames: int, answered_by: list[tuple[str, int]], starved: int
) -> None:
    intake = _HeldIdleIntake(patience_s=0.2)
    if not held:
        intake.gate.set()

    async def decode_all() -> list[np.ndarray | FrameRejected]:
        return await asyncio.gather(*(intake.decode(_jpeg(seq)) for seq in range(1, frames + 1)))

    try:
        outs = asyncio.run(decode_all())
        assert all(isinstance(out, np.ndarray) and out.shape == (24, 32, 3) for out in outs)
        assert sorted(intake.finished) == answered_by
        assert intake.starved == starved
    finally:
        intake.gate.set()  # the held idle decode runs out (its answer is not used)
        intake.shutdown()


@pytest.mark.timeout(30)
def test_after_a_starved_frame_frames_decode_at_normal_priority_for_a_while() -> None:
    now = 100.0
    intake = _HeldIdleIntake(patience_s=0.2, clock=lambda: now)

    def decode(seq: int) -> None:
        out = asyncio.run(intake.decode(_jpeg(seq)))
        assert isinstance(out, np.ndarray) and out.shape == (24, 32, 3)

    try:
        decode(1)  # starved: waits its patience, then the normal pool decodes it
        now += STARVED_HOLD_S - 1
        decode(2)  # within the hold: straight to the normal pool, no wait
        assert intake.finished == [("sc-decode-large", 1), ("sc-decode-large", 2)]
        assert intake.starved == 1
        now += 2  # the hold is over and the idle decoders get CPU again
        intake.gate.set()
        decode(3)
        assert ("sc-decode", 3) in intake.finished and intake.starved == 1
    finally:
        intake.gate.set()
        intake.shutdown()
