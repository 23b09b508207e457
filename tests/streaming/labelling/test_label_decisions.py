"""The label page's pure rules: replay, conflicts, undo, leases, which frame comes next."""

from __future__ import annotations

import pytest

from streaming.labelling.label_decisions import (
    Decision,
    DecisionBook,
    Leases,
    check_label_name,
    pick,
)
from streaming.labelling.labelling_errors import DecisionConflict


def d(frame: str, action: str, label: str | None = None, page: str = "p") -> Decision:
    return Decision(frame, action, label, 1.0, page)  # type: ignore[arg-type]


def book_of(*decisions: Decision) -> DecisionBook:
    book = DecisionBook()
    for decision in decisions:
        book.replay(decision)
    return book


@pytest.mark.parametrize(
    ("lines", "assigned", "skipped", "applied"),
    [
        ([], {}, 0, []),
        ([d("a", "assign", "x")], {"a": "x"}, 0, [True]),
        ([d("a", "skip")], {}, 1, [True]),
        ([d("a", "assign", "x"), d("a", "undo", "x")], {}, 0, [True, True]),
        ([d("a", "skip"), d("a", "undo")], {}, 0, [True, True]),
        # undone, then decided again: the new decision stands
        ([d("a", "assign", "x"), d("a", "undo", "x"), d("a", "assign", "y")], {"a": "y"}, 0,
         [True, True, True]),
        # a second decision on a decided frame never stands (only a hand edit can write it)
        ([d("a", "assign", "x"), d("a", "assign", "y")], {"a": "x"}, 0, [True, False]),
        ([d("a", "skip"), d("a", "assign", "y")], {}, 1, [True, False]),
        # an undo of nothing is ignored, and does not eat the next decision
        ([d("a", "undo"), d("a", "assign", "x")], {"a": "x"}, 0, [False, True]),
        ([d("a", "assign", "x"), d("b", "assign", "x"), d("c", "skip")], {"a": "x", "b": "x"}, 1,
         [True, True, True]),
    ],
)  # fmt: skip
def test_replay(
    lines: list[Decision], assigned: dict[str, str], skipped: int, applied: list[bool]
) -> None:
    book = DecisionBook()
    assert [book.replay(line) for line in lines] == applied
    assert book.assigned() == assigned
    assert book.skipped == skipped
    assert book.ever == {line.id for line in lines}


@pytest.mark.parametrize(
    ("before", "decision", "conflict"),
    [
        ([], d("a", "assign", "x"), None),
        ([], d("a", "skip"), None),
        ([], d("a", "undo"), "frame a has no decision to undo"),
        ([d("a", "assign", "x")], d("a", "assign", "x"), "frame a was already labelled x"),
        ([d("a", "assign", "x")], d("a", "skip"), "frame a was already labelled x"),
        ([d("a", "skip")], d("a", "assign", "x"), "frame a was already skipped"),
        ([d("a", "assign", "x")], d("a", "undo", "x"), None),
        ([d("a", "assign", "x"), d("a", "undo", "x")], d("a", "undo", "x"),
         "frame a has no decision to undo"),
        ([d("a", "assign", "x")], d("b", "assign", "x"), None),
    ],
)  # fmt: skip
def test_check(before: list[Decision], decision: Decision, conflict: str | None) -> None:
    book = book_of(*before)
    if conflict is None:
        book.check(decision)
    else:
        with pytest.raises(DecisionConflict, match=conflict):
            book.check(decision)


@pytest.mark.parametrize(
    ("before", "page", "last"),
    [
        ([], "p", None),
        ([d("a", "assign", "x", "p"), d("b", "skip", None, "q")], "p", "a"),
        ([d("a", "assign", "x", "p"), d("b", "skip", None, "q")], "q", "b"),
        ([d("a", "assign", "x", "p"), d("b", "skip", None, "q")], None, "b"),
        # an undone decision is no longer the last one: the one before it is
        ([d("a", "assign", "x"), d("b", "assign", "y"), d("b", "undo", "y")], "p", "a"),
        # re-decided after an undo: it is the newest again
        ([d("a", "assign", "x"), d("b", "assign", "y"), d("a", "undo", "x"),
          d("a", "skip")], "p", "a"),
    ],
)  # fmt: skip
def test_last_standing_decision(before: list[Decision], page: str | None, last: str | None) -> None:
    found = book_of(*before).last(page)
    assert (found.id if found else None) == last


