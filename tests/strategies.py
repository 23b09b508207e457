"""Hypothesis strategies for what a client may send on the wire: StreamConfig and Frame messages
with any value protobuf can carry, and the well-formed frame request that follows them.

Shared by the in-process fuzzing (``tests/streaming/server/test_fuzz.py``) and the fuzzing of a
separate server process (``tests/streaming/server/adversarial/test_fuzzed_input.py``); sizes are
parameters because each suite bounds them for its own budget.

Imported as ``tests.strategies``: pytest's importlib mode (``pyproject.toml``) imports test files
by their rootdir-relative name (``tests.streaming.server.test_fuzz``), so the ``tests`` namespace package
is there and a plain module in it imports without a conftest or a ``sys.path`` change; test files
importing each other stays off-limits.
"""

from __future__ import annotations

from hypothesis import strategies as st

from client.api.v1 import stream_classifier_pb2 as pb

uint32 = st.integers(0, 2**32 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
# Headers of a JPEG (SOF0) and a PNG, so decoders get past the signature into random headers.
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xc0\x00\x11\x08")


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Any code point, control characters included."""
    return st.text(max_size=max_size)


def stream_configs(max_text: int) -> st.SearchStrategy[pb.StreamConfig]:
    """StreamConfig with any strings and any integer the fields carry, unknown enum values too."""
    return st.builds(
        pb.StreamConfig,
        client_id=texts(max_text),
        source=texts(max_text),
        window=uint32,
        top_k=uint32,
        delivery=int32,
        probabilities=int32,
    )


def frames(max_data: int, max_tail: int) -> st.SearchStrategy[pb.Frame]:
    """Frames with headers in and just beyond the valid ranges, and random data: up to
    ``max_data`` bytes, or an image signature followed by up to ``max_tail`` bytes."""
    return st.builds(
        pb.Frame,
        seq=st.integers(0, 2**64 - 1),
        encoding=st.integers(0, 6),
        width=st.integers(0, 70000),
        height=st.integers(0, 70000),
        channels=st.integers(0, 5),
        data=st.one_of(
            st.binary(max_size=max_data),
            st.sampled_from(IMAGE_SIGNATURES).flatmap(
                lambda head: st.binary(max_size=max_tail).map(lambda tail: head + tail)
            ),
        ),
    )


def good_frame_request(seq: int) -> bytes:
    """A serialized ClassifyRequest with a valid 32x24 RAW frame: the server must answer it."""
    data = bytes([200, 10, 10]) * (32 * 24)
    frame = pb.Frame(seq=seq, width=32, height=24, channels=3, data=data)
    return pb.ClassifyRequest(frame=frame).SerializeToString()
