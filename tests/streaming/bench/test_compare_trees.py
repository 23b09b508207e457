"""compare_trees: the after/before pairs, and one real ABBA round of two servers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from streaming.bench.compare_trees import (
    Pair,
    Side,
    compare,
    compare_loads,
    parse_env,
    server_flags,
    summary,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("before", "after", "ratio"),
    [(100.0, 100.0, 1.0), (200.0, 150.0, 0.75), (80.0, 100.0, 1.25)],
)
def test_pair_ratio(before: float, after: float, ratio: float) -> None:
    assert Pair(before, after).ratio == pytest.approx(ratio)


def test_pair_without_a_before_measurement_has_no_ratio() -> None:
    assert math.isnan(Pair(0.0, 100.0).ratio)


def test_summary_gives_the_median_and_how_many_pairs_went_up() -> None:
    pairs = [Pair(100, 90), Pair(100, 110), Pair(100, 95), Pair(100, 100)]
    got = summary("5", pairs)
    assert got["median_ratio"] == pytest.approx(0.975)
    assert (got["min_ratio"], got["max_ratio"]) == (0.9, 1.1)
    assert (got["after_higher"], got["pairs"]) == (1, 4)


@pytest.mark.parametrize(
    ("row", "model", "expected"),
    [
        ("3", None, ["--null-model", "1000", "--input-size", "224x224"]),
        ("5", Path("m.keras"), ["-la", "m.keras"]),
        ("jpeg", Path("m.keras"), ["-la", "m.keras"]),
    ],
)
def test_server_flags(row: str, model: Path | None, expected: list[str]) -> None:
    flags = server_flags(row, model, 32, 5.0)
    assert flags == [*expected, "--max-batch", "32", "--max-delay-ms", "5.0"]


def test_row_5_needs_a_model() -> None:
    with pytest.raises(ValueError, match="row 5"):
        server_flags("5", None, 32, 5.0)


def test_loads_compared_on_one_server_must_share_its_flags(tmp_path: Path) -> None:
    # row 3 serves the no-op model, row 5 a real one: no one server runs both loads
    with pytest.raises(ValueError, match="different servers"):
        compare_loads(Side(REPO), ("3", "5"), 1, 1.0, Path("m.keras"), tmp_path)


@pytest.mark.parametrize(
    ("items", "expected"),
    [([], {}), (["A=1", "B=x=y"], {"A": "1", "B": "x=y"}), (["A="], {"A": ""})],
)
def test_parse_env(items: list[str], expected: dict[str, str]) -> None:
    assert parse_env(items) == expected


@pytest.mark.parametrize("item", ["A", "=1", ""])
def test_parse_env_refuses_what_is_not_key_value(item: str) -> None:
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_env([item])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_one_round_of_a_tree_against_itself(tmp_path: Path) -> None:
    pairs = compare(
        Side(REPO), Side(REPO), row="3", rounds=1, seconds=1.0, model=None, work=tmp_path
    )
    assert len(pairs) == 2  # AB then BA
    assert all(p.before_fps > 0 and p.after_fps > 0 for p in pairs)
    assert (tmp_path / "server-before.log").exists() and (tmp_path / "server-after.log").exists()
