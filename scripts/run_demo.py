"""`make demo`: serve the embedded broadcast monitor, watch the sample clip, check the segments.

Starts `stream-classify serve` (embedded model) on a free loopback port, runs `stream-classify watch`
on `demo/broadcast_sample.mp4` with every file output under `demo-output/` and the live web view on a
free loopback port (watch prints its URL), prints the segments next to the clip's real cuts, writes
the timeline report (`report.html`, `report.png`), then stops the server with SIGTERM. Exits 1 if a
cut is missed by more than `--tolerance` seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demo" / "broadcast_sample.mp4"
CUTS = ROOT / "demo" / "broadcast_sample.cuts.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(address: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(
                    f"the server exited with status {server.returncode} before serving"
                )
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.25)
    raise SystemExit(f"the server did not start serving within {timeout:.0f} s")


def compare(segments_path: Path, tolerance: float) -> bool:
    """Print found segments beside the real cuts; True when labels match and cuts are within tolerance."""
    truth = json.loads(CUTS.read_text())
    with segments_path.open(newline="") as handle:
        found = list(csv.DictReader(handle))
    print(f"\nsegments ({segments_path.name}) against the clip's real cuts:")
    print(
        f"{'label':<11} {'start':>7} {'end':>7} {'frames':>6} {'score':>5}   {'real cut':<19} {'error':>5}"
    )
    ok = len(found) == len(truth)
    for index in range(max(len(truth), len(found))):
        real = truth[index] if index < len(truth) else None
        seen = found[index] if index < len(found) else None
        error = abs(float(seen["start_s"]) - real["start_s"]) if real and seen else None
        good = (
            error is not None
            and error <= tolerance
            and seen is not None
            and real is not None
            and seen["label"] == real["label"]
        )
        ok = ok and good
        found_text = (
            f"{seen['label']:<11} {float(seen['start_s']):>6.2f}s {float(seen['end_s']):>6.2f}s "
            f"{seen['frames']:>6} {float(seen['mean_score']):>5.2f}"
            if seen
            else f"{'(none)':<41}"
        )
        real_text = f"{real['label']} @ {real['start_s']:.2f}s" if real else "(none)"
        error_text = f"{error:.2f}s" if error is not None else "-"
        print(f"{found_text}   {real_text:<19} {error_text:>5} {'ok' if good else 'MISSED'}")
    verdict = (
        f"all {len(truth)} cuts found within {tolerance:g} s"
        if ok
        else "segments do not match the real cuts"
    )
    print(f"\n{verdict}")
    return ok


def write_timeline_report(output: Path) -> None:
    """The timeline report of the run's segments: one timeline per source, HTML and PNG."""
    from camera_tools.sinks.segments import read_segments
    from camera_tools.timeline_report import build_timelines, write_report

    timelines = build_timelines(read_segments(output / "segments.csv"))
    html, png = output / "report.html", output / "report.png"
    write_report(timelines, html, png_path=png, title="make demo: broadcast_sample.mp4")
    print(f"timeline report of {len(timelines)} source(s): {html} (picture: {png.name})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="seconds a found cut may be off (default %(default)s)",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    bin_dir = Path(sys.executable).parent
    cli = (
        [str(bin_dir / "stream-classify")]
        if (bin_dir / "stream-classify").exists()
        else [sys.executable, "-m", "streaming"]
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    server_log = (args.output / "server.log").open("wb")
    print(
        f"starting the server with the embedded model on {address} (log: {server_log.name})",
        flush=True,
    )
    server = subprocess.Popen([*cli, "serve", "-ip", address], stderr=server_log, env=env)
    try:
        wait_until_serving(address, server, args.startup_timeout)
        watch = [
            *cli, "--log-level", "WARNING", "watch", str(CLIP), "--server", address,
            "--csv", str(args.output / "frames.csv"),
            "--segments", str(args.output / "segments.csv"),
            "--record", str(args.output / "annotated.mp4"),
            "--web", "127.0.0.1:0",
        ]  # fmt: skip
        print(
            f"$ stream-classify watch {CLIP.relative_to(ROOT)} --server {address} --csv ... --segments ... --record ... --web 127.0.0.1:0",
            flush=True,
        )
        result = subprocess.run(watch, env=env, timeout=300)
        if result.returncode != 0:
            print(f"watch exited with status {result.returncode}", file=sys.stderr)
            return result.returncode
        matched = compare(args.output / "segments.csv", args.tolerance)
        write_timeline_report(args.output)
        print(
            f"outputs: {', '.join(sorted(p.name for p in args.output.iterdir()))} in {args.output}"
        )
        return 0 if matched else 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()


if __name__ == "__main__":
    raise SystemExit(main())
