"""A chaos run (tests/integration/chaos.py: the fleet as processes, a client sending a
bounded flow, probes, the collection that chaos_checks.py judges) on a 3-node NATS cluster
(clusterbus.py), with the faults of one scenario instead of random kills.

A node fault: the node is killed, stopped or cut off; a probe order is sent at once; the
fault is recovered from when, with the node still out, every service beats READY again,
the probe's fill has reached the client and the order manager shows it filled: the
majority keeps serving. The node then comes back (`HOLD` seconds of flow later) and the run
waits until every replica of every stream and bucket is current again before anything else.
A service fault (rolling restart): SIGTERM, started again at once, the probe sent once it beats
READY, recovered as above.

`Figures` are what the scenario's note reports: orders in flight when the fault struck (and
through the outage: sent before the fleet recovered, answered after the fault struck), seconds
to recover, lost and duplicated (chaos_checks.py's findings
against EVENTS, the paper venue's own journal, CMD/ROUTE, the order manager and the audit
trail).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import nats

from tests.integration.chaos import (
    PROBE_ACCOUNT,
    RECOVERY_LIMIT,
    SYMBOL,
    TTL_MS,
    ChaosPlan,
    ChaosRun,
    Collected,
    Fault,
    Sent,
)
from tests.integration.chaos_checks import Verdict
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.values import OrderType, Side

from .clusterbus import ClusterBus, stream_leader, wait_caught_up
from .hosts import Hosts

HOLD = 3.0  # seconds of flow on the majority before a node comes back
Scenario = Callable[["ClusterRun"], Awaitable[None]]


class ClusterRun(ChaosRun):
    def __init__(self, plan: ChaosPlan, work: Path, hosts: Hosts, scenario: Scenario) -> None:
        self.cluster_bus = ClusterBus(hosts, work)
        super().__init__(plan, work, self.cluster_bus)  # type: ignore[arg-type]
        self.scenario = scenario
        self.caught_up: dict[str, float] = {}  # fault kind: seconds the returned node took to catch up
        self.connections_after: dict[str, dict[str, list[str]]] = {}  # fault kind: node: connection names

    async def _faults(self) -> None:
        await self.scenario(self)

    # --- what scenarios are made of ----------------------------------------------------
    async def places_acked(self, fraction: float) -> None:
        """Until `fraction` of the flow's places are acknowledged by the bus."""
        target = self.plan.orders // len(self.plan.accounts) * len(self.plan.accounts) * fraction
        while sum(1 for s in self.sent if s.acked and isinstance(s.command, PlaceOrder)
                  and s.command.account != PROBE_ACCOUNT) < target:
            await asyncio.sleep(0.05)

    async def leader(self, stream: str = "CMD") -> str:
        nc = await nats.connect(self.bus.url.split(","))
        try:
            return await stream_leader(nc, stream)
        finally:
            await nc.close()

    async def node_fault(self, kind: str, node: str, cut: Callable[[], None], mend: Callable[[], None]) -> Fault:
        """`cut` takes `node` out; recovered with it out; `mend` brings it back; caught up."""
        fault = self._strike(kind, node, cut)
        try:
            probe = self._probe(fault)
            fault.restarted = fault.killed  # heartbeats from the kill on count: the services were not touched
            await self._wait_recovered(fault)
            if fault.recovered:
                fault.probe_attempts = (await probe).attempts
                self.connections_after[kind] = await asyncio.to_thread(self.cluster_bus.connections, {node})
            else:
                probe.cancel()
            await asyncio.sleep(HOLD)
        finally:  # whatever failed, the next scenario gets whole hosts
            await asyncio.to_thread(mend)
        self.killing.discard(node)
        fault.restarted = time.time_ns()
        nc = await nats.connect(self.bus.url.split(","))
        try:
            self.caught_up[kind] = await wait_caught_up(nc, len(self.cluster_bus.names))
        finally:
            await nc.close()
        return fault

    async def service_restart(self, name: str) -> Fault:
        """SIGTERM `name`, as a rolling upgrade does, and start it again at once. The probe
        goes once the new process beats READY: while a connector is away risk refuses its
        venue's orders in time (`venue_unavailable`, answered: not lost), the probe included."""
        fault = self._strike(f"restart {name}", name, lambda: self.fleet.terminate(name, timeout=30))
        await asyncio.to_thread(self.fleet.launch, name)
        self.killing.discard(name)
        fault.restarted = time.time_ns()
        while name in self._not_ready(since=fault.restarted) and time.time_ns() - fault.killed < RECOVERY_LIMIT * 1e9:
            await asyncio.sleep(0.05)
        probe = self._probe(fault)
        await self._wait_recovered(fault)
        if fault.recovered:
            fault.probe_attempts = (await probe).attempts
        else:
            probe.cancel()
        return fault

    def _strike(self, kind: str, target: str, cut: Callable[[], None]) -> Fault:
        fault = Fault(kind, killed=time.time_ns(), probe=f"probe-{len(self.faults)}")
        self.faults.append(fault)
        self.killing.add(target)  # not restarted by the watcher of processes that exit
        cut()
        return fault

    def _probe(self, fault: Fault) -> asyncio.Task:
        return asyncio.create_task(self._send(PlaceOrder(
            client_order_id=fault.probe, venue="paper", account=PROBE_ACCOUNT, symbol=SYMBOL, side=Side.BUY,
            order_type=OrderType.MARKET, quantity=Decimal("0.01"), ttl_ms=TTL_MS, ts_created=time.time_ns())))


