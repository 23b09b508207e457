"""The committed stubs are exactly what grpcio-tools makes from proto/ (no hand edits, no drift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROTOS = sorted((ROOT / "proto").rglob("*.proto"))


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: p.name)
def test_generated_stubs_are_up_to_date(proto: Path, tmp_path: Path) -> None:
    # In a subprocess: protoc in-process shares (and can corrupt) the loaded descriptor pool.
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{ROOT / 'proto'}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(proto),
    ]
    subprocess.run(args, check=True, timeout=60)
    relative = proto.relative_to(ROOT / "proto").with_suffix("")
    for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
        generated = tmp_path / f"{relative}{suffix}"
        committed = ROOT / f"{relative}{suffix}"
        assert committed.read_text() == generated.read_text(), (
            f"{committed} is stale: run `make proto`"
        )


def test_the_wire_contract_keeps_its_names_and_numbers() -> None:
    from client.api.v1 import stream_classifier_pb2 as pb

    fields = {f.name: f.number for f in pb.ClassifyResponse.DESCRIPTOR.fields}
    assert fields == {
        "seq": 1,
        "label": 2,
        "score": 3,
        "probabilities": 4,
        "frame_label": 5,
        "frame_score": 6,
        "top_k": 7,
        "window_frames": 8,
        "dropped_frames": 9,
        "batch_size": 10,
        "queue_us": 11,
        "inference_us": 12,
        "capture_time_us": 13,
        "error": 14,
        "probabilities_f32": 15,
    }
    config = {f.name: f.number for f in pb.StreamConfig.DESCRIPTOR.fields}
    assert config == {
        "client_id": 1,
        "source": 2,
        "window": 3,
        "delivery": 4,
        "top_k": 5,
        "probabilities": 6,
    }
    assert {v.name: v.number for v in pb.ProbabilityFormat.DESCRIPTOR.values} == {
        "PROBABILITIES_REPEATED": 0,  # the default: what clients that predate the field get
        "PROBABILITIES_PACKED": 1,
        "PROBABILITIES_NONE": 2,
    }
    assert (
        pb.DESCRIPTOR.services_by_name["StreamClassifier"].full_name
        == "streamclassify.v1.StreamClassifier"
    )
