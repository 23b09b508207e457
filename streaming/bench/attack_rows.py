"""Row group 9: a well-behaved 8-stream load beside each attack, against the same load alone.

Each attack runs in its own process (:mod:`streaming.bench.attacks`) against the server under
test, starting before the load and ending after its measured window. A row reports the load's
throughput beside the attack and alone (their ratio), the share of its frames answered, and the
server's peak RSS during the attack. What the server does is measured, not judged: a server that
dies is reported in its row, as is a load it stopped serving.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

from streaming.bench.attacks import ATTACK_SETUPS, ATTACKS, AttackResult, AttackSpec
from streaming.bench.harness import (
    Harness,
    LoadRun,
    RowRecorder,
    ServerUnderTest,
    deadline_s,
    load_row,
)
from streaming.bench.loadgen import LoadSpec
from streaming.bench.processes import BenchError, ChildProcess, python_module
from streaming.bench.results import Row

logger = logging.getLogger(__name__)

_BASELINE_TAG = "attack-baseline"


def attack_rows(h: Harness, add_row: RowRecorder) -> None:
    """The load alone, then beside each attack, each on a fresh server: what one attack leaves
    behind (memory it grew, old-API windows it holds, a dead server) never counts against the next.
    """
    with h.serving("attack-baseline", *_flags(h)) as server:
        alone = h.load(_spec(h, server), _BASELINE_TAG)
    add_row("attack baseline", _baseline_row, h, alone)
    for kind in h.s.attack_kinds or ATTACKS:
        add_row(f"attack {kind}", _attack_on_fresh_server, h, kind, alone)


def _attack_on_fresh_server(h: Harness, kind: str, alone: LoadRun) -> Row:
    with h.serving(f"attack-{kind}", *_flags(h)) as server:
        return _attack_row(h, _measure(h, server, kind), alone)


def _flags(h: Harness) -> list[str]:
    return [*h.model_flags(), "--max-batch", str(h.s.max_batch)]


def _spec(h: Harness, server: ServerUnderTest) -> LoadSpec:
    return h.spec(server.address, h.s.attack_streams, keep_going=True)


def _baseline_row(h: Harness, alone: LoadRun) -> Row:
    return replace(
        load_row(
            "attack_baseline",
            f"9. Attacks: {h.s.attack_streams} streams alone",
            f"{h.s.attack_streams} streams, RAW pre-resized, LOSSLESS, no attack",
            alone,
            answered_share=_answered_share(alone),
        ),
        note="the load every attack row is measured with",
    )


@dataclass(frozen=True)
class AttackOutcome:
    """The load beside one attack, the attack's own account, and the server's state."""

    kind: str
    beside: LoadRun | None  # None: the load failed (``load_failure`` says how)
    attack: AttackResult | None  # None: the attack process failed (``attack_failure``)
    load_failure: str
    attack_failure: str
    rss_before_mib: float  # the idle server, as the attack began
    rss_peak_mib: float
    server_exit_code: int | None  # None: the server survived


def _measure(h: Harness, server: ServerUnderTest, kind: str) -> AttackOutcome:
    tag = f"attack-{kind}"
    rss = server.process.rss
    assert rss is not None  # servers are always sampled
    rss.phase = tag
    spec = _spec(h, server)
    # At most as long as the load may take; stopped as soon as the load is done.
    attack_spec = AttackSpec(kind, server.address, deadline_s(spec.warmup_s + spec.duration_s))
    beside: LoadRun | None = None
    attack: AttackResult | None = None
    load_failure = attack_failure = ""
    attacker = ChildProcess(
        python_module("streaming.bench.attacks", attack_spec.to_json()),
        "attacking",
        h.log_dir / f"{tag}.log",
        sample_rss=False,
    )
    with attacker:
        try:
            beside = h.load(spec, tag)
        except BenchError as exc:
            load_failure = str(exc)
        try:
            attacker.ask_to_stop()
            attack = AttackResult.from_json(attacker.wait_json(60.0))
        except BenchError as exc:
            attack_failure = str(exc)
    during = rss.series(tag)
    peak = max(rss.peak(tag), rss.peak(f"{tag} done"))
    rss.phase = f"{tag} over"
    exit_code = server.process.exit_code
    if exit_code is not None:
        logger.error("the server died during attack %s (exit code %s)", kind, exit_code)
    return AttackOutcome(
        kind=kind,
        beside=beside,
        attack=attack,
        load_failure=load_failure,
        attack_failure=attack_failure,
        rss_before_mib=during[0][1] / 2**20 if during else 0.0,
        rss_peak_mib=peak / 2**20,
        server_exit_code=exit_code,
    )


def _attack_row(h: Harness, outcome: AttackOutcome, alone: LoadRun) -> Row:
    beside, attack = outcome.beside, outcome.attack
    ratio = beside.result.fps / alone.result.fps if beside and alone.result.fps else None
    share = _answered_share(beside) if beside else None
    extra = {
        "attack": None if attack is None else asdict(attack),
        "alone_fps": alone.result.fps,
        "throughput_ratio": ratio,
        "answered_share": share,
        "server_rss_before_mib": outcome.rss_before_mib,
        "server_peak_rss_mib": outcome.rss_peak_mib,
        "server_exit_code": outcome.server_exit_code,
        "load_failure": outcome.load_failure,
        "attack_failure": outcome.attack_failure,
    }
    notes = [
        f"beside/alone {ratio:.2f} (alone {alone.result.fps:,.0f}/s)"
        if ratio is not None
        else "beside/alone —",
        f"answered {share:.1%} (drain included)" if share is not None else "answered —",
        f"server RSS {outcome.rss_before_mib:,.0f} → peak {outcome.rss_peak_mib:,.0f} MiB",
    ]
    if outcome.server_exit_code is not None:
        notes.append(f"SERVER DIED (exit code {outcome.server_exit_code})")
    if beside is not None and beside.result.failed_streams:
        notes.append(f"{beside.result.failed_streams} streams ended by the server")
    if outcome.load_failure:
        notes.append(f"LOAD FAILED: {outcome.load_failure}")
    if attack is not None:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(attack.refused.items())) or "none"
        notes.append(
            f"attack: {attack.sent} {attack.unit} sent, {attack.answered} answered, "
            f"ended or refused: {refused}"
        )
    else:
        notes.append(f"ATTACK FAILED: {outcome.attack_failure}")
    key, name = f"attack_{outcome.kind}", f"9. Beside attack: {outcome.kind.replace('_', ' ')}"
    setup = f"{ATTACK_SETUPS[outcome.kind]}; {h.s.attack_streams} well-behaved LOSSLESS streams beside it"
    if beside is None:
        return Row(key=key, name=name, setup=setup, extra=extra, note="; ".join(notes))
    return replace(load_row(key, name, setup, beside, **extra), note="; ".join(notes))


def _answered_share(run: LoadRun) -> float | None:
    """Frames of the well-behaved load answered without error, over the whole run."""
    result = run.result
    return result.answered_total / result.sent_total if result.sent_total else None
