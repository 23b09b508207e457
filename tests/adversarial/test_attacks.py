"""Each attack of the benchmark, in its own process, beside a well-behaved load (issue 10).

For each: peak RSS within model footprint + --memory-budget + the margin, the load answered in
order, no UNKNOWN, no traceback in the server's log, the server still serving afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from streaming.bench.attacks import ATTACKS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# What the budget does not count yet: messages being received. Four streams of 48 MiB RAW frames
# (two in flight each) grew the server by 520-900 MiB while protobuf parsed them (a copy when
# parsing, another on each `frame.data`). The Classify deserializer now reads frame requests by
# hand, the frame's data a view into the received bytes, and the reader keeps only the frame:
# 358-471 MiB in 6 runs (bound 384), the rest being gRPC core's receive buffers and its copy of
# each message into `bytes` (whole messages received ahead of the handler's reads). Neither
# serializing large reads through a semaphore nor turning off BDP probing lowered that part.
_OUTSIDE_THE_BUDGET = pytest.mark.xfail(
    strict=True,
    reason="large RAW frames: messages being received (gRPC core buffers and its bytes copy) are "
    "outside --memory-budget, so peak RSS grows with streams x message size",
)
KINDS = [
    pytest.param(kind, marks=_OUTSIDE_THE_BUDGET) if kind == "large_raw" else kind
    for kind in sorted(ATTACKS)
]


@pytest.mark.parametrize("kind", KINDS)
def test_the_server_survives_the_attack(adversary: Any, kind: str) -> None:
    # given: the server, serving a well-behaved load
    if kind == "large_raw":
        adversary.retire_server()  # what it leaves in memory must not count against the next
    with adversary.beside_load() as load:
        # when: the attack runs beside it for a few seconds, in its own process
        result = adversary.run_attack_process(kind)
    # then: the load was answered in order (checked on leaving the block), and the rest holds
    growth = adversary.check_survived(load, adversary.status_names(result))
    adversary.report(
        f"{kind}: {result.sent} {result.unit} sent in {result.seconds:.1f} s, "
        f"{result.answered} answered, refused {result.refused}; peak RSS +{growth:.0f} MiB "
        f"(bound {adversary.bound / 2**20:.0f}); load answered {load.answered} frames"
    )
