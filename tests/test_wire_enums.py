"""The server's and the client's copies of the wire enums and error codes match the .proto exactly.

The values are kept as plain Python enums on each side (no protobuf types past the conversion
modules); this test is what keeps the three copies (proto, server, client) from drifting.
"""

from __future__ import annotations

import enum

import grpc
import pytest

import client
from client.api.v1 import stream_classifier_pb2 as pb
from streaming.server import server_values


def proto_enum(name: str) -> dict[str, int]:
    return {v.name: v.number for v in pb.DESCRIPTOR.enum_types_by_name[name].values}


@pytest.mark.parametrize(
    ("python_enum", "proto_name", "prefix"),
    [
        (server_values.Delivery, "DeliveryMode", "DELIVERY_MODE_"),
        (client.Delivery, "DeliveryMode", "DELIVERY_MODE_"),
        (server_values.Encoding, "Encoding", "ENCODING_"),
        (client.Encoding, "Encoding", "ENCODING_"),
        (server_values.ProbabilityFormat, "ProbabilityFormat", "PROBABILITIES_"),
    ],
    ids=lambda v: getattr(v, "__qualname__", None) and f"{v.__module__}.{v.__qualname__}",
)
def test_enum_matches_the_proto(
    python_enum: type[enum.IntEnum], proto_name: str, prefix: str
) -> None:
    ours = {prefix + member.name: member.value for member in python_enum}
    assert ours == proto_enum(proto_name)


def test_every_proto_enum_has_a_server_copy() -> None:
    copied = {"DeliveryMode", "Encoding", "ProbabilityFormat"}
    assert set(pb.DESCRIPTOR.enum_types_by_name) == copied


@pytest.mark.parametrize("code", list(server_values.StatusCode), ids=lambda c: c.name)
def test_in_band_error_codes_are_grpc_status_codes(code: server_values.StatusCode) -> None:
    # FrameError.code on the wire is a gRPC status number, so clients can map it back.
    assert grpc.StatusCode[code.name].value[0] == code.value
    assert client.status_from_code(code.value) is grpc.StatusCode[code.name]


@pytest.mark.parametrize(
    ("number", "status"),
    [(0, grpc.StatusCode.OK), (3, grpc.StatusCode.INVALID_ARGUMENT), (13, grpc.StatusCode.INTERNAL),
     (8, grpc.StatusCode.RESOURCE_EXHAUSTED), (999, grpc.StatusCode.UNKNOWN), (-1, grpc.StatusCode.UNKNOWN)],
)  # fmt: skip
def test_status_from_code(number: int, status: grpc.StatusCode) -> None:
    assert client.status_from_code(number) is status
