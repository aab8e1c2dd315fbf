"""`tradebus status`'s node table from the streams' replica info (cli/clusterview.py)."""

from __future__ import annotations

from nats.js.api import ClusterInfo, PeerInfo

from tradebus.cli.clusterview import BEHIND, CURRENT, OFFLINE, NodeView, _add, node_table


def test_nodes_are_judged_from_every_stream_they_hold() -> None:
    nodes: dict[str, NodeView] = {}
    _add(nodes, "CMD", ClusterInfo(leader="nats-1", replicas=[
        PeerInfo(name="nats-2", current=True, active=200_000_000), PeerInfo(name="nats-3", current=False, lag=4)]))
    _add(nodes, "EVENTS", ClusterInfo(leader="nats-2", replicas=[
        PeerInfo(name="nats-1", current=True), PeerInfo(name="nats-3", current=False, offline=True)]))
    _add(nodes, "ROUTE", ClusterInfo(leader="nats-2", replicas=[
        PeerInfo(name="nats-1", current=True, active=9_000_000_000), PeerInfo(name="nats-3", current=True)]))
    assert {name: node.state for name, node in nodes.items()} == {"nats-1": OFFLINE, "nats-2": CURRENT, "nats-3": OFFLINE}
    assert nodes["nats-1"].offline == ["ROUTE (silent 9s)"]  # its leader has not heard from it lately
    assert nodes["nats-3"].offline == ["EVENTS"] and nodes["nats-3"].behind == ["CMD (4)"]
    assert nodes["nats-2"].leads == ["EVENTS", "ROUTE"] and nodes["nats-2"].replicas == 3
    table = node_table(sorted(nodes.values(), key=lambda node: node.name)).splitlines()
    assert table[0].split() == ["NATS", "NODE", "STATE", "REPLICAS", "DETAIL"]
    assert "offline for EVENTS; behind in CMD (4)" in table[3]


def test_a_replica_only_behind_is_behind() -> None:
    nodes: dict[str, NodeView] = {}
    _add(nodes, "CMD", ClusterInfo(leader="nats-1", replicas=[PeerInfo(name="nats-2", current=False, lag=1)]))
    assert nodes["nats-2"].state == BEHIND
