"""The label page's state over real folders: decisions, copies, undo, two pages, restarts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streaming.labelling.label_decisions import Decision
from streaming.labelling.label_session import LabelSession, LabelSettings, PageConflict
from streaming.labelling.labelling_errors import SetupError, UnknownFrame, UnknownLabel

from .collected import Collected, write_collected


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collected(tmp_path: Path) -> Collected:
    return write_collected(tmp_path / "collected", 6)


@pytest.fixture
def open_session(
    tmp_path: Path, collected: Collected, clock: Clock
) -> Iterator[Callable[..., LabelSession]]:
    sessions: list[LabelSession] = []

    def make(**settings: object) -> LabelSession:
        values: dict[str, object] = {"extra_labels": ("ident",), **settings}
        session = LabelSession(
            LabelSettings(collected.folder, tmp_path / "out", **values),  # type: ignore[arg-type]
            clock=clock,
        )
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def lines(out: Path) -> list[dict[str, object]]:
    path = out / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tree(out: Path) -> set[str]:
    return {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "decisions.jsonl"
    }


def test_assign_skip_undo_write_the_tree_and_the_file(
    tmp_path: Path, collected: Collected, open_session: Callable[..., LabelSession]
) -> None:
    out = tmp_path / "out"
    session = open_session()
    first, second, third = collected.by_score()[:3]

    # given the first frame, lowest score first
    view = session.show("p")
    assert view.frame is not None and view.frame.id == first
    assert session.labels == ("program", "black", "color_bars", "ident")

    # when it is labelled, the next is skipped, the third labelled, and the last undone
    assert session.decide("p", first, "ident").frame.id == second  # type: ignore[union-attr]
    assert session.decide("p", second, None).frame.id == third  # type: ignore[union-attr]
    session.decide("p", third, "black")
    undone = session.undo("p")

    # then the undone frame is shown again and the tree holds exactly the standing copy
    assert undone.frame is not None and undone.frame.id == third
    assert tree(out) == {f"ident/{first}.jpg"}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ident"]  # black/ went too
    assert (out / "ident" / f"{first}.jpg").read_bytes() == (
        collected.folder / "frames" / f"{first}.jpg"
    ).read_bytes()
    assert [(d["id"], d["action"], d["label"]) for d in lines(out)] == [
        (first, "assign", "ident"),
        (second, "skip", None),
        (third, "assign", "black"),
        (third, "undo", "black"),
    ]
    state = session.state()
    assert state["counts"] == {"program": 0, "black": 0, "color_bars": 0, "ident": 1}
    assert (state["skipped"], state["left"], state["collected"]) == (1, 4, 6)


def test_bad_requests(collected: Collected, open_session: Callable[..., LabelSession]) -> None:
    session = open_session()
    with pytest.raises(UnknownLabel):
        session.decide("p", collected.ids()[0], "snow")
    with pytest.raises(UnknownFrame):
        session.decide("p", "cam9-000001", "black")
    with pytest.raises(PageConflict, match="nothing to undo"):
        session.undo("p")


def test_two_processes_never_decide_one_frame_twice(
    tmp_path: Path, collected: Collected, open_session: Callable[..., LabelSession], clock: Clock
) -> None:
    # given two sessions on one output folder, as two `label` processes would be
    one, two = open_session(), open_session()

    # when each page asks for a frame, they are handed different ones (leases)
    a = one.show("page-a").frame
    b = two.show("page-b").frame
    assert a is not None and b is not None and a.id != b.id

    # when page a's lease runs out, another page is handed its frame
    two.decide("page-b", b.id, "black")
    assert two.show("page-c").frame.id not in (a.id, b.id)  # type: ignore[union-attr]
    clock.now += 121
    assert two.show("page-d").frame.id == a.id  # type: ignore[union-attr]
    two.decide("page-d", a.id, "program")

    # then page a, late, cannot label it again: 409 with the next frame to show
    with pytest.raises(PageConflict, match="already labelled program") as caught:
        one.decide("page-a", a.id, "ident")
    assert caught.value.view.frame is not None and caught.value.view.frame.id not in (a.id, b.id)
    assert [d["id"] for d in lines(tmp_path / "out")] == [b.id, a.id]
    assert tree(tmp_path / "out") == {f"black/{b.id}.jpg", f"program/{a.id}.jpg"}
    assert one.state()["counts"]["program"] == 1  # it replays what the other wrote


def test_undo_takes_back_this_pages_last_decision_first(
    collected: Collected, open_session: Callable[..., LabelSession]
) -> None:
    session = open_session()
    first, second = collected.by_score()[:2]
    session.decide("p", first, "black")
    session.decide("q", second, "black")
    assert session.undo("p").decision.id == first  # type: ignore[union-attr]
    assert session.undo("p").decision.id == second  # none of its own left: the last of all
    with pytest.raises(PageConflict, match="has no decision to undo"):
        session.undo("p", first)


def test_restart_replays_and_puts_the_tree_back_in_line(
    tmp_path: Path, collected: Collected, open_session: Callable[..., LabelSession]
) -> None:
    out = tmp_path / "out"
    ids = collected.ids()
    session = open_session()
    session.decide("p", ids[0], "black")
    session.decide("p", ids[1], "program")
    session.close()
    # given the states a killed process can leave: a copy made but its line never written
    # (ids[2]), a line written but the copy not moved into place (ids[3]), an undo written but
    # its copy not removed (ids[1]), a torn last line
    (out / "program" / f".{ids[2]}.jpg.part").write_bytes(b"half")
    (out / "black" / f"{ids[5]}.jpg").write_bytes(b"added by hand: not ours")
    with (out / "decisions.jsonl").open("a") as file:
        file.write(json.dumps(Decision(ids[3], "assign", "ident", 2.0).to_json()) + "\n")
        file.write(json.dumps(Decision(ids[1], "undo", "program", 3.0).to_json()) + "\n")
        file.write('{"id": "cam1-0000')

    # when it starts again
    again = open_session()

    # then the tree is what the decisions say, hand-added files left alone
    assert tree(out) == {f"black/{ids[0]}.jpg", f"ident/{ids[3]}.jpg", f"black/{ids[5]}.jpg"}
    assert again.state()["counts"] == {"program": 0, "black": 1, "color_bars": 0, "ident": 1}
    # and the next decision is a line of its own after the torn one
    again.decide("p", ids[4], "black")
    text = (out / "decisions.jsonl").read_text().splitlines()
    assert text[-2] == '{"id": "cam1-0000' and json.loads(text[-1])["id"] == ids[4]
    fresh = open_session()
    assert fresh.state()["counts"]["black"] == 2


def test_vanished_images_are_passed_over_and_an_undo_puts_one_back(
    collected: Collected, open_session: Callable[..., LabelSession], clock: Clock, tmp_path: Path
) -> None:
    session = open_session()
    order = collected.by_score()
    frames = collected.folder / "frames"
    session.decide("p", order[0], "black")
    # given the collector's disk cap deleting the next frame and the labelled one
    (frames / f"{order[1]}.jpg").unlink()
    (frames / f"{order[0]}.jpg").unlink()
    clock.now += 5

    # then the page is handed the frame after, and "left" no longer counts the lost one
    assert session.show("p").frame.id == order[2]  # type: ignore[union-attr]
    assert session.state()["left"] == 4
    # the labelled frame's image is still served, from its copy
    assert session.image(order[0]) == tmp_path / "out" / "black" / f"{order[0]}.jpg"

    # when its decision is undone, the copy goes back where the collector had it
    undone = session.undo("p")
    assert undone.frame is not None and undone.frame.id == order[0]
    assert (frames / f"{order[0]}.jpg").exists()
    assert not (tmp_path / "out" / "black" / f"{order[0]}.jpg").exists()


def test_frames_collected_while_the_page_runs_appear(
    collected: Collected, open_session: Callable[..., LabelSession]
) -> None:
    session = open_session(order="time")
    for frame_id in collected.ids():
        session.decide("p", frame_id, None)
    assert session.show("p").frame is None
    write_collected(collected.folder, 2, start=6)
    shown = session.show("p").frame
    assert shown is not None and shown.id == "cam1-000006"
    assert session.state()["left"] == 2


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("no_log", "has no collected.jsonl"),
        ("no_labels", "no labels"),
        ("bad_model_label", "model label '../x'"),
    ],
)
def test_setup_errors(tmp_path: Path, setup: str, error: str) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    if setup != "no_log":
        write_collected(folder, 1, labels=None)
    if setup == "bad_model_label":
        (folder / "labels.txt").write_text("black\n../x\n")
    with pytest.raises(SetupError, match=error):
        LabelSession(LabelSettings(folder, tmp_path / "out"))


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"order": "random"}, "order must be one of"),
        ({"lease_s": 0}, "lease"),
        ({"extra_labels": ("a/b",)}, "cannot be a label"),
    ],
)
def test_bad_settings(tmp_path: Path, settings: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        LabelSettings(tmp_path, tmp_path / "out", **settings)  # type: ignore[arg-type]
