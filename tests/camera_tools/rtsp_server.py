"""A tiny RTSP test server built on GStreamer's gst-rtsp-server.

Run with Debian's ``/usr/bin/python3`` (it needs ``python3-gi`` and
``gir1.2-gst-rtsp-server-1.0``, which the project's virtualenv does not have)::

    /usr/bin/python3 tests/camera_tools/rtsp_server.py --port 0 --path /test

It prints ``READY <port>`` on stdout once it listens, then serves an H.264
``videotestsrc`` stream (``--pattern smpte`` for colour bars) until it gets SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--path", default="/test")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--pattern", default="ball", help="videotestsrc pattern, e.g. smpte")
    parser.add_argument(
        "--scroll", type=int, default=0, help="pixels per frame the picture scrolls sideways"
    )
    args = parser.parse_args()

    Gst.init(None)
    launch = (
        f"( videotestsrc is-live=true pattern={args.pattern} horizontal-speed={args.scroll} "
        f"! video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420 "
        # Short GOP so a client that (re)connects gets a keyframe quickly.
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on port {args.port}\n")
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    sys.stdout.write(f"READY {server.get_bound_port()}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
