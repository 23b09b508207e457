from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camera_tools.backoff import BackoffPolicy
from camera_tools.camera_errors import SourceError
from camera_tools.capture import CaptureOptions, RateLimiter, VideoStream, open_source
from camera_tools.sources import SourceKind
from camera_tools.states import SourceEvent, SourceState
from tests.support import wait_until

FAST_RETRY = BackoffPolicy(initial_delay=0.01, max_delay=0.05)
# A fake reader left hanging is released when the test ends: stop() need not wait for it.
HUNG_READER_EXIT_S = 0.05


def drain(stream: VideoStream, timeout: float = 10.0) -> list[int]:
    """Indices of every frame until the stream is finished; fails if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    indices: list[int] = []
    while not stream.finished:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"stream not finished within {timeout}s; frames so far: {indices}")
        frame = stream.read(timeout=min(remaining, 0.2))
        if frame is not None:
            indices.append(frame.index)
    return indices


def states(events: list[SourceEvent]) -> list[SourceState]:
    return [event.state for event in events]


@pytest.mark.timeout(20)
def test_drain_fails_when_the_stream_never_finishes(
    fake_factory: Callable[..., Any], script: Any
) -> None:
    # given a file whose reader hangs after 2 frames, so the stream never finishes
    factory = fake_factory([script(frames=2, then="hang")], SourceKind.FILE)
    # when it is drained with a short deadline, then the helper stops and says why
    with (
        open_source(
            "clip.mp4",
            source_factory=factory,
            options=CaptureOptions(reader_exit_s=HUNG_READER_EXIT_S),
        ) as stream,
        pytest.raises(pytest.fail.Exception, match=r"not finished within 0.3s.*\[0, 1\]"),
    ):
        drain(stream, timeout=0.3)


@pytest.mark.timeout(20)
def test_video_file_is_read_in_order_then_ends(video_30f_10fps: Path) -> None:
    events: list[SourceEvent] = []
    with open_source(str(video_30f_10fps), on_event=events.append) as stream:
        frames = list(stream)
        props = stream.properties

    assert [f.index for f in frames] == list(range(30))
    assert frames[5].position_s == pytest.approx(0.5)
    assert frames[0].source_id == str(video_30f_10fps)
    assert props is not None and props.total_frames == 30
    assert states(events) == [SourceState.CONNECTING, SourceState.CONNECTED, SourceState.ENDED]
    assert stream.stats().frames_overwritten == 0


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("skip", "expected"),
    [
        (0, list(range(30))),
        (1, list(range(0, 30, 2))),
        (4, [0, 5, 10, 15, 20, 25]),
        (29, [0]),
        (100, [0]),
    ],
)
def test_skip_delivers_every_nth_frame(
    video_30f_10fps: Path, skip: int, expected: list[int]
) -> None:
    with open_source(str(video_30f_10fps), options=CaptureOptions(skip=skip)) as stream:
        assert drain(stream) == expected
        assert stream.stats().frames_filtered == 30 - len(expected)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("max_fps", "expected_count"),
    [
        (None, 60),  # 2 s of 30 fps video
        (30, 60),
        (10, 20),
        (12, 24),
        (1, 2),
    ],
)
def test_fps_cap_uses_file_time(
    video_60f_30fps: Path, max_fps: float | None, expected_count: int
) -> None:
    with open_source(str(video_60f_30fps), options=CaptureOptions(max_fps=max_fps)) as stream:
        assert len(drain(stream)) == expected_count


@pytest.mark.parametrize(
    ("max_fps", "times", "allowed"),
    [
        (10, [0.0, 0.05, 0.1, 0.15, 0.2], [True, False, True, False, True]),
        (2, [0.0, 0.1, 0.6, 5.0, 5.2, 5.5], [True, False, True, True, False, True]),
    ],
)
def test_rate_limiter(max_fps: float, times: list[float], allowed: list[bool]) -> None:
    limiter = RateLimiter(max_fps)
    assert [limiter.allow(t) for t in times] == allowed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"skip": -1},
        {"max_fps": 0},
        {"queue_size": 0},
        {"stall_timeout_s": 0},
        {"connect_timeout_s": -1},
        {"reader_exit_s": -0.1},
    ],
)
def test_invalid_capture_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CaptureOptions(**kwargs)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("realtime", "min_s", "max_s"), [(True, 0.42, 1.5), (False, 0.0, 0.3)])
def test_realtime_plays_files_at_native_fps(
    video_10f_20fps: Path, realtime: bool, min_s: float, max_s: float
) -> None:
    # 10 frames at 20 fps: the last one is due 0.45 s after the first in real time.
    with open_source(str(video_10f_20fps), options=CaptureOptions(realtime=realtime)) as stream:
        first = stream.read(timeout=5)
        start = time.monotonic()
        indices = drain(stream)
    elapsed = time.monotonic() - start
    assert first is not None and indices == list(range(1, 10))
    assert min_s <= elapsed <= max_s


@pytest.mark.timeout(20)
def test_image_folder_through_capture(image_folder: Path) -> None:
    with open_source(str(image_folder)) as stream:
        frames = list(stream)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.position_s for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


@pytest.mark.timeout(20)
def test_live_source_keeps_only_the_newest_frame(
    fake_factory: Callable[..., Any], script: Any
) -> None:
    # given a 200 fps live source and a consumer that takes 5 frames per second
    factory = fake_factory([script(frames=100, interval_s=0.005)], SourceKind.WEBCAM)
    stream = open_source("0", source_factory=factory)
    got = []
    # when
    for _ in range(3):
        frame = stream.read(timeout=5)
        assert frame is not None
        got.append(frame.index)
        time.sleep(0.2)
    stats = stream.stats()
    stream.stop()
    # then frames were overwritten rather than queued, and the consumer saw fresh ones
    assert stats.frames_overwritten > 20
    assert got == sorted(got)
    assert got[-1] - got[0] > 20


@pytest.mark.timeout(20)
def test_file_source_never_drops_for_a_slow_consumer(
    fake_factory: Callable[..., Any],
    script: Any,
) -> None:
    factory = fake_factory([script(frames=20)], SourceKind.FILE)
    with open_source(
        "clip.mp4", source_factory=factory, options=CaptureOptions(queue_size=2)
    ) as stream:
        got = []
        for frame in stream:
            got.append(frame.index)
            time.sleep(0.01)
    assert got == list(range(20))
    assert stream.stats().frames_overwritten == 0
    assert len(factory.created) == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("then", ["end", "raise"])
def test_file_is_never_reopened(fake_factory: Callable[..., Any], script: Any, then: str) -> None:
    factory = fake_factory([script(frames=3, then=then)], SourceKind.FILE)
    events: list[SourceEvent] = []
    with open_source("clip.mp4", source_factory=factory, on_event=events.append) as stream:
        assert drain(stream) == [0, 1, 2]
    assert len(factory.created) == 1
    assert states(events)[-1] is SourceState.ENDED


@pytest.mark.timeout(20)
def test_network_source_reconnects_after_end_error_and_refused_open(
    fake_factory: Callable[..., Any],
    script: Any,
) -> None:
    # given a stream that ends, then refuses one connection, then breaks, then works
    factory = fake_factory(
        [
            script(frames=3, then="end"),
            script(open_error=True),
            script(frames=2, then="raise"),
            script(frames=4, then="hang"),
        ]
    )
    events: list[SourceEvent] = []
    options = CaptureOptions(reconnect=FAST_RETRY, queue_size=100, reader_exit_s=HUNG_READER_EXIT_S)
    # when
    stream = open_source(
        "rtsp://user:pw@cam/live", source_factory=factory, options=options, on_event=events.append
    )
    wait_until(lambda: stream.stats().frames_read == 9, timeout=10, interval=0.01)
    stream.stop()
    # then
    assert states(events) == [
        SourceState.CONNECTING,
        SourceState.CONNECTED,
        SourceState.RECONNECTING,  # end of stream; stays RECONNECTING through the refused open
        SourceState.CONNECTED,
        SourceState.RECONNECTING,  # read error
        SourceState.CONNECTED,
        SourceState.ENDED,  # stop()
    ]
    assert len(factory.created) == 4
    assert stream.stats().reconnects == 3
    assert all(source.closed for source in factory.created[:3])
    assert {event.source_id for event in events} == {"rtsp://***@cam/live"}
    assert events[2].reason == "end of stream"


@pytest.mark.timeout(20)
def test_network_source_fails_after_max_retries(
    fake_factory: Callable[..., Any], script: Any
) -> None:
    factory = fake_factory([script(open_error=True)])
    events: list[SourceEvent] = []
    options = CaptureOptions(
        reconnect=BackoffPolicy(initial_delay=0.01, max_delay=0.01, max_retries=2)
    )
    with open_source(
        "rtsp://cam/live", source_factory=factory, options=options, on_event=events.append
    ) as stream:
        assert drain(stream) == []
    assert states(events) == [SourceState.CONNECTING, SourceState.RECONNECTING, SourceState.FAILED]
    assert [e.attempt for e in events] == [0, 1, 0]
    assert "gave up after 2" in events[-1].reason
    assert len(factory.created) == 3
    assert stream.state is SourceState.FAILED


@pytest.mark.timeout(20)
def test_watchdog_reconnects_a_silent_stream(fake_factory: Callable[..., Any], script: Any) -> None:
    # given a stream that hangs inside read() after 2 frames, as OpenCV can
    factory = fake_factory([script(frames=2, then="hang"), script(frames=50, interval_s=0.01)])
    events: list[SourceEvent] = []
    options = CaptureOptions(stall_timeout_s=0.3, reconnect=FAST_RETRY)
    # when
    stream = open_source(
        "rtsp://cam/live", source_factory=factory, options=options, on_event=events.append
    )
    wait_until(lambda: stream.stats().frames_read >= 20, timeout=10, interval=0.01)
    stream.stop()
    # then the hung reader was abandoned and a new connection took over
    assert states(events)[:5] == [
        SourceState.CONNECTING,
        SourceState.CONNECTED,
        SourceState.STALLED,
        SourceState.RECONNECTING,
        SourceState.CONNECTED,
    ]
    assert events[2].reason == "no frame for 0.3s"
    assert len(factory.created) == 2


@pytest.mark.timeout(20)
def test_connect_timeout_covers_a_hanging_first_read(
    fake_factory: Callable[..., Any],
    script: Any,
) -> None:
    factory = fake_factory([script(frames=0, then="hang"), script(frames=5, then="hang")])
    events: list[SourceEvent] = []
    options = CaptureOptions(
        connect_timeout_s=0.2, reconnect=FAST_RETRY, reader_exit_s=HUNG_READER_EXIT_S
    )
    stream = open_source(
        "rtsp://cam/live", source_factory=factory, options=options, on_event=events.append
    )
    wait_until(lambda: stream.stats().frames_read == 5, timeout=10, interval=0.01)
    stream.stop()
    assert states(events)[:3] == [
        SourceState.CONNECTING,
        SourceState.RECONNECTING,
        SourceState.CONNECTED,
    ]
    assert "no frame within 0.2s" in events[1].reason


@pytest.mark.timeout(20)
def test_dead_webcam_fails_without_retry(fake_factory: Callable[..., Any], script: Any) -> None:
    factory = fake_factory([script(open_error=True)], SourceKind.WEBCAM)
    events: list[SourceEvent] = []
    with open_source("0", source_factory=factory, on_event=events.append) as stream:
        assert drain(stream) == []
    assert states(events) == [SourceState.CONNECTING, SourceState.FAILED]
    assert "connection refused" in events[-1].reason


def test_bad_spec_fails_in_the_callers_thread() -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        open_source("ftp://host/clip.mp4")


@pytest.mark.timeout(20)
def test_on_event_errors_do_not_kill_capture(fake_factory: Callable[..., Any], script: Any) -> None:
    def broken(event: SourceEvent) -> None:
        raise RuntimeError("callback bug")

    factory = fake_factory([script(frames=3)], SourceKind.FILE)
    with open_source("clip.mp4", source_factory=factory, on_event=broken) as stream:
        assert drain(stream) == [0, 1, 2]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("kind", "is_live", "reads_live", "reopens"),
    [
        (SourceKind.HLS, False, False, False),  # a playlist with an end: a recording
        (SourceKind.PAGE, False, False, False),  # a page whose stream is a recording
        (SourceKind.HLS, True, True, True),  # a live playlist: reopened at its end
        (SourceKind.PAGE, True, True, True),
        (SourceKind.NETWORK, True, True, True),  # as before: RTSP and the like are live
    ],
)
def test_liveness_told_at_open_decides_how_the_source_is_read(
    fake_factory: Callable[..., Any],
    script: Any,
    kind: SourceKind,
    is_live: bool,
    reads_live: bool,
    reopens: bool,
) -> None:
    # given a source of 20 frames that says at open whether it is live
    factory = fake_factory(
        [script(frames=20, is_live=is_live), script(frames=0, then="hang")], kind
    )
    events: list[SourceEvent] = []
    options = CaptureOptions(queue_size=2, reconnect=FAST_RETRY, reader_exit_s=HUNG_READER_EXIT_S)
    stream = VideoStream(
        "https://site/x", options=options, source_factory=factory, on_event=events.append
    ).start()
    try:
        # then a playlist or a page is undecided until opened; the others are known at once
        if kind.live_decided_at_open:
            assert stream.live in (None, reads_live)
        else:
            assert stream.live is reads_live
        if reads_live:
            wait_until(
                lambda: len(factory.created) == 2, timeout=10, interval=0.01
            )  # the end of a live stream: reopen
        else:
            # a recording: every frame once, in order (the reader waits for the consumer)
            time.sleep(0.2)  # let a newest-wins slot overwrite, were it one
            assert drain(stream) == list(range(20))
    finally:
        stream.stop()
    assert stream.live is reads_live
    assert (stream.stats().reconnects > 0) is reopens
    assert (stream.stats().frames_overwritten == 0) or reads_live
    if not reopens:
        assert states(events) == [SourceState.CONNECTING, SourceState.CONNECTED, SourceState.ENDED]
        assert events[-1].reason == "end of stream"


@pytest.mark.timeout(20)
def test_an_offline_source_has_its_own_state_and_is_retried_on_backoff(
    fake_factory: Callable[..., Any], script: Any
) -> None:
    # given a page that is not live for two attempts, then is
    factory = fake_factory(
        [script(offline=True), script(offline=True), script(frames=3, then="hang")],
        SourceKind.PAGE,
    )
    events: list[SourceEvent] = []
    options = CaptureOptions(reconnect=FAST_RETRY, reader_exit_s=HUNG_READER_EXIT_S)
    stream = open_source(
        "https://site/live.html", source_factory=factory, on_event=events.append, options=options
    )
    # when it is watched until it plays
    wait_until(lambda: stream.stats().frames_read == 3, timeout=10, interval=0.01)
    stream.stop()
    # then it was OFFLINE (announced once, with the reason and the backoff) until it played
    assert states(events) == [
        SourceState.CONNECTING, SourceState.OFFLINE, SourceState.CONNECTED, SourceState.ENDED,
    ]  # fmt: skip
    offline = events[1]
    assert offline.reason == "not live yet" and offline.attempt == 1 and offline.delay_s is not None
    assert stream.stats().reconnects == 2 and stream.live is True


@pytest.mark.timeout(20)
def test_an_offline_source_fails_after_max_retries(
    fake_factory: Callable[..., Any], script: Any
) -> None:
    factory = fake_factory([script(offline=True)], SourceKind.PAGE)
    events: list[SourceEvent] = []
    options = CaptureOptions(reconnect=BackoffPolicy(initial_delay=0.01, max_retries=2))
    with open_source(
        "https://site/live.html", source_factory=factory, on_event=events.append, options=options
    ) as stream:
        assert drain(stream) == []
    assert states(events) == [SourceState.CONNECTING, SourceState.OFFLINE, SourceState.FAILED]
    assert "gave up after 2" in events[-1].reason and "not live yet" in events[-1].reason


@pytest.mark.timeout(20)
def test_a_live_stream_that_reopens_as_a_recording_has_ended(
    fake_factory: Callable[..., Any], script: Any
) -> None:
    # given a live playlist that ends, and whose playlist has an end when reopened
    factory = fake_factory(
        [script(frames=3, is_live=True), script(frames=50, is_live=False)], SourceKind.HLS
    )
    events: list[SourceEvent] = []
    options = CaptureOptions(reconnect=FAST_RETRY)
    stream = open_source(
        "https://cdn/live.m3u8", source_factory=factory, on_event=events.append, options=options
    )
    # when it is reopened a few times
    wait_until(lambda: len(factory.created) >= 3, timeout=10, interval=0.01)
    stream.stop()
    # then the recording is never read (it would replay the broadcast): the source is offline
    assert states(events)[:4] == [
        SourceState.CONNECTING, SourceState.CONNECTED, SourceState.RECONNECTING,
        SourceState.OFFLINE,
    ]  # fmt: skip
    assert events[3].reason == "the live stream has ended"
    assert stream.stats().frames_read == 3 and stream.live is True
    assert all(source.closed for source in factory.created[1:-1])
