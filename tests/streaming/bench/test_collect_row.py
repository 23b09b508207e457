"""The collect cost row runs ``watch`` with and without ``--collect`` (tiny sizes: it works, no numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streaming.bench.collect_row import CollectSpec, collect_row


@pytest.mark.timeout(300)
def test_collect_row_runs_watch_with_and_without_collect(server: Any, tmp_path: Path) -> None:
    spec = CollectSpec(server=server.address, sources=2, duration_s=2.0, rounds=1, clip_s=6.0)
    row = collect_row(spec, tmp_path)
    assert row.key == "collect"
    assert row.fps is not None and row.fps > 0 and row.extra["fps_without"] > 0
    assert row.extra["ratio"] == pytest.approx(row.fps / row.extra["fps_without"], abs=1e-3)
    # the "with" round really collected, into its own folder
    assert row.extra["kept"][0] > 0
    assert (tmp_path / "collected-0" / "collected.jsonl").exists()
    assert not (tmp_path / "collected-1").exists()