def test_undo_line_names_the_label_taken_back() -> None:
    book = book_of(d("a", "assign", "x"), d("b", "skip"))
    assert book.undo_of("a", 5.0, "p") == Decision("a", "undo", "x", 5.0, "p")
    assert book.undo_of("b", 5.0) == Decision("b", "undo", None, 5.0)
    with pytest.raises(DecisionConflict):
        book.undo_of("c", 5.0)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"id": "a", "action": "assign", "label": "x", "time": 1}, None),
        ({"id": "a", "action": "skip", "label": None, "time": 1}, None),
        ({"id": "a", "action": "undo", "label": "x", "time": 1, "page": "p"}, None),
        ({"id": "a", "action": "assign", "time": 1}, "needs a label"),
        ({"id": "a", "action": "skip", "label": "x", "time": 1}, "a skip has no label"),
        ({"id": "a", "action": "delete", "time": 1}, "action must be one of"),
        ({"id": "../a", "action": "skip", "time": 1}, "bad frame id"),
        ({"id": "a", "action": "assign", "label": "../x", "time": 1}, "cannot be a label"),
        ({"id": "a", "action": "skip", "time": "soon"}, "could not convert"),
        ({"action": "skip", "time": 1}, "no 'id' field"),
        (["a"], "not a JSON object"),
    ],
)
def test_decision_lines(data: object, error: str | None) -> None:
    if error is None:
        decision = Decision.from_json(data)
        assert Decision.from_json(decision.to_json()) == decision
    else:
        with pytest.raises(ValueError, match=error):
            Decision.from_json(data)


@pytest.mark.parametrize(
    ("label", "ok"),
    [("program", True), ("color bars", True), ("ident-2", True), ("", False), (".hidden", False),
     ("a/b", False), ("a\\b", False), (" padded", False), ("tab\t", False), ("x" * 101, False)],
)  # fmt: skip
def test_label_names_must_be_folder_names(label: str, ok: bool) -> None:
    if ok:
        assert check_label_name(label) == label
    else:
        with pytest.raises(ValueError):
            check_label_name(label)


NOW = 1000.0


@pytest.mark.parametrize(
    ("changes", "expected_holders"),
    [
        # one lease per page: a new grant replaces the page's old one
        ([("p", "a", 10)], {"a": "p"}),
        ([("p", "a", 10), ("p", "b", 10)], {"a": None, "b": "p"}),
        ([("p", "a", 10), ("q", "b", 10)], {"a": "p", "b": "q"}),
        # a page letting go
        ([("p", "a", 10), ("p", None, 10)], {"a": None}),
        # expired leases hold nothing
        ([("p", "a", -1)], {"a": None}),
    ],
)
def test_leases(
    changes: list[tuple[str, str | None, float]], expected_holders: dict[str, str | None]
) -> None:
    leases = Leases()
    for page, frame, duration in changes:
        leases = leases.grant(page, frame, NOW, duration)
    assert {f: leases.holder(f, NOW) for f in expected_holders} == expected_holders
    assert Leases.from_json(leases.to_json()) == leases


def test_unreadable_leases_count_as_none() -> None:
    assert Leases.from_json([1, 2]) == Leases()
    assert Leases.from_json(
        {"p": {"frame": "a"}, "q": {"frame": "b", "until": 5}}
    ).by_page.keys() == {"q"}


ORDER = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("decided", "leased", "direction", "after", "expected"),
    [
        ([], {}, "current", None, "a"),
        (["a"], {}, "current", None, "b"),
        # another page's frame is passed over; an expired lease is not
        ([], {"q": ("a", 10)}, "current", None, "b"),
        ([], {"q": ("a", -1)}, "current", None, "a"),
        # the page's own lease survives a reload; the frame it shows is kept while free
        ([], {"p": ("c", 10)}, "current", None, "c"),
        ([], {"p": ("c", 10)}, "current", "b", "b"),
        (["b"], {"p": ("c", 10)}, "current", "b", "c"),
        ([], {"q": ("b", 10)}, "current", "b", "a"),
        # next/prev wrap around and skip what is taken
        ([], {}, "next", "a", "b"),
        (["b"], {}, "next", "a", "c"),
        ([], {"q": ("b", 10)}, "next", "a", "c"),
        ([], {}, "next", "d", "a"),
        ([], {}, "prev", "a", "d"),
        ([], {}, "prev", "c", "b"),
        (["a", "b", "d"], {}, "next", "c", "c"),  # the only one left is the one shown
        (["a", "b", "c", "d"], {}, "next", "c", None),
        ([], {}, "next", "zz", "a"),  # a frame not in the order: from the start
        (["a", "b", "c"], {"q": ("d", 10)}, "current", None, None),
    ],
)
def test_pick(
    decided: list[str],
    leased: dict[str, tuple[str, float]],
    direction: str,
    after: str | None,
    expected: str | None,
) -> None:
    book = book_of(*(d(frame, "skip") for frame in decided))
    leases = Leases()
    for page, (frame, duration) in leased.items():
        leases = leases.grant(page, frame, NOW, duration)
    chosen = pick(ORDER, book, leases, "p", NOW, direction=direction, after=after)  # type: ignore[arg-type]
    assert chosen == expected


def test_pick_refuses_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        pick(ORDER, DecisionBook(), Leases(), "p", NOW, direction="up")  # type: ignore[arg-type]
