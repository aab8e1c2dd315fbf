"""Order-path integrity under faults: kill -9 of every process of the fleet (risk, the order
manager, the audit logger, the paper connector and nats-server) at random moments of a flow
of a few hundred orders over three accounts, chosen by a fixed seed (chaos.py).

Afterwards, with every process running again and every consumer drained (chaos_checks.py):
nothing acknowledged lost, nothing doubled (one venue order per client order id), every
order's final state the same in EVENTS, in the order manager and in what the client saw,
each account's commands routed and executed in the order the client sent them, `tradebus
oms rebuild` equal to the live state, `tradebus audit verify` intact and complete, every
fault recovered from, every service beating at the end and stopping on SIGTERM within its
grace. Timing is measured, not asserted: `bench/chaos.py` prints it per fault kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .chaos import ChaosPlan, ChaosRun
from .chaos_checks import HEADER, judge, measure

# Two seeds (~47 s each): tests/fault runs the same flow and checks through five more fault
# kinds on a cluster, and `bench/chaos.py --seeds` runs as many more as wanted; a third seed
# would lengthen the chaos flows' unit of work, the longest of the README's test command
# (tests/workunits.py).
SEEDS = (1, 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_order_path_integrity_under_kill_9_of_every_process(seed: int, tmp_path: Path) -> None:
    run = ChaosRun(ChaosPlan(seed=seed), tmp_path).run()
    verdict = judge(run)
    table = "\n".join([HEADER, *(stats.row(kind) for kind, stats in sorted(measure(run, verdict).items()))])
    faults = "\n".join(fault.describe(run.started) for fault in run.faults)
    report = f"seed {seed}: {dict(verdict.outcomes)}, exits {[(e.name, e.code) for e in run.exits]}\n{faults}\n{table}"
    assert not verdict.problems, "\n".join(verdict.problems) + "\n" + report
    assert not verdict.findings, "\n".join(f"{f.what} {f.order}: {f.detail}" for f in verdict.findings[:30]) + "\n" + report
    placed = sum(verdict.outcomes.values())
    assert placed == run.plan.orders // len(run.plan.accounts) * len(run.plan.accounts) + len(run.faults), report
    assert len(run.faults) == 10 and all(f.recovered for f in run.faults), report
