"""The `classify` command's row: a folder of JPEG files through one LOSSLESS stream, end to end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from streaming.bench.harness import Harness
from streaming.bench.processes import BenchError, python_module
from streaming.bench.results import Row

_SUMMARY = re.compile(r"classified (\d+) image\(s\) in ([\d.]+) s \(([\d.]+) images/s\)")


def _classify_images(h: Harness) -> Path:
    """640x480 camera-like JPEG files, made once per run."""
    import cv2

    folder = h.scratch / "classify-images"
    if folder.exists():
        return folder
    folder.mkdir()
    rng = np.random.default_rng(5)
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    for i in range(h.s.classify_images):
        image = np.empty((480, 640, 3), np.float32)
        image[:] = ramp[None, :, None]
        image += rng.normal(0, 25, (480, 640, 3)).astype(np.float32) + rng.integers(-60, 60, 3)
        cv2.imwrite(str(folder / f"img{i:04d}.jpg"), np.clip(image, 0, 255).astype(np.uint8))
    return folder


def classify_row(h: Harness, address: str, key: str = "classify", server: str = "") -> Row:
    """`stream-classify classify` on a folder of 640x480 JPEGs: one LOSSLESS stream, end to end."""
    folder = _classify_images(h)
    log_path = h.log_dir / f"{key}.log"
    args = python_module(
        "streaming", "classify", str(folder), "--server", address, "--format", "csv"
    )
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("classify overran its 300 s deadline") from exc
    log_path.write_text(done.stderr)
    match = _SUMMARY.search(done.stderr)
    if done.returncode != 0 or match is None:
        raise BenchError(f"classify failed with exit code {done.returncode} (log: {log_path})")
    rows = done.stdout.strip().splitlines()[1:]
    in_order = [line.split(",", 1)[0].rsplit("/", 1)[-1] for line in rows] == sorted(
        p.name for p in folder.iterdir()
    )
    return Row(
        key=key,
        name=f"5. `classify` command, 1 stream{server}",
        setup=f"{h.s.classify_images} JPEG 640x480 files: read, decode, resize, RAW, LOSSLESS",
        fps=float(match.group(3)),
        extra={
            "images": int(match.group(1)),
            "seconds": float(match.group(2)),
            "in_order": in_order,
        },
        note=f"{len(rows)} results printed, in order: {in_order}",
    )
