"""What the watch application is asked to do: :class:`WatchConfig`, and the ids of its sources."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from camera_tools.backoff import BackoffPolicy
from camera_tools.capture import CaptureOptions
from camera_tools.collect import CollectOptions
from camera_tools.live import LiveOptions
from camera_tools.redact import redact_url
from client import Delivery
from client.host_port import parse_host_port

# Reopening a source or reconnecting to the server: quick at first, then every 10 s at most.
DEFAULT_RECONNECT = BackoffPolicy(initial_delay=0.5, max_delay=10.0, jitter=0.1)


@dataclass(frozen=True)
class WatchConfig:
    """What to watch, how to classify it and where results go: every ``watch`` setting.

    The command line only parses flags into one of these; code embedding the watcher builds it.

    Attributes:
        sources: Source specs (webcam index, URL, web page, video file, image folder or glob).
        server: ``host:port`` of the classification server, or any gRPC target
            (``dns:///host:port``, ``ipv4:a:p,b:p``...).
        window: Frames averaged per answer; 0 = the server default.
        delivery: Force LIVE or LOSSLESS; ``None`` = LIVE for live sources, LOSSLESS otherwise.
        skip: Classify every (skip+1)-th frame.
        max_fps: Cap on frames classified per second per source.
        realtime: Play files at their native rate (default: as fast as the server answers).
        max_in_flight: Frames per source sent but not yet answered.
        client_id: Sent to the server with every stream.
        connect_timeout_s: Time allowed to reach the server (at start and per reconnect attempt).
        reconnect: Backoff for reopening network sources and reconnecting to the server;
            ``max_retries`` applies to both.
        stall_timeout_s: Silence after which a live source is reopened.
        open_timeout_s: Limit on opening (and on one read of) a network stream.
        folder_fps: Frame rate assigned to image folders (gives their frames a position).
        page_format: yt-dlp format selector for web page sources; ``None`` = the smallest
            rendition at or above the model's input size.
        duration_s: Stop after this many seconds; ``None`` runs until the sources end.
        drain_timeout_s: On stop, how long to wait for answers to frames already sent.
        counters_interval_s: How often observers receive each source's counters.
        csv_path: One row per classified frame.
        segments_path: One row per stretch of the same label (``.csv`` or ``.jsonl``).
        record_path: Annotated video; one file per source (``<stem>-<source><suffix>``) when
            there are several.
        display: Show each source in an OpenCV window.
        verbose: Print every classified frame, not only label changes.
        metrics_address: ``HOST:PORT`` serving Prometheus metrics at ``/metrics`` (``:PORT`` is
            loopback, port 0 a free one); ``None`` serves none.
        live: The web view, RTSP re-stream and alerts.
        collect: Keep the frames worth a person's look in a folder (``--collect``); ``None``
            keeps none.
        credentials: TLS credentials for the server; ``None`` for plaintext.
        token: Bearer token sent on every call (never shown in the config's repr).
        load_balancing: The channel's load-balancing policy (``round_robin``...); ``None`` is
            gRPC's pick_first.
    """

    sources: tuple[str, ...]
    server: str
    window: int = 0
    delivery: Delivery | None = None
    skip: int = 0
    max_fps: float | None = None
    realtime: bool = False
    max_in_flight: int = 8
    client_id: str = ""
    connect_timeout_s: float = 5.0
    reconnect: BackoffPolicy = DEFAULT_RECONNECT
    stall_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    folder_fps: float = 10.0
    page_format: str | None = None
    duration_s: float | None = None
    drain_timeout_s: float = 3.0
    counters_interval_s: float = 1.0
    csv_path: Path | None = None
    segments_path: Path | None = None
    record_path: Path | None = None
    display: bool = False
    verbose: bool = False
    metrics_address: str | None = None
    live: LiveOptions = field(default_factory=LiveOptions)
    collect: CollectOptions | None = None
    credentials: grpc.ChannelCredentials | None = field(default=None, repr=False, compare=False)
    token: str | None = field(default=None, repr=False)
    load_balancing: str | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one source is needed")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.connect_timeout_s <= 0 or self.drain_timeout_s < 0:
            raise ValueError("connect_timeout_s must be > 0 and drain_timeout_s >= 0")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if self.counters_interval_s <= 0:
            raise ValueError(
                f"counters_interval_s must be positive, got {self.counters_interval_s}"
            )
        if self.folder_fps <= 0:
            raise ValueError(f"folder_fps must be positive, got {self.folder_fps}")
        if self.metrics_address is not None:
            parse_host_port(self.metrics_address)
        # Fail on bad capture settings now rather than in a worker thread.
        self.capture_options()

    def capture_options(self) -> CaptureOptions:
        return CaptureOptions(
            skip=self.skip,
            max_fps=self.max_fps,
            realtime=self.realtime,
            stall_timeout_s=self.stall_timeout_s,
            connect_timeout_s=max(self.stall_timeout_s, 2 * self.open_timeout_s),
            reconnect=self.reconnect,
        )


def source_ids(specs: Sequence[str]) -> list[str]:
    """Redacted, unique ids for the specs (a repeated spec gets ``#2``, ``#3``...)."""
    ids: list[str] = []
    for spec in specs:
        base = redact_url(spec)
        name, n = base, 1
        while name in ids:
            n += 1
            name = f"{base}#{n}"
        ids.append(name)
    return ids
