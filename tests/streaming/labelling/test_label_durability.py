"""Kill ``stream-classify label`` mid-session, start it again: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from .collected import write_collected
from .label_process import LabelProcess

pytestmark = pytest.mark.slow

LABELS = ("program", "black", "color_bars")


def standing(out: Path) -> dict[str, str | None]:
    """Replay decisions.jsonl by hand: frame id to its standing label (None: skipped)."""
    decided: dict[str, str | None] = {}
    for line in (out / "decisions.jsonl").read_text().splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by the kill
        if d["action"] == "undo":
            assert d["id"] in decided, f"undo of an undecided frame: {d}"
            del decided[d["id"]]
        else:
            assert d["id"] not in decided, f"frame decided twice: {d}"
            decided[d["id"]] = d["label"]
    return decided


def copies(out: Path) -> dict[str, str]:
    found = {}
    for path in out.glob("*/*.jpg"):
        assert path.stem not in found, f"{path.stem} copied twice"
        found[path.stem] = path.parent.name
    return found


@pytest.mark.timeout(180)
def test_kill_mid_session_and_restart(tmp_path: Path) -> None:
    # given 60 collected frames and a label process deciding them as fast as it can
    collected = write_collected(tmp_path / "collected", 60)
    out = tmp_path / "out"
    first = LabelProcess(collected.folder, out)
    acknowledged: dict[str, str | None] = {}
    stop = threading.Event()

    def labeller() -> None:
        status, view = first.call("api/show", {"page": "p"})
        n = 0
        while not stop.is_set() and view.get("frame"):
            frame_id = view["frame"]["id"]
            n += 1
            label = None if n % 5 == 0 else LABELS[n % 3]
            body = {"page": "p", "id": frame_id, "action": "skip" if label is None else "assign"}
            try:
                status, view = first.call("api/decide", {**body, "label": label})
            except OSError:
                return  # killed under us
            assert status == 200, view
            acknowledged[frame_id] = label
            if n % 7 == 0:  # an undo now and then
                try:
                    status, view = first.call("api/undo", {"page": "p"})
                except OSError:
                    return
                assert status == 200
                del acknowledged[frame_id]

    worker = threading.Thread(target=labeller, daemon=True)
    worker.start()

    # when it is killed mid-session (SIGKILL, after some decisions, while it takes more)
    from tests.support import wait_until

    wait_until(lambda: len(acknowledged) >= 15, 60, message=lambda: f"{len(acknowledged)} decided")
    first.kill()
    stop.set()
    worker.join(timeout=30)

    # then every acknowledged decision is on disk, each frame decided once
    on_disk = standing(out)
    assert acknowledged.items() <= on_disk.items()
    assert len(on_disk) - len(acknowledged) <= 1  # the one in flight at the kill, if any

    # when it starts again
    second = LabelProcess(collected.folder, out)
    try:
        # then the tree is exactly the decisions, and the page counts them
        assigned = {k: v for k, v in standing(out).items() if v is not None}
        assert copies(out) == assigned
        # (the same tab, reloaded: its lease on the frame it showed survived too)
        status, view = second.call("api/show", {"page": "p"})
        assert status == 200
        assert view["state"]["left"] == 60 - len(on_disk)
        assert sum(view["state"]["counts"].values()) == len(assigned)

        # and labelling the rest decides every frame exactly once
        while view["frame"] is not None:
            status, view = second.call(
                "api/decide",
                {"page": "p", "id": view["frame"]["id"], "action": "assign", "label": "black"},
            )
            assert status == 200
        printed = second.stop()
    finally:
        second.kill()
    final = standing(out)
    assert set(final) == set(collected.ids())
    assert copies(out) == {k: v for k, v in final.items() if v is not None}
    lines = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines() if x]
    net = Counter(d["id"] for d in lines if d["action"] != "undo")
    net.subtract(Counter(d["id"] for d in lines if d["action"] == "undo"))
    assert set(net.values()) == {1}
    assert "labelled: program" in printed and "left 0" in printed
