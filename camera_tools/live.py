"""Everything a person watches live, behind one observer: web view, RTSP re-stream, alerts.

The watch runner makes one :class:`LiveOutputs` from its :class:`LiveOptions`
(:meth:`LiveOutputs.start`) and calls :meth:`~LiveOutputs.on_frame`,
:meth:`~LiveOutputs.on_state` and :meth:`~LiveOutputs.on_stats` from its source threads;
none of them blocks on a browser, a player or a webhook.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from camera_tools.alert_options import AlertOptions, build_alerts
from camera_tools.alert_outputs import AlertOutputs
from camera_tools.alerts import AlertMonitor
from camera_tools.capture import SourceState
from camera_tools.restream import RtspRestreamer
from camera_tools.sinks.base import Classification
from camera_tools.web import DOWN_STATES, SourceStats, WebHub, WebOptions, WebServer


@dataclass(frozen=True)
class LiveOptions:
    """Which live outputs to start; the defaults start none.

    Attributes:
        web: The web view, or ``None``.
        restream: (host, port) of the RTSP re-stream, or ``None``.
        alerts: Alert rules and where alerts go.
    """

    web: WebOptions | None = None
    restream: tuple[str, int] | None = None
    alerts: AlertOptions = field(default_factory=AlertOptions)


class LiveOutputs:
    """Fans the runner's frames, states and numbers out to whichever live outputs are on.

    Args:
        web: The web view's server (its hub gets everything), or ``None``.
        restreamer: The RTSP re-stream, or ``None``.
        alerts: The alert monitor and its outputs, or ``None``.
    """

    def __init__(
        self,
        *,
        web: WebServer | None = None,
        restreamer: RtspRestreamer | None = None,
        alerts: tuple[AlertMonitor, AlertOutputs] | None = None,
    ) -> None:
        self.web = web
        self.restreamer = restreamer
        self.monitor: AlertMonitor | None = None
        self._alert_outputs: AlertOutputs | None = None
        if alerts is not None:
            self.monitor, self._alert_outputs = alerts
        if self.monitor is not None:
            self.monitor.start()

    @classmethod
    def start(
        cls, options: LiveOptions, sources: Sequence[str], *, console: TextIO = sys.stdout
    ) -> LiveOutputs:
        """Start what ``options`` ask for; close what was started if a later part fails.

        Raises:
            camera_tools.web.WebServerError: The web address cannot be bound.
            camera_tools.restream.RestreamUnavailableError: No GStreamer RTSP server.
            camera_tools.camera_errors.SinkError, ValueError: Bad alert outputs.
        """
        web = restreamer = None
        try:
            if options.web is not None:
                view = options.web
                web = WebServer(WebHub(sources), host=view.host, port=view.port, token=view.token)
            if options.restream is not None:
                host, port = options.restream
                restreamer = RtspRestreamer(host=host, port=port)
            extra = [web.hub.publish_alert] if web is not None else []
            alerts = build_alerts(options.alerts, console=console, extra=extra)
        except BaseException:
            for started in (web, restreamer):
                if started is not None:
                    started.close()
            raise
        return cls(web=web, restreamer=restreamer, alerts=alerts)

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.web, self.restreamer, self.monitor))

    @property
    def wants_images(self) -> bool:
        """Whether an output shows video (alerts alone need only the labels)."""
        return self.web is not None or self.restreamer is not None

    def on_frame(
        self, source: str, image: np.ndarray | None, classification: Classification
    ) -> None:
        """A classified frame (raw, not annotated: each output draws its own overlay).

        ``image`` may be ``None`` only when no output shows video (see :attr:`wants_images`).
        """
        if self.monitor is not None:
            self.monitor.observe_label(source, classification.label)
        if image is None:
            return
        if self.web is not None:
            self.web.hub.publish_frame(source, image, classification)
        if self.restreamer is not None:
            self.restreamer.publish_frame(source, image, classification)

    def on_state(self, source: str, state: SourceState, detail: str = "") -> None:
        """The source's capture state changed (redacted ``detail``, e.g. the reason)."""
        if self.monitor is not None:
            self.monitor.observe_state(source, up=state.value not in DOWN_STATES, reason=detail)
        if self.web is not None:
            self.web.hub.publish_state(source, state.value, detail)

    def on_stats(self, source: str, stats: SourceStats) -> None:
        """The source's numbers, every second or so."""
        if self.web is not None:
            self.web.hub.publish_stats(source, stats)

    def close(self) -> None:
        """Stop the alert ticker, then the outputs (web last: it shows the final alerts)."""
        if self.monitor is not None:
            self.monitor.close()
        if self._alert_outputs is not None:
            self._alert_outputs.close()
        if self.restreamer is not None:
            self.restreamer.close()
        if self.web is not None:
            self.web.close()
