"""Smoke test of ``stream-classify bench``: it runs end to end and writes a well-formed report.

No benchmark number is asserted: the numbers depend on the machine, not on the code's correctness.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from streaming.bench.attacks import ATTACKS, AttackResult, AttackSpec, run_attack
from streaming.cli import main

pytestmark = [pytest.mark.slow]
QUICK = ("--quick", "--no-profile", "--warmup", "0.1", "--duration", "0.5", "--max-batch", "8")

ROW_NAMES = (
    "1. Model limit",
    "1. Model limit, again after row 5",
    "2. Transport limit",
    "2. Transport limit, server's receive window",
    "2. Transport limit, the real wire answered at once",
    "3. Server overhead",
    "4. One call per frame",
    "5. Server, 1 stream",
    "5. Server, 32 streams JPEG",
    "6. Steady load 80%",
    "7. Overload (LIVE)",
    "8. Peak memory (RSS)",
    "5. `classify` command, 1 stream",
)


def quick_bench(tiny_model: Any, tmp_path: Path, *selection: str) -> dict[str, Any]:
    """``bench --quick`` of the rows ``selection`` picks (row 1 always runs), on the tiny model;
    checks it succeeded and returns its JSON. The table is ``tmp_path / "BENCHMARKS.md"``."""
    json_path = tmp_path / "BENCHMARKS.json"
    code = main(
        ["bench", *QUICK, *selection, "--model", str(tiny_model.model_path),
         "--markdown", str(tmp_path / "BENCHMARKS.md"), "--json", str(json_path),
         "--work-dir", str(tmp_path / "work")]
    )  # fmt: skip
    data: dict[str, Any] = json.loads(json_path.read_text())
    assert code == 0 and data["failures"] == []
    return data


@pytest.mark.timeout(300)
def test_quick_bench_writes_table_and_json(tiny_model: Any, tmp_path: Path) -> None:
    # given: a hand-written note outside the generated block, which a rerun must keep
    markdown, json_path = tmp_path / "BENCHMARKS.md", tmp_path / "BENCHMARKS.json"
    markdown.write_text(
        "# Notes\n\n<!-- bench:begin (x) -->\nold\n<!-- bench:end -->\n\nkept by hand\n"
    )

    # when
    code = main(
        [
            "bench",
            "--quick",
            "--rows",
            "1,2,3,4,5,6,7,8",
            "--model",
            str(tiny_model.model_path),
            "--warmup",
            "0.1",
            "--duration",
            "0.5",
            "--max-batch",
            "8",
            "--markdown",
            str(markdown),
            "--json",
            str(json_path),
            "--work-dir",
            str(tmp_path / "work"),
        ]
    )

    # then
    assert code == 0
    text = markdown.read_text()
    assert text.startswith("# Notes") and text.rstrip().endswith("kept by hand")
    assert "old" not in text.split("<!-- bench:begin")[1]
    for name in ROW_NAMES:
        assert f"| {name} |" in text
    assert "| Target | Rule | Measured | Met |" in text
    assert "TensorFlow" in text and "cores" in text
    data = json.loads(json_path.read_text())
    assert {"machine", "settings", "model", "rows", "targets"} <= data.keys()
    assert data["failures"] == []
    assert all(v["cores"] > 0 for v in data["model"]["per_batch"].values())
    by_key = {row["key"]: row for row in data["rows"]}
    for key in (
        "model",
        "model_after",
        "transport",
        "transport_window",
        "wire_floor",
        "null",
        "one_call",
        "server_32",
        "server_jpeg",
        "classify",
        "classify_null",
        "overload",
    ):
        assert by_key[key]["fps"] > 0
    assert by_key["classify"]["extra"]["in_order"] is True
    # rows 2 and 3 give each side's CPU, so their gap can be split between server and client
    for key in ("transport", "transport_window", "wire_floor", "null"):
        assert (
            by_key[key]["extra"]["server_cores"] > 0 and by_key[key]["extra"]["loadgen_cores"] > 0
        )
    assert "CPU a frame: server" in text

    assert all(t["met"] in (True, False, None) for t in data["targets"])
    batching = next(t for t in data["targets"] if t["name"] == "Batching reaches the model")
    assert "mean of row 1 before and after row 5" in batching["rule"]
    # row 1's best batch may exceed the server's --max-batch: also compared at the same batch
    same = next(t for t in data["targets"] if t["name"] == "Batching reaches the model, same batch")
    assert same["met"] in (True, False) and "the server's --max-batch" in same["rule"]
    assert data["machine"]["cores"] >= 1


# One attack per unit of ``sent``. Every attack runs in its own process, in the bench's child
# (``python -m streaming.bench.attacks``), against a real server in
# tests/streaming/server/adversarial/test_attacks.py; the rows are made by the same code whatever
# the kind, and each kind costs the bench a fresh TensorFlow server.
ROW_ATTACKS = ("never_reading", "cancel_storm", "legacy_flood")


@pytest.mark.timeout(600)
def test_attack_rows_measure_the_load_beside_each_attack(tiny_model: Any, tmp_path: Path) -> None:
    # given: one attack of each unit (frames, streams, calls)
    assert {ATTACKS[kind][0] for kind in ROW_ATTACKS} == {unit for unit, _ in ATTACKS.values()}

    # when: only the attack group (row 1 always runs), those attacks only
    data = quick_bench(tiny_model, tmp_path, "--attacks", ",".join(ROW_ATTACKS))

    # then: a row per attack, whatever the server did (a server that fails an attack is a finding)
    by_key = {row["key"]: row for row in data["rows"]}
    assert set(by_key) == {"model", "attack_baseline", *(f"attack_{kind}" for kind in ROW_ATTACKS)}
    alone = by_key["attack_baseline"]["fps"]
    assert alone > 0
    for kind in ROW_ATTACKS:
        row = by_key[f"attack_{kind}"]
        assert row["name"] == f"9. Beside attack: {kind.replace('_', ' ')}"
        assert row["extra"]["alone_fps"] == alone
        assert row["extra"]["server_peak_rss_mib"] > 0
        assert row["extra"]["attack"]["kind"] == kind
        assert row["extra"]["attack"]["sent"] > 0
        assert row["note"]


@pytest.mark.timeout(300)
def test_onnx_row_serves_the_converted_model_beside_tensorflow(
    tiny_model: Any, tmp_path: Path
) -> None:
    # when: row 12 alone (row 1 always runs)
    data = quick_bench(tiny_model, tmp_path, "--rows", "12")

    # then: the same model measured under each runtime, the ONNX one checked against Keras
    by_key = {row["key"]: row for row in data["rows"]}
    assert set(by_key) == {"model", "onnx_tensorflow", "onnx_onnxruntime"}
    tensorflow, onnx_runtime = by_key["onnx_tensorflow"], by_key["onnx_onnxruntime"]
    assert tensorflow["name"] == "12. TensorFlow, 32 streams" and tensorflow["fps"] > 0
    assert onnx_runtime["name"] == "12. ONNX Runtime, 32 streams" and onnx_runtime["fps"] > 0
    assert tensorflow["extra"]["device"] == "/CPU:0"
    assert onnx_runtime["extra"]["device"] == "onnxruntime CPU"
    assert onnx_runtime["extra"]["max_abs_difference"] <= 1e-3
    assert onnx_runtime["extra"]["vs_tensorflow"] > 0
    for row in (tensorflow, onnx_runtime):
        assert row["extra"]["lost_lossless"] == 0 and row["extra"]["errors"] == 0


@pytest.mark.timeout(300)
def test_processes_row_measures_cpu_per_frame_of_the_whole_tree(
    tiny_model: Any, tmp_path: Path
) -> None:
    # when: row 15 alone (row 1 always runs)
    data = quick_bench(tiny_model, tmp_path, "--rows", "15")

    # then: one row per process count, each with the CPU of its whole tree per answered frame
    by_key = {row["key"]: row for row in data["rows"]}
    assert set(by_key) == {"model", "processes_1", "processes_2"}
    for processes in (1, 2):
        row = by_key[f"processes_{processes}"]
        assert row["extra"]["processes"] == processes
        assert row["fps"] > 0 and row["extra"]["answered_total"] > 0
        assert row["extra"]["tree_cpu_s"] > 0
        assert row["extra"]["frames_per_core_s"] == pytest.approx(
            1000 / row["extra"]["cpu_ms_per_frame"], rel=0.01
        )
    assert (
        "| 15. `serve --processes 2`, CPU per frame |" in (tmp_path / "BENCHMARKS.md").read_text()
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["cancel_storm", "legacy_flood"])
def test_attack_generator_reports_what_it_did(server: Any, kind: str) -> None:
    # given: a real server on loopback, and one attack bounded to 2 s
    spec = AttackSpec(kind, server.address, duration_s=2.0)

    # when
    result = asyncio.run(run_attack(spec))

    # then: the JSON the suite reads comes back whole, and the counts add up
    assert AttackResult.from_json(json.loads(result.to_json())) == result
    assert result.kind == kind and result.unit in ("streams", "calls")
    assert result.sent > 0
    assert 0 <= result.answered <= result.sent
    assert all(count > 0 for count in result.refused.values())
    assert result.seconds >= spec.duration_s


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("starts", "error"), [(1, None), (0, ValueError)])
def test_startup_row_times_serve_to_health_serving(
    tmp_path: Path, starts: int, error: type[Exception] | None
) -> None:
    from streaming.bench.startup_row import startup_row

    if error is not None:
        with pytest.raises(error):
            startup_row(tmp_path, starts)
        return
    row = startup_row(tmp_path, starts)
    assert row.key == "startup" and row.fps is None
    assert len(row.extra["seconds"]) == starts
    assert row.extra["seconds_median"] == row.extra["seconds"][0] > 0
    assert "listening on" in (tmp_path / "server-startup.log").read_text()  # its stderr, kept


@pytest.mark.timeout(300)
def test_swap_row_publishes_a_version_under_load(tiny_model: Any, tmp_path: Path) -> None:
    # when: row 13 alone (row 1 always runs)
    data = quick_bench(tiny_model, tmp_path, "--rows", "13")

    # then: version 2 was loaded inside the window, its cost set beside its warm-up
    swap = next(row for row in data["rows"] if row["key"] == "swap")
    assert swap["fps"] > 0 and swap["extra"]["baseline_fps"] > 0
    assert swap["extra"]["load_and_warm_up_s"] > 0
    assert swap["extra"]["lost_lossless"] == 0 and swap["extra"]["errors"] == 0
    assert any(t["name"].startswith("A model swap") for t in data["targets"])
    assert "13. Model swap under load" in (tmp_path / "BENCHMARKS.md").read_text()
