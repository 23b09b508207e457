"""``stream-classify bench`` flags: which rows and which attacks a run measures."""

from __future__ import annotations

import argparse

import pytest

from streaming.bench.bench_cli import _rows, add_arguments
from streaming.bench.settings import ALL_ROWS, ATTACK_ROW


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "argv, rows, kinds",
    [
        ([], ALL_ROWS, None),
        (["--rows", "2,3"], (2, 3), None),
        (["--attacks"], (ATTACK_ROW,), ()),  # every attack
        (["--attacks", "all"], (ATTACK_ROW,), ()),
        (["--attacks", "never_reading,legacy_flood"], (ATTACK_ROW,), ("never_reading", "legacy_flood")),
        (["--rows", "3", "--attacks", "cancel_storm"], (3, ATTACK_ROW), ("cancel_storm",)),
    ],
)  # fmt: skip
def test_rows_and_attack_kinds(
    argv: list[str], rows: tuple[int, ...], kinds: tuple[str, ...] | None
) -> None:
    args = _parse(*argv)
    assert _rows(args.rows, args.attacks is not None, ALL_ROWS, ATTACK_ROW) == rows
    assert args.attacks == kinds


def test_an_unknown_attack_is_refused_with_the_known_ones() -> None:
    with pytest.raises(argparse.ArgumentError, match="unknown attack 'flood'.*never_reading"):
        _parse("--attacks", "never_reading,flood")
