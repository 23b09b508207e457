"""The headless Chromium of the web view's tests, for the label page's browser test."""

from __future__ import annotations

from tests.camera_tools.conftest import browser  # noqa: F401 (a fixture, shared)