@dataclass(frozen=True)
class Figures:
    scenario: str
    mode: str
    fault: str
    in_flight: int  # the flow's commands sent and not yet answered when the fault struck
    through: int  # ... whose life overlapped the outage: sent before the recovery, answered after the fault
    sent_after_return: int  # ... first sent after the node or service was back: the flow went on
    served_s: float | None  # from the fault to the answer of the first command sent after it
    worst_s: float | None  # the longest a command in flight through the outage waited for its answer
    recovered_s: float | None
    caught_up_s: float | None
    lost: int
    duplicated: int

    def line(self) -> str:
        recovered = f"{self.recovered_s:.1f}s" if self.recovered_s is not None else "never"
        caught_up = f", node current again {self.caught_up_s:.1f}s after its return" if self.caught_up_s is not None else ""
        def seconds(value: float | None) -> str:
            return f"{value:.1f}s" if value is not None else "never"

        return (f"{self.scenario} [{self.mode}] {self.fault}: orders in flight {self.in_flight} "
                f"({self.through} through the outage, {self.sent_after_return} sent after the return), "
                f"first new order answered after {seconds(self.served_s)}, longest wait {seconds(self.worst_s)}, "
                f"recovered (probe filled, services ready) in {recovered}{caught_up}; "
                f"the run: lost {self.lost}, duplicated {self.duplicated}")


def figures(scenario: str, mode: str, run: ClusterRun, collected: Collected, verdict: Verdict) -> list[Figures]:
    """Per fault: the flow's commands in flight (at the fault; through the outage, as
    chaos_checks.py's window counts them) and sent after the return, and the seconds to
    recover; lost and duplicated are the whole run's (chaos_checks.py's findings of those
    kinds, whenever they happened)."""
    flow = [s for s in collected.sent if s.command.account != PROBE_ACCOUNT]
    lost = sum(f.what == "lost" for f in verdict.findings)
    duplicated = sum(f.what == "doubled" for f in verdict.findings)
    rows = []
    for fault in collected.faults:
        def answered(sent: Sent) -> int:
            return verdict.answered_at.get(command_dedupe_id(sent.command), 2**63)

        through = [s for s in flow if s.first_sent <= (fault.recovered or 2**63) and answered(s) >= fault.killed]
        served = [answered(s) for s in flow if s.first_sent >= fault.killed and answered(s) < 2**63]
        waits = [(answered(s) - s.first_sent) / 1e9 for s in through if answered(s) < 2**63]
        rows.append(Figures(
            scenario, mode, fault.kind,
            in_flight=sum(1 for s in flow if s.first_sent <= fault.killed < answered(s)),
            through=len(through),
            sent_after_return=sum(1 for s in flow if s.first_sent > fault.restarted),
            served_s=(min(served) - fault.killed) / 1e9 if served else None,
            worst_s=max(waits) if waits else None,
            recovered_s=(fault.recovered - fault.killed) / 1e9 if fault.recovered else None,
            caught_up_s=run.caught_up.get(fault.kind), lost=lost, duplicated=duplicated))
    return rows
