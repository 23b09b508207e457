"""The protobuf boundary of the server: stream settings in, answers out (no server needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from client.api.v1 import stream_classifier_pb2 as pb
from streaming.server.server_values import (
    FrameErrorInfo,
    FrameResult,
    ProbabilityFormat,
    StatusCode,
)
from streaming.server.wire import result_to_pb, settings_from_pb

VECTOR = np.array([0.125, 0.6, 0.275], np.float32)
DEFAULTS: dict[str, Any] = {"default_window": 5, "default_top_k": 5, "num_labels": 3}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(pb.StreamConfig(), ProbabilityFormat.REPEATED, id="unset-is-repeated"),
        pytest.param(
            pb.StreamConfig(probabilities=pb.PROBABILITIES_PACKED),
            ProbabilityFormat.PACKED,
            id="packed",
        ),
        pytest.param(
            pb.StreamConfig(probabilities=pb.PROBABILITIES_NONE), ProbabilityFormat.NONE, id="none"
        ),
    ],
)
def test_settings_carry_the_probability_format(
    config: pb.StreamConfig, expected: ProbabilityFormat
) -> None:
    assert settings_from_pb(config, **DEFAULTS).probabilities is expected


@pytest.mark.parametrize("value", [3, 99, -1])
def test_unknown_probability_format_is_refused_by_number(value: int) -> None:
    config = pb.StreamConfig(probabilities=value)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match=f"unknown probabilities format {value} "):
        settings_from_pb(config, **DEFAULTS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.dtype(">f4")])
@pytest.mark.parametrize(
    ("fmt", "repeated", "packed"),
    [
        pytest.param(ProbabilityFormat.REPEATED, True, False, id="repeated"),
        pytest.param(ProbabilityFormat.PACKED, False, True, id="packed"),
        pytest.param(ProbabilityFormat.NONE, False, False, id="none"),
    ],
)
def test_answer_carries_the_vector_in_the_asked_format(
    fmt: ProbabilityFormat, repeated: bool, packed: bool, dtype: Any
) -> None:
    result = FrameResult(
        seq=4,
        capture_time_us=9,
        dropped_frames=0,
        label="green",
        score=0.6,
        probabilities=VECTOR.astype(dtype),
        frame_label="green",
        frame_score=0.6,
        top_k=(("green", 0.6),),
        window_frames=1,
    )

    response = result_to_pb(result, fmt)

    assert list(response.probabilities) == (VECTOR.tolist() if repeated else [])
    assert response.probabilities_f32 == (VECTOR.astype("<f4").tobytes() if packed else b"")
    assert (response.label, response.frame_label, response.top_k[0].label) == ("green",) * 3
    assert response.score == pytest.approx(0.6)


@pytest.mark.parametrize("fmt", list(ProbabilityFormat))
def test_an_error_answer_has_no_vector_in_any_format(fmt: ProbabilityFormat) -> None:
    error = FrameErrorInfo(StatusCode.INVALID_ARGUMENT, "bad frame")
    result = FrameResult(seq=1, capture_time_us=0, dropped_frames=0, error=error)

    response = result_to_pb(result, fmt)

    assert (
        response.error.code == 3 and not response.probabilities and not response.probabilities_f32
    )
