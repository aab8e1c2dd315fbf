"""The order path on a 3-node NATS cluster (replicas 3, `sync_interval: always`) through
node loss, partitions and a rolling restart, with real processes: the nodes on the test
hosts (hosts.py: one network namespace each, or loopback ports where namespaces cannot be
made; the mode in use is printed), the services and the client outside, all given every
node's URL.

Each scenario runs the chaos flow (tests/integration/chaos.py) with its faults
(clusterrun.py) and is judged by chaos_checks.py: nothing acknowledged lost, nothing
doubled (one venue order per client order id in the paper venue's journal, EVENTS; one
command in CMD and ROUTE), the same final state in EVENTS, the order manager and the
client, each account's order kept, `oms rebuild` and `audit verify` clean. No service
may need a restart: connections move to the surviving nodes by themselves. Per scenario
the figures (orders in flight, time to recover, lost, duplicated) are printed (`-n 0 -s`: an
xdist worker's output is not shown); timing is reported, never asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.chaos import SERVICES, ChaosPlan
from tests.integration.chaos_checks import judge

from .clusterrun import ClusterRun, Scenario, figures
from .hosts import Hosts, make_hosts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    made = make_hosts()
    print(f"\ntest hosts: {made.mode}" + (f" ({made.reason})" if made.reason else ""))
    yield made
    made.remove()


def run_scenario(name: str, plan: ChaosPlan, hosts: Hosts, work: Path, scenario: Scenario, *,
                 flow_past_return: bool = True) -> ClusterRun:
    run = ClusterRun(plan, work, hosts, scenario)
    collected = run.run()
    verdict = judge(collected)
    rows = figures(name, hosts.mode, run, collected, verdict)
    report = "\n".join([*(row.line() for row in rows), *(f.describe(collected.started) for f in collected.faults),
                        f"outcomes {dict(verdict.outcomes)}, exits {[(e.name, e.code) for e in collected.exits]}"])
    print("\n" + report)
    assert not verdict.problems, "\n".join(verdict.problems) + "\n" + report
    assert not verdict.findings, "\n".join(f"{f.what} {f.order}: {f.detail}" for f in verdict.findings[:30]) + "\n" + report
    assert collected.faults and all(f.recovered for f in collected.faults), report
    placed = sum(verdict.outcomes.values())
    assert placed == plan.orders // len(plan.accounts) * len(plan.accounts) + len(collected.faults), report
    assert not collected.exits, f"a process had to be started again: {report}"
    assert all(row.through for row in rows), f"a fault outside the flow: {report}"
    if flow_past_return:  # a healed partition, a restarted node or service meets more orders
        assert all(row.sent_after_return for row in rows), f"the flow ended before a return: {report}"
    return run


def test_sigkill_of_the_stream_leader_in_the_middle_of_1000_orders(hosts: Hosts, tmp_path: Path) -> None:
    async def scenario(run: ClusterRun) -> None:
        await run.places_acked(0.5)
        leader = await run.leader("CMD")
        roles = ", ".join(["CMD leader", *(["meta leader"] if run.cluster_bus.meta_leader() == leader else [])])
        await run.node_fault(f"SIGKILL of {leader} ({roles})", leader,
                             lambda: run.cluster_bus.kill(leader), lambda: run.cluster_bus.restart(leader))

    accounts = tuple(f"a{n}" for n in range(1, 11))
    run_scenario("stream leader killed", ChaosPlan(seed=16, orders=1000, accounts=accounts, pace=0.05),
                 hosts, tmp_path, scenario, flow_past_return=False)


def test_a_partition_isolating_one_node(hosts: Hosts, tmp_path: Path) -> None:
    """The node isolated leads CMD unless the connector talks to it (the next test's case)."""
    if not hosts.can_partition:
        pytest.skip(hosts.reason + "; and no packet filter (iptables, nft) to cut a loopback node's routes")

    async def scenario(run: ClusterRun) -> None:
        await run.places_acked(0.3)
        connectors = run.cluster_bus.node_of("connector.")
        leader = await run.leader("CMD")
        node = leader if leader != connectors else next(n for n in run.cluster_bus.names if n != connectors)
        await run.node_fault(f"partition isolating {node}" + (" (CMD leader)" if node == leader else ""), node,
                             lambda: hosts.isolate(node), lambda: hosts.heal(node))

    run_scenario("partition", STEADY, hosts, tmp_path, scenario)


def test_a_partition_isolating_the_node_the_connector_talks_to(hosts: Hosts, tmp_path: Path) -> None:
    if not hosts.can_partition:
        pytest.skip(hosts.reason + "; and no packet filter (iptables, nft) to cut a loopback node's routes")

    async def scenario(run: ClusterRun) -> None:
        await run.places_acked(0.3)
        node = run.cluster_bus.node_of("connector.")
        await run.node_fault(f"partition isolating {node} (the connector's)", node,
                             lambda: hosts.isolate(node), lambda: hosts.heal(node))
        moved = run.connections_after[run.faults[-1].kind]
        assert any(name.startswith("connector.") for names in moved.values() for name in names), moved

    run_scenario("partition", STEADY, hosts, tmp_path, scenario)


def test_a_rolling_restart_of_every_node_and_every_service(hosts: Hosts, tmp_path: Path) -> None:
    async def scenario(run: ClusterRun) -> None:
        await run.places_acked(0.1)
        for node in run.cluster_bus.names:
            await run.node_fault(f"restart {node}", node, lambda n=node: run.cluster_bus.terminate(n),
                                 lambda n=node: run.cluster_bus.restart(n))
        for service in SERVICES:
            await run.service_restart(service)

    run_scenario("rolling restart", ROLLING, hosts, tmp_path, scenario)


def test_clients_and_services_reconnect_across_node_loss(hosts: Hosts, tmp_path: Path) -> None:
    """SIGKILL of the node the connector and the client talk to: every service and the
    client is found connected to a surviving node, none restarted."""
    async def scenario(run: ClusterRun) -> None:
        await run.places_acked(0.3)
        node = run.cluster_bus.node_of("connector.")
        await run.node_fault(f"SIGKILL of {node} (the connector's)", node,
                             lambda: run.cluster_bus.kill(node), lambda: run.cluster_bus.restart(node))
        held = [name for names in run.connections_after[run.faults[-1].kind].values() for name in names]
        for prefix in ("risk.", "oms.", "audit.", "connector.", "chaos-client"):
            assert any(name.startswith(prefix) for name in held), (prefix, held)

    run_scenario("node loss", STEADY, hosts, tmp_path, scenario)


# Bounded flows that outlast their scenario's faults on two busy cores.
STEADY = ChaosPlan(seed=17, orders=360, accounts=("a1", "a2", "a3"), pace=0.2)
ROLLING = ChaosPlan(seed=18, orders=480, accounts=("a1", "a2", "a3"), pace=0.3)
