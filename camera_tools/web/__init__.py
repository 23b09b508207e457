"""Live web view of watched sources: tiles with annotated video, labels, timeline and alerts.

Feed a :class:`WebHub` from the watch runner and serve it with a :class:`WebServer`.
"""

from __future__ import annotations

from camera_tools.web.hub import DOWN_STATES, SourceStats, WebHub
from camera_tools.web.options import WebOptions
from camera_tools.web.web_server import WebServer, WebServerError

__all__ = [
    "DOWN_STATES",
    "SourceStats",
    "WebHub",
    "WebOptions",
    "WebServer",
    "WebServerError",
]
