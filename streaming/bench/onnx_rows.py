"""Row 12: the same classifier served from TensorFlow and from ONNX Runtime, side by side.

The model under test (row 1's) is converted to ONNX (``onnx_convert``, checked against Keras),
then each runtime gets a fresh server with the same flags and the load of row 5 at 32 streams,
one right after the other, so both numbers come from the same machine in the same state.
"""

from __future__ import annotations

from typing import Any

from streaming.bench.harness import Harness, RowRecorder, load_row
from streaming.bench.processes import BenchError, python_module, run_json
from streaming.bench.results import Row

TENSORFLOW = "TensorFlow"
ONNX_RUNTIME = "ONNX Runtime"


def onnx_rows(h: Harness, add_row: RowRecorder) -> None:
    """Convert the model, then measure it under TensorFlow and under ONNX Runtime."""
    if h.model.path.suffix.lower() == ".onnx":
        raise BenchError("row 12 converts the Keras model under test; --model is ONNX already")
    onnx_path = h.scratch / f"{h.model.path.stem}.onnx"
    conversion = run_json(
        python_module(
            "streaming.bench.onnx_convert", "--keras", str(h.model.path), "--onnx", str(onnx_path)
        ),
        600,  # TensorFlow's start, the conversion and the check, on a busy machine at worst
        h.log_dir / "onnx-convert.log",
    )
    measured: dict[str, Row] = {}

    def measure(runtime: str, model_flags: list[str]) -> Row:
        row = _runtime_row(h, runtime, model_flags, conversion, measured.get(TENSORFLOW))
        measured[runtime] = row
        return row

    add_row(f"row 12 ({TENSORFLOW})", measure, TENSORFLOW, h.model_flags())
    add_row(f"row 12 ({ONNX_RUNTIME})", measure, ONNX_RUNTIME, h.model_flags(onnx_path))


def _runtime_row(
    h: Harness,
    runtime: str,
    model_flags: list[str],
    conversion: dict[str, Any],
    tensorflow: Row | None,
) -> Row:
    streams = h.s.latency_streams
    tag = "onnx-tf" if runtime == TENSORFLOW else "onnx-ort"
    with h.serving(tag, *model_flags, "--max-batch", str(h.s.max_batch)) as server:
        device = _device(server.address)
        run = h.load(h.spec(server.address, streams), tag)
    setup = f"row 5 @{streams} shape (--max-batch {h.s.max_batch}, RAW pre-resized, LOSSLESS)"
    extra: dict[str, Any] = {"runtime": runtime, "device": device}
    note = f"on {device}"
    if runtime == ONNX_RUNTIME:
        setup += f"; converted by Keras export/tf2onnx in {conversion['convert_s']:.0f} s"
        extra.update(
            onnxruntime=conversion["onnxruntime"],
            max_abs_difference=conversion["max_abs_difference"],
        )
        if tensorflow is not None and tensorflow.fps and run.result.fps:
            ratio = run.result.fps / tensorflow.fps
            extra["vs_tensorflow"] = ratio
            note += f"; {ratio:.2f} × TensorFlow"
    row = load_row(
        "onnx_tensorflow" if runtime == TENSORFLOW else "onnx_onnxruntime",
        f"12. {runtime}, {streams} streams",
        setup,
        run,
        **extra,
    )
    row.note = note
    return row


def _device(address: str) -> str:
    """Where the server runs its model, as it says (``GetModelInfo``)."""
    from client import StreamClient

    with StreamClient(address) as client:
        return client.model_info.device
