"""Web pages as frame sources: a page resolved to its stream by yt-dlp, then read like HLS or a file.

A page (YouTube, Twitch, a broadcaster's live page, any page with a ``<video>`` element) is
not media: yt-dlp finds the renditions behind it, :func:`choose_format` picks the one to
classify, and :class:`PageSource` reads it with the same OpenCV/FFmpeg path as a direct HLS URL
or video file. A stream that is a recording (an HLS playlist with an end, a plain video file) is
read like a file; a live one like a live source.

Resolved stream URLs are signed and expire, so :class:`PageSource` resolves the page at every
open: when a read fails, the capture's reconnect gets a fresh URL. A page that has nothing to
play now (no video, not live yet, over) raises :class:`~camera_tools.camera_errors.SourceOfflineError`,
which capture reports as the OFFLINE state and retries on its backoff.

yt-dlp is optional (the ``live`` extra) and imported only in this module, only when a page is
read.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from camera_tools.camera_errors import PageSupportUnavailableError, SourceError, SourceOfflineError
from camera_tools.redact import redact_url
from camera_tools.sources import PAGE_PREFIX, OpenCVSource, RawFrame, SourceKind
from camera_tools.video_frames import SourceProperties

logger = logging.getLogger(__name__)

LIVE_EXTRA_HINT = "pip install 'stream-classification[live]'"
HLS_PROTOCOLS = frozenset({"m3u8", "m3u8_native"})
# What OpenCV's FFmpeg backend reads from one URL (DASH manifests and the like are left out).
READABLE_PROTOCOLS = frozenset({"http", "https", *HLS_PROTOCOLS})
# Signed CDN URLs carry their expiry as epoch seconds: ?expire=..., /expire/.../, Expires=...
_EXPIRY = re.compile(r"(?:^|[?&/;])(?:expire|expires|exp)[=/](\d{9,11})(?=$|[&/;#])", re.IGNORECASE)


def load_yt_dlp() -> Any:
    """The ``yt_dlp`` module.

    Raises:
        PageSupportUnavailableError: yt-dlp is not installed; the message names the extra.
    """
    try:
        import yt_dlp
    except ImportError as exc:
        raise PageSupportUnavailableError(
            f"reading web pages needs yt-dlp, which is not installed: {LIVE_EXTRA_HINT}"
        ) from exc
    return yt_dlp


@dataclass(frozen=True)
class StreamFormat:
    """One rendition a page offers, from an entry of yt-dlp's ``formats``.

    Attributes:
        format_id: yt-dlp's id of the rendition (what ``--format`` takes).
        url: Where the media (or its HLS media playlist) is.
        protocol: yt-dlp's protocol name: ``https``, ``m3u8_native``, ``http_dash_segments``...
        width, height: Frame size, ``None`` when the page does not say (a bare HLS playlist).
        has_video, has_audio: ``None`` when unknown.
        bitrate_kbps: Total bitrate, ``None`` when unknown.
    """

    format_id: str
    url: str
    protocol: str
    width: int | None = None
    height: int | None = None
    has_video: bool | None = None
    has_audio: bool | None = None
    bitrate_kbps: float | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> StreamFormat:
        """From one yt-dlp format dict (or a single-format info dict)."""

        def codec(key: str) -> bool | None:
            value = info.get(key)
            return None if value is None else value != "none"

        return cls(
            format_id=str(info.get("format_id") or ""),
            url=str(info.get("url") or ""),
            protocol=str(info.get("protocol") or ""),
            width=info.get("width") or None,
            height=info.get("height") or None,
            has_video=codec("vcodec"),
            has_audio=codec("acodec"),
            bitrate_kbps=info.get("tbr") or None,
        )

    @property
    def readable(self) -> bool:
        """Whether capture can read frames from it: a video rendition FFmpeg opens from its URL."""
        return (
            bool(self.url) and self.protocol in READABLE_PROTOCOLS and self.has_video is not False
        )

    @property
    def is_hls(self) -> bool:
        return self.protocol in HLS_PROTOCOLS

    def describe(self) -> str:
        size = f"{self.width}x{self.height}" if self.width and self.height else "size unknown"
        return f"format {self.format_id or '?'} ({size}, {self.protocol})"


def choose_format(
    formats: Sequence[StreamFormat], min_size: tuple[int, int] | None
) -> StreamFormat | None:
    """The rendition to classify: the smallest video-only or muxed one at or above ``min_size``.

    Frames are scaled to the model's input anyway, so a larger rendition costs bandwidth and
    decoding for nothing and a smaller one loses detail. When none is that large, the largest.
    Ties go to video-only (no audio to fetch), then to the lower bitrate. Renditions of unknown
    size are chosen only when no size is known, and then the last (yt-dlp lists worst first).

    Args:
        formats: The page's renditions, in yt-dlp's order.
        min_size: ``(width, height)`` of the model's input; ``None`` = no minimum.

    Returns:
        The rendition, or ``None`` when none can be read (audio only, DASH manifests...).

    Example:
        >>> low, mid = (StreamFormat(str(h), "u", "https", h * 16 // 9, h, True) for h in (144, 360))
        >>> choose_format([low, mid], (224, 224)).format_id
        '360'
    """
    readable = [f for f in formats if f.readable]
    sized = [f for f in readable if f.width and f.height]
    if not sized:
        return readable[-1] if readable else None

    def area(f: StreamFormat) -> int:
        return (f.width or 0) * (f.height or 0)

    def cost(f: StreamFormat) -> tuple[int, bool, float]:
        return (area(f), f.has_audio is True, f.bitrate_kbps or float("inf"))

    min_width, min_height = min_size or (0, 0)
    large_enough = [
        f for f in sized if (f.width or 0) >= min_width and (f.height or 0) >= min_height
    ]
    if large_enough:
        return min(large_enough, key=cost)
    largest = max(area(f) for f in sized)
    return min((f for f in sized if area(f) == largest), key=cost)


def url_expiry(url: str) -> float | None:
    """When a signed stream URL stops working (epoch seconds), if the URL says.

    >>> url_expiry("https://cdn.example/v.m3u8?sig=ab&expire=1893456000&x=1")
    1893456000.0
    >>> url_expiry("https://manifest.example/api/manifest/hls_playlist/expire/1893456000/ei/x")
    1893456000.0
    >>> url_expiry("https://cdn.example/live/index.m3u8") is None
    True
    """
    match = _EXPIRY.search(url)
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class ResolvedStream:
    """What a page resolved to.

    Attributes:
        url: The stream to read (an HLS media playlist or a media file).
        format: The rendition chosen.
        is_live: What yt-dlp says: live, a recording, or ``None`` when it does not know. For
            an HLS stream the playlist itself decides (an end means a recording).
        expires_at: When ``url`` stops working (epoch seconds), when it says.
        title: The page's title, for logs.
    """

    url: str
    format: StreamFormat
    is_live: bool | None
    expires_at: float | None = None
    title: str = ""

    @property
    def kind(self) -> SourceKind:
        """How to read the stream: HLS (live or not, per the playlist), live network or file."""
        if self.format.is_hls:
            return SourceKind.HLS
        return SourceKind.NETWORK if self.is_live else SourceKind.FILE


class _YtDlpLog:
    """yt-dlp's messages, sent to this module's logger: the capture's states report the outcome."""

    def debug(self, message: str) -> None:
        logger.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        logger.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        logger.debug("yt-dlp warning: %s", message)

    def error(self, message: str) -> None:
        logger.debug("yt-dlp error: %s", message)


def page_url(spec: str) -> str:
    """The URL yt-dlp gets: ``spec`` without a ``ytdl:`` prefix.

    >>> page_url("ytdl:https://example.com/live")
    'https://example.com/live'
    """
    spec = spec.strip()
    return spec[len(PAGE_PREFIX) :].strip() if spec.lower().startswith(PAGE_PREFIX) else spec


def resolve_page(
    url: str,
    *,
    min_size: tuple[int, int] | None = None,
    page_format: str | None = None,
    timeout_s: float = 10.0,
) -> ResolvedStream:
    """Ask yt-dlp for the stream behind the page at ``url`` (no download).

    Args:
        url: The page.
        min_size: The model's input size, for :func:`choose_format`.
        page_format: A yt-dlp format selector (``--format``) that replaces :func:`choose_format`.
        timeout_s: Socket timeout of yt-dlp's requests.

    Raises:
        PageSupportUnavailableError: yt-dlp is not installed.
        SourceOfflineError: The page has nothing to play now: no video, not live yet, over.
        SourceError: The page cannot be fetched, or has no rendition FFmpeg can read.
    """
    yt_dlp = load_yt_dlp()
    options: dict[str, Any] = {
        "quiet": True,
        "noprogress": True,
        "logger": _YtDlpLog(),
        "noplaylist": True,
        "playlist_items": "1",
        "cachedir": False,
        "socket_timeout": timeout_s,
        # Capture retries on its own backoff; yt-dlp's retries would only hide the state.
        "retries": 0,
        "extractor_retries": 0,
    }
    if page_format:
        options["format"] = page_format
    shown = redact_url(url)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except yt_dlp.utils.DownloadError as exc:
        cause = exc.exc_info[1] if exc.exc_info else None
        _close_response(cause)
        message = str(exc).removeprefix("ERROR: ")
        offline = isinstance(cause, yt_dlp.utils.ExtractorError) and cause.expected
        # yt-dlp calls a --format that matches nothing "expected" too, but no wait will fix it.
        if offline and "Requested format is not available" not in message:
            raise SourceOfflineError(message) from exc
        raise SourceError(f"cannot resolve {shown}: {message}") from exc
    if info and info.get("_type") in ("playlist", "multi_video"):
        info = next(iter(info.get("entries") or ()), None)
    if not info:
        raise SourceOfflineError(f"no video on {shown}")
    live_status = info.get("live_status")
    if live_status == "is_upcoming":
        raise SourceOfflineError(f"not live yet: {shown}")
    if live_status == "post_live":
        raise SourceOfflineError(f"the live stream has ended: {shown}")
    chosen = _chosen_format(info, min_size, page_format)
    if chosen is None:
        protocols = sorted({str(f.get("protocol")) for f in info.get("formats") or [info]})
        raise SourceError(
            f"no rendition of {shown} that FFmpeg can read (protocols: {', '.join(protocols)}); "
            "pick one with --format"
        )
    is_live = True if live_status == "is_live" else info.get("is_live")
    if live_status in ("was_live", "not_live"):
        is_live = False
    return ResolvedStream(
        url=chosen.url,
        format=chosen,
        is_live=is_live,
        expires_at=url_expiry(chosen.url),
        title=str(info.get("title") or ""),
    )


def _close_response(error: BaseException | None) -> None:
    """Close the HTTP response an error of yt-dlp holds (a 404's): the error is chained into
    ours and may live on for a while, its socket need not."""
    for candidate in (error, getattr(error, "cause", None)):
        response = getattr(candidate, "response", None)
        close = getattr(response, "close", None)
        if callable(close):
            close()


def _chosen_format(
    info: Mapping[str, Any], min_size: tuple[int, int] | None, page_format: str | None
) -> StreamFormat | None:
    if page_format:
        # yt-dlp selected: one format, or a video+audio pair whose video part is read.
        picked = [StreamFormat.from_info(f) for f in info.get("requested_formats") or [info]]
        return next((f for f in picked if f.readable and f.has_video), None) or next(
            (f for f in picked if f.readable), None
        )
    return choose_format(
        [StreamFormat.from_info(f) for f in info.get("formats") or [info]], min_size
    )


class PageSource:
    """A web page read through the stream yt-dlp finds on it (a :class:`FrameSource`).

    Every :meth:`open` resolves the page again: capture builds a new source for each reconnect,
    so a stream URL that expired or moved is replaced by a fresh one.

    Args:
        spec: The page URL, optionally prefixed ``ytdl:``.
        page_format: yt-dlp format selector; ``None`` = :func:`choose_format`.
        min_size: ``(width, height)`` of the model's input.
        open_timeout_s, read_timeout_s: As for :class:`~camera_tools.sources.OpenCVSource`;
            ``open_timeout_s`` also limits each of yt-dlp's requests.

    Raises:
        PageSupportUnavailableError: yt-dlp is not installed (raised here, when the source is
            built, so ``watch`` fails at start with the extra's name).
    """

    def __init__(
        self,
        spec: str,
        *,
        page_format: str | None = None,
        min_size: tuple[int, int] | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        load_yt_dlp()
        self.spec = spec
        self.url = page_url(spec)
        self.page_format = page_format
        self.min_size = min_size
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.resolved: ResolvedStream | None = None
        self._stream: OpenCVSource | None = None

    @property
    def kind(self) -> SourceKind:
        return SourceKind.PAGE

    def open(self) -> SourceProperties:
        resolved = resolve_page(
            self.url,
            min_size=self.min_size,
            page_format=self.page_format,
            timeout_s=self.open_timeout_s,
        )
        stream = OpenCVSource(
            resolved.url,
            kind=resolved.kind,
            open_timeout_s=self.open_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )
        props = stream.open()
        self.resolved, self._stream = resolved, stream
        expiry = ""
        if resolved.expires_at is not None:
            until = dt.datetime.fromtimestamp(resolved.expires_at, dt.UTC)
            expiry = f", URL valid until {until.isoformat(timespec='seconds')}"
        logger.info(
            "%s: %s stream, %s, %dx%d%s",
            redact_url(self.spec),
            "live" if props.is_live else "recorded",
            resolved.format.describe(),
            props.width,
            props.height,
            expiry,
        )
        return props

    def read(self) -> RawFrame | None:
        if self._stream is None:
            raise SourceError("read() before open()")
        return self._stream.read()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
