"""RTSP server for :mod:`camera_tools.restream`, run by the system Python that has GStreamer.

Not imported by the package: :class:`camera_tools.restream.RtspRestreamer` runs this file with
``/usr/bin/python3`` (Debian's ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0`` live there,
not in the project's virtualenv) and writes frames to its stdin. Only the standard library
and ``gi`` may be used here.

Protocol: stdin carries frames, each a header ``!4sHHHI`` (magic ``FRM1``, slug length,
width, height, payload length), the slug (UTF-8) and ``width*height*3`` BGR bytes. The first
frame of a slug mounts ``/<slug>``. stdout says ``READY <port>`` once listening, or
``ERROR <message>`` and the process exits 3. EOF on stdin stops the server.
"""

from __future__ import annotations

import argparse
import struct
import sys
import threading
from typing import Any

HEADER = struct.Struct("!4sHHHI")
MAGIC = b"FRM1"


def _fail(message: str) -> int:
    sys.stdout.write(f"ERROR {message}\n")
    sys.stdout.flush()
    return 3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--fps", type=int, default=10)
    args = parser.parse_args()
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        return _fail(f"no GStreamer RTSP server bindings ({exc})")
    Gst.init(None)
    encoder = next(
        (
            launch
            for name, launch in (
                (
                    "x264enc",
                    f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps}",
                ),
                ("openh264enc", "openh264enc"),
            )
            if Gst.ElementFactory.find(name) is not None
        ),
        None,
    )
    if encoder is None:
        return _fail("no H.264 encoder (x264enc or openh264enc)")

    lock = threading.Lock()
    latest: dict[str, bytes] = {}  # slug -> newest frame (its size never changes)
    sources: dict[str, list[Any]] = {}  # slug -> appsrc elements of connected clients
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    def mount(slug: str, width: int, height: int) -> bool:
        caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={args.fps}/1"
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( appsrc name=src is-live=true do-timestamp=true format=time caps={caps} "
            f"! videoconvert ! video/x-raw,format=I420 ! {encoder} "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(True)

        def configured(_factory: Any, media: Any) -> None:
            appsrc = media.get_element().get_child_by_name("src")
            with lock:
                sources.setdefault(slug, []).append(appsrc)

        factory.connect("media-configure", configured)
        mounts.add_factory(f"/{slug}", factory)
        with lock:
            sources.setdefault(slug, [])
        return False  # run once (a GLib idle callback)

    def push_all() -> bool:
        # A steady frame rate for players, whatever rate frames are published at.
        with lock:
            work = [
                (slug, latest[slug], list(srcs)) for slug, srcs in sources.items() if slug in latest
            ]
        for slug, data, appsrcs in work:
            for appsrc in appsrcs:
                result = appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
                if result != Gst.FlowReturn.OK:
                    with lock:
                        if appsrc in sources.get(slug, []):
                            sources[slug].remove(appsrc)  # that client's media is gone
        return True

    loop = GLib.MainLoop()

    def read_frames() -> None:
        stdin = sys.stdin.buffer
        try:
            while True:
                head = stdin.read(HEADER.size)
                if len(head) < HEADER.size:
                    break
                magic, slug_len, width, height, size = HEADER.unpack(head)
                if magic != MAGIC or size != width * height * 3:
                    sys.stderr.write("restream: bad frame header, stopping\n")
                    break
                slug = stdin.read(slug_len).decode("utf-8")
                data = stdin.read(size)
                if len(data) < size:
                    break
                with lock:
                    known = slug in latest
                    latest[slug] = data
                if not known:
                    GLib.idle_add(mount, slug, width, height)
        finally:
            GLib.idle_add(loop.quit)

    if server.attach(None) == 0:
        return _fail(f"cannot listen on {args.host}:{args.port}")
    GLib.timeout_add(max(1, 1000 // args.fps), push_all)
    threading.Thread(target=read_frames, daemon=True).start()
    sys.stdout.write(f"READY {server.get_bound_port()}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
