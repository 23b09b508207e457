"""Show frames in an OpenCV window."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping

import cv2
import numpy as np

from camera_tools.camera_errors import DisplayUnavailableError, SinkError
from camera_tools.sinks.base import Classification

logger = logging.getLogger(__name__)


def _opencv_has_gui() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "NO", "")
    return True  # unknown layout: let imshow decide


def check_display(
    *,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    has_gui: Callable[[], bool] = _opencv_has_gui,
) -> None:
    """Raise :class:`DisplayUnavailableError` when windows cannot be shown here.

    Args:
        environ: Environment to inspect (defaults to ``os.environ``).
        platform: ``sys.platform`` value to assume.
        has_gui: Tells whether the installed OpenCV was built with a GUI backend.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not has_gui():
        raise DisplayUnavailableError(
            "this OpenCV build has no GUI support (opencv-python-headless?): "
            "install opencv-python instead of opencv-python-headless to show a window, "
            "or record/log without a display"
        )
    if platform.startswith("linux") and not (
        environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    ):
        raise DisplayUnavailableError(
            "no screen: neither DISPLAY nor WAYLAND_DISPLAY is set (headless machine or SSH without -X); "
            "record to a file instead of displaying"
        )


class DisplaySink:
    """Shows each source's frames in its own window.

    Args:
        window_prefix: Window titles are ``<prefix> <source id>``.
        on_key: Called with every key pressed (``cv2.waitKey`` code).

    Raises:
        DisplayUnavailableError: No screen, or OpenCV has no GUI support.
    """

    def __init__(
        self, window_prefix: str = "watch", *, on_key: Callable[[int], None] | None = None
    ) -> None:
        check_display()
        self.window_prefix = window_prefix
        self._on_key = on_key
        self._windows: set[str] = set()

    def write(self, result: Classification, image: np.ndarray | None = None) -> None:
        if image is None:
            raise SinkError("DisplaySink needs the frame image")
        self.show(result.source_id, image)

    def show(self, source_id: str, image: np.ndarray) -> int:
        """Show one frame; return the key pressed meanwhile, or -1."""
        name = f"{self.window_prefix} {source_id}"
        try:
            cv2.imshow(name, image)
            key = cv2.waitKey(1)
        except cv2.error as exc:  # e.g. the X server went away
            raise DisplayUnavailableError(f"cannot show window {name!r}: {exc}") from exc
        self._windows.add(name)
        if key != -1 and self._on_key is not None:
            self._on_key(key)
        return key

    def close(self) -> None:
        for name in self._windows:
            try:
                cv2.destroyWindow(name)
            except cv2.error:
                logger.debug("window %s already gone", name)
        self._windows.clear()
