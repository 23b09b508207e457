"""Row 13: a new model version swapped in under the load of row 5 at 32 streams.

The server serves ``--model-dir`` with version 1 (the model under test); a third of the way into
the measuring window the row publishes version 2 (the same model, copied by the ready rule). The
server loads and warms it up in the background while version 1 keeps serving, then swaps between
two batches. The loading takes CPU from serving on a small machine, so throughput dips; the row
counts what the dip cost, in seconds of full throughput:

    cost = sum over the slices after publishing of (baseline - answered in the slice) / baseline

with the baseline the mean of the slices before publishing (1-second slices), and sets it beside
the load and warm-up time the server logged for version 2 ("model version 2 loaded in X s").
The issue's rule: the swap costs at most the warm-up's duration.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from streaming.bench.harness import Harness, load_row
from streaming.bench.processes import BenchError
from streaming.bench.results import Row

_LOADED = re.compile(r"model version 2 loaded in ([0-9.]+) s")
_BEFORE_SLICES = 3  # full slices before the publish needed for a baseline


def publish(root: Path, number: int, model: Path, classes: int) -> None:
    """Version ``number`` by the ready rule: the model first, the labels file last."""
    directory = root / str(number)
    directory.mkdir(parents=True)
    destination = directory / f"model{model.suffix}"
    if model.is_dir():  # a SavedModel
        shutil.copytree(model, directory, dirs_exist_ok=True)
    else:
        shutil.copyfile(model, destination)
    (directory / "labels.txt").write_text("".join(f"class_{i}\n" for i in range(classes)))


def swap_cost(counts: tuple[int, ...], slice_s: float, first_after: int) -> tuple[float, float]:
    """(baseline frames/s, seconds of full throughput lost from slice ``first_after`` on).

    The partial slice the publish fell in counts as 'after' (it may hold the start of the dip).

    Raises:
        BenchError: too few slices before the publish, or none answered.
    """
    before = counts[:first_after]
    if len(before) < _BEFORE_SLICES or not sum(before):
        raise BenchError(
            f"the publish came {len(before)} slices into the window: no baseline before it"
        )
    baseline = sum(before) / len(before)
    lost = sum(baseline - count for count in counts[first_after:])
    return baseline / slice_s, lost / baseline * slice_s


def swap_row(h: Harness) -> Row:
    root = h.scratch / "swap-model-dir"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    model = h.model
    publish(root, 1, model.path, model.num_classes)
    streams = h.s.latency_streams
    duration = max(12.0, 3 * h.s.duration_s)
    flags = ["--model-dir", str(root), "--model-poll-s", "0.5", "--max-batch", str(h.s.max_batch)]
    if h.s.input_size:
        flags += ["--input-size", "x".join(map(str, h.s.input_size))]
    published_ns: list[int] = []
    log_path = h.log_dir / "server-swap.log"
    with h.serving("swap", *flags, log_level="INFO") as server:
        spec = h.spec(server.address, streams, duration_s=duration, slices=int(duration))
        opened_before = log_path.read_text(errors="replace").count(" opened:")
        stop = threading.Event()

        def publish_in_window() -> None:
            # The load generator's clock starts as it opens its streams (the server logs each):
            # its window opens ``warmup_s`` later.
            while log_path.read_text(errors="replace").count(" opened:") == opened_before:
                if stop.wait(0.05):
                    return
            if not stop.wait(spec.warmup_s + duration / 3):
                published_ns.append(time.perf_counter_ns())
                publish(root, 2, model.path, model.num_classes)

        publisher = threading.Thread(target=publish_in_window, name="publish-v2", daemon=True)
        publisher.start()
        try:
            run = h.load(spec, "swap")
        finally:
            stop.set()
            publisher.join(timeout=10)
        log = log_path.read_text(errors="replace")
    loaded = _LOADED.findall(log)
    if not published_ns or not loaded:
        raise BenchError("version 2 was not loaded during the run (see server-swap.log)")
    result = run.result
    slice_s = duration / len(result.answered_by_slice)
    first_after = int((published_ns[0] - result.window_start_ns) / 1e9 // slice_s)
    fps, cost_s = swap_cost(result.answered_by_slice, slice_s, first_after)
    warm_up_s = float(loaded[-1])
    row = load_row(
        "swap",
        f"13. Model swap under load, {streams} streams",
        f"row 5 @{streams} shape with --model-dir; version 2 (same model) published "
        f"{first_after * slice_s:.0f} s into a {duration:.0f} s window",
        run,
        baseline_fps=fps,
        swap_cost_s=cost_s,
        load_and_warm_up_s=warm_up_s,
        answered_by_slice=list(result.answered_by_slice),
        publish_slice=first_after,
    )
    row.note = (
        f"swap cost {cost_s:.1f} s of full throughput; version 2 loaded and warmed up in "
        f"{warm_up_s:.1f} s ({'within' if cost_s <= warm_up_s else 'over'} it)"
    )
    if cost_s < 0:  # more answered after the publish than before: the dip is inside the drift
        row.note += "; negative: no dip beyond the machine's drift"

    return row
