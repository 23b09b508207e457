"""Each attack of the benchmark, in its own process, beside a well-behaved load (issue 10).

For each: peak RSS within model footprint + --memory-budget + the margin, the load answered in
order, no UNKNOWN, no traceback in the server's log, the server still serving afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from streaming.bench.attacks import ATTACKS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KINDS = sorted(ATTACKS)


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
