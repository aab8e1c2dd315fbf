"""Chaos runs of the order path, measured per fault kind.

    python bench/chaos.py [--seeds 1,2,3,4,5] [--orders 300] [--kills-per-kind 1] [--pace 0.2] [--work DIR]

Each seed is one run of tests/integration/chaos.py (the harness of tests/integration/
test_chaos.py, which asserts the same checks on a few seeds): a fresh nats-server and the
four services as processes, a client sending `--orders` orders over three accounts (market
orders; limit orders resting, some modified, then cancelled; every publish retried with the
same command until acknowledged) while one process at a time (risk, oms, audit, the paper
connector, nats-server) is killed with SIGKILL at a moment chosen by the seed and started
again after a short pause.

Per fault kind: kills; time to recover, p50 and max (from the kill until every service sends
READY heartbeats from its new process and a probe order sent right after the kill is filled,
seen by the client and by the order manager); orders delayed (commands of the flow in flight
during a fault: sent before the recovery, answered after the kill); wrong outcomes (lost,
doubled, a final state that differs between EVENTS, the order manager and the client, a
command executed out of its account's order, an outcome the flow cannot explain; must be 0).
Then what every run ended with, and fleet-wide problems (oms rebuild, audit verify,
liveness, SIGTERM). Last line: JSON, `value` the median time to recover (s), `baseline` the
median answer latency of commands outside any fault (s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.integration
from tests.integration.chaos import ChaosPlan, ChaosRun  # noqa: E402
from tests.integration.chaos_checks import HEADER, KindStats, judge, measure, quiet_latencies  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds, one run each")
    parser.add_argument("--orders", type=int, default=300, help="places per run, over three accounts")
    parser.add_argument("--kills-per-kind", type=int, default=2)
    parser.add_argument("--pace", type=float, default=0.2, help="seconds between two commands of one account")
    parser.add_argument("--work", type=Path, help="keep each run's logs and stores in WORK/seed-N (default: removed)")
    args = parser.parse_args()
    stats: dict[str, KindStats] = defaultdict(KindStats)
    outcomes: Counter = Counter()
    problems: list[str] = []
    quiet: list[float] = []
    wrong = 0
    for seed in (int(s) for s in args.seeds.split(",")):
        plan = ChaosPlan(seed=seed, orders=args.orders, kills_per_kind=args.kills_per_kind, pace=args.pace)
        if args.work:
            (args.work / f"seed-{seed}").mkdir(parents=True)
            run = ChaosRun(plan, args.work / f"seed-{seed}").run()
        else:
            with tempfile.TemporaryDirectory(prefix=f"chaos-{seed}-") as work:
                run = ChaosRun(plan, Path(work)).run()
        verdict = judge(run)
        measure(run, verdict, stats)
        outcomes += verdict.outcomes
        quiet += quiet_latencies(run, verdict)
        wrong += verdict.wrong
        problems += [f"seed {seed}: {problem}" for problem in verdict.problems]
        exits = ", ".join(f"{e.name} ({e.code})" for e in run.exits) or "none"
        print(f"seed {seed}: {len(run.sent)} commands, {sum(verdict.outcomes.values())} orders, "
              f"{verdict.wrong} wrong, {len(verdict.problems)} problems, exited by themselves: {exits}", flush=True)
        for fault in run.faults:
            print(f"  {fault.describe(run.started)}")
        for finding in verdict.findings[:20]:
            print(f"  {finding.what} {finding.order}: {finding.detail}")
    print()
    print(HEADER)
    for kind, kind_stats in sorted(stats.items()):
        print(kind_stats.row(kind))
    print(f"\norders by outcome: {dict(outcomes)}")
    for problem in problems:
        print(problem)
    recoveries = [seconds for kind_stats in stats.values() for seconds in kind_stats.recover]
    value = statistics.median(recoveries) if recoveries else None
    baseline = statistics.median(quiet) if quiet else None
    print(json.dumps({"bench": "chaos", "value": value, "baseline": baseline, "unit": "s",
                      "ratio": value / baseline if value and baseline else None, "wrong": wrong,
                      "problems": len(problems), "seeds": args.seeds, "orders": args.orders,
                      "per_kind": {kind: {"kills": s.kills, "recover_p50": statistics.median(s.recover) if s.recover else None,
                                          "recover_max": max(s.recover, default=None), "delayed": len(s.delays),
                                          "delay_max": max(s.delays, default=None),
                                          "wrong": s.wrong} for kind, s in sorted(stats.items())}}))
    return 1 if wrong or problems else 0


if __name__ == "__main__":
    sys.exit(main())
