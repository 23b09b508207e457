"""Kill ``stream-classify label`` mid-session, start it again: nothing lost, nothing doubled."""

from __future__ import annotations

import http.client
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
    in_flight: list[str] = []  # the frame of the call the kill may have cut (its fate unknown)
    stop = threading.Event()

    def labeller() -> None:
        status, view = first.call("api/show", {"page": "p"})
        n = 0
        while not stop.is_set() and view.get("frame"):
            frame_id = view["frame"]["id"]
            n += 1
            label = None if n % 5 == 0 else LABELS[n % 3]
            body = {"page": "p", "id": frame_id, "action": "skip" if label is None else "assign"}
            in_flight[:] = [frame_id]
            try:
                status, view = first.call("api/decide", {**body, "label": label})
                assert status == 200, view
                acknowledged[frame_id] = label
                if n % 7 == 0:  # an undo now and then
                    status, undone = first.call("api/undo", {"page": "p"})
                    assert status == 200
                    del acknowledged[frame_id]
                    view = undone
            except (OSError, http.client.HTTPException):
                return  # killed under us
            in_flight.clear()

    worker = threading.Thread(target=labeller, daemon=True)
    worker.start()

    # when it is killed mid-session (SIGKILL, after some decisions, while it takes more)
    from tests.support import wait_until

    wait_until(lambda: len(acknowledged) >= 15, 60, message=lambda: f"{len(acknowledged)} decided")
    first.kill()
    stop.set()
    worker.join(timeout=30)

    # then every acknowledged decision is on disk, each frame decided once; only the frame of
    # the call cut by the kill may be either way
    on_disk = standing(out)
    sure = {k: v for k, v in acknowledged.items() if k not in in_flight}
    assert sure.items() <= on_disk.items()
    assert set(on_disk) - set(sure) <= set(in_flight)

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


@pytest.mark.timeout(180)
def test_two_processes_racing_on_one_dataset_never_decide_a_frame_twice(tmp_path: Path) -> None:
    # given two label processes on the same output folder, with leases too short to help
    collected = write_collected(tmp_path / "collected", 40)
    out = tmp_path / "out"
    pages = [LabelProcess(collected.folder, out, "--lease-s", "0.001") for _ in range(2)]
    won: list[list[str]] = [[], []]
    refused = [0, 0]

    def race(i: int) -> None:
        # each page tries every frame, in the same order as the other: they collide all along
        for frame_id in collected.ids():
            body = {"page": f"p{i}", "id": frame_id, "action": "assign", "label": LABELS[i]}
            status, view = pages[i].call("api/decide", body)
            if status == 200:
                won[i].append(frame_id)
            else:
                assert status == 409 and "already labelled" in view["error"], view
                refused[i] += 1

    try:
        # when both label every frame at once
        threads = [threading.Thread(target=race, args=(i,), daemon=True) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for page in pages:
            page.kill()

    # then each frame went to exactly one of them, and the tree says the same
    assert sorted(won[0] + won[1]) == sorted(collected.ids())
    assert refused == [len(won[1]), len(won[0])]
    final = standing(out)
    assert final == {f: LABELS[0] for f in won[0]} | {f: LABELS[1] for f in won[1]}
    assert copies(out) == final
