"""Decode on arrival: each frame is checked, decoded and resized to the model input when it arrives.

JPEG/PNG decoding and resizing run in a bounded worker pool (``workers``, the old ``-wrk``)
while only the sending stream waits, so a frame that is slow to decode delays its own stream
and never everyone's batch. Resizing happens here, on uint8 pixels, so a 4096x4096 RAW frame
never becomes float32 at full size in the model's preprocessing, and what the memory budget
then counts is the small decoded image. RAW frames already at the model's input size stay
zero-copy views on the received bytes and are decoded at batch time (a reshape).

With idle-priority decoders (the default) frames whose payload is large go to a second,
normal-priority pool: an idle decoder gets no CPU while anything else wants it, and a payload
waiting for it is memory held that long, while its stream's unread messages pile up in gRPC's
receive windows, which no budget counts (BENCHMARKS.md session 10). For the same reason a frame
the idle pool has not decoded within ``IDLE_PATIENCE_S`` is decoded in the normal-priority pool
too: other programs on the host may keep every core busy for as long as they run, and a stream
must not stall for that long. Every frame then goes to that pool for ``STARVED_HOLD_S``, after
which idle decoders are tried again (a busy neighbour usually stays busy a while).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from client.resize import resize_to
from streaming.server.frame_decode import decode_frame
from streaming.server.server_errors import FrameRejected
from streaming.server.server_values import Encoding, FrameData, ModelDescription

logger = logging.getLogger(__name__)

# Module constants: a global is read faster than an enum member, and this runs per frame.
_RAW = frozenset((Encoding.RAW_RGB, Encoding.RAW_BGR))
# Payloads from this size decode at normal priority: above a 1080p JPEG's usual few hundred KB
# and a 640x480 RAW frame's 0.9 MB; 1080p RAW (6 MB) and larger are memory first.
LARGE_PAYLOAD_BYTES = 1 << 20
# Several model calls: with only the model competing, idle decoders keep up well within it
# (the JPEG row), so only a host kept busy by others gets here.
IDLE_PATIENCE_S = 1.0
STARVED_HOLD_S = 10.0


def lower_priority() -> None:
    """Put the calling thread at the OS's idle priority (Linux ``SCHED_IDLE``), if it has one.

    TensorFlow runs an operation on all its threads and waits for the slowest: a decoder
    preempting any of them stalls the whole model call, so decoders take what the model leaves.
    """
    if not hasattr(os, "SCHED_IDLE"):
        logger.debug("no SCHED_IDLE here: decoding threads keep the normal priority")
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
    except OSError as exc:
        logger.debug("cannot lower the decoding thread's priority: %s", exc)


class FrameIntake:
    """Turns received frames into model-sized uint8 images in a bounded thread pool."""

    def __init__(
        self,
        description: ModelDescription,
        max_frame_side: int,
        max_frame_pixels: int,
        workers: int,
        priority: str = "normal",
        idle_patience_s: float = IDLE_PATIENCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._width = description.input_width
        self._height = description.input_height
        self._channels = description.input_channels
        self._max_side = max_frame_side
        self._max_pixels = max_frame_pixels
        # The pool decodes frames in parallel; OpenCV's own threads inside each call would only
        # add threads competing with the model's (process-wide: the server's decoders are the
        # process's OpenCV users).
        cv2.setNumThreads(1)
        self._pool = ThreadPoolExecutor(
            workers,
            thread_name_prefix="sc-decode",
            initializer=lower_priority if priority == "idle" else None,
        )
        # Large payloads at normal priority (see the module docstring); no more threads than
        # cores: what they save is memory, and a large frame's resize is CPU-bound.
        self._large_pool = (
            ThreadPoolExecutor(
                min(workers, os.cpu_count() or 1), thread_name_prefix="sc-decode-large"
            )
            if priority == "idle"
            else self._pool
        )
        self._patience_s = idle_patience_s
        self._clock = clock
        # After a starved frame, every frame decodes at normal priority until then.
        self._normal_until = -math.inf
        # Frames the idle pool had not decoded within the patience (decoded at normal priority).
        self.starved = 0

    def retarget(self, description: ModelDescription) -> None:
        """Size frames for another model from now on (a model version swap; same channels).

        Decoder threads may see the new width with the old height for a moment: such a frame
        is resized again by the model's own preprocessing, so it is still answered.
        """
        self._width = description.input_width
        self._height = description.input_height

    def needs_decoding(self, frame: FrameData) -> bool:
        """False for RAW frames at the model's input size: they are decoded at batch time."""
        return not (
            frame.width == self._width and frame.height == self._height and frame.encoding in _RAW
        )

    async def decode(self, frame: FrameData) -> np.ndarray | FrameRejected:
        """The frame as a model-sized image, or why it cannot be one (answered in-band)."""
        if (
            self._large_pool is self._pool
            or len(frame.data) >= LARGE_PAYLOAD_BYTES
            or self._clock() < self._normal_until
        ):
            return await asyncio.wrap_future(self._large_pool.submit(self.decode_now, frame))
        queued = self._pool.submit(self.decode_now, frame)
        attempts = {asyncio.wrap_future(queued)}
        try:
            done, _ = await asyncio.wait(attempts, timeout=self._patience_s)
            if not done:
                self._starving()
                if queued.cancel():  # had not started: its place goes to the next frame
                    attempts.clear()
                # else it runs on; whichever attempt ends first answers
                attempts.add(asyncio.wrap_future(self._large_pool.submit(self.decode_now, frame)))
                done, _ = await asyncio.wait(attempts, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            # What is left is dropped: an attempt not started never runs (also when the stream
            # went away while waiting); a started one runs out, unused.
            for attempt in attempts:
                attempt.cancel()

    def _starving(self) -> None:
        self.starved += 1
        self._normal_until = self._clock() + STARVED_HOLD_S
        if self.starved == 1:
            logger.warning(
                "a frame waited %.1f s for an idle-priority decoder (other programs keep the "
                "cores busy): frames are decoded at normal priority for %.0f s after each such "
                "wait; on a shared host, serve with --decode-priority normal",
                self._patience_s,
                STARVED_HOLD_S,
            )

    def decode_now(self, frame: FrameData) -> np.ndarray | FrameRejected:
        """``decode`` on the calling thread: the server's one place that decodes a frame.

        The batch runner calls it too, at batch time, for RAW frames already at the model's
        input size (a reshape, see ``needs_decoding``).
        """
        try:
            # decode_frame checks the declared size first; JPEGs decode at the smallest DCT
            # scale that still covers the model input.
            image = decode_frame(
                frame,
                self._channels,
                self._max_side,
                max_pixels=self._max_pixels,
                target_size=(self._width, self._height),
            )
            return self._resized(image)
        except FrameRejected as exc:
            return exc
        except Exception as exc:  # a decoder bug must not take the stream down
            logger.exception("decoding frame %d failed unexpectedly", frame.seq)
            return FrameRejected(f"frame {frame.seq}: cannot decode: {exc}")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._large_pool.shutdown(wait=False, cancel_futures=True)

    def _resized(self, image: np.ndarray) -> np.ndarray:
        return resize_to(image, self._width, self._height)
