"""A chaos run's bus as a 3-node NATS cluster on the test hosts (hosts.py): the same five
methods as the single server of tests/integration/chaos.py (`SingleServer`), with one
fault kind per node, plus what the scenarios ask of a cluster: which node leads a stream,
which node each process is connected to (the nodes' /connz), and whether every replica of
every stream and bucket is current again (clusterview.py, as `tradebus status` shows it).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import nats
import nats.errors
from nats.js.errors import APIError

from tests.integration.test_order_path_faults import FLEET_CONSUMERS
from tradebus.cli.clusterview import CURRENT, cluster_nodes
from tradebus.shared.natscluster import CLUSTER_REPLICAS, NatsCluster, wait_for_jetstream

from .hosts import Hosts


class ClusterBus:
    replicas = CLUSTER_REPLICAS

    def __init__(self, hosts: Hosts, work: Path) -> None:
        self.hosts = hosts
        self.cluster = NatsCluster(hosts.nodes, work / "nats-cluster")

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.hosts.nodes]

    def start(self) -> None:
        self.cluster.start()
        asyncio.run(wait_for_jetstream(self.url, timeout=60))

    def stop(self) -> None:
        self.cluster.stop()

    def kill(self, kind: str) -> None:
        self.cluster.server(kind).kill()

    def terminate(self, kind: str) -> None:
        """SIGTERM, as an operator stops a node for an upgrade."""
        self.cluster.server(kind).stop()

    def restart(self, kind: str) -> None:
        self.cluster.server(kind).start()

    def exited(self) -> list[tuple[str, int]]:
        return [(name, server.process.returncode) for name, server in zip(self.names, self.cluster.servers, strict=True)
                if server.process is not None and server.process.poll() is not None]

    def connections(self, skip: set[str] = frozenset()) -> dict[str, list[str]]:  # type: ignore[assignment]
        """node name: the names of the client connections it holds (nodes in `skip`, cut off
        or down, are not asked)."""
        held = {}
        for node in self.hosts.nodes:
            if node.name in skip:
                continue
            with urllib.request.urlopen(f"http://{node.host}:{node.monitor_port}/connz?limit=4096", timeout=3) as answer:
                held[node.name] = [c.get("name", "") for c in json.load(answer).get("connections", [])]
        return held

    def meta_leader(self, skip: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        """The JetStream meta leader (it places streams and consumers), as a node's /jsz says."""
        for node in self.hosts.nodes:
            if node.name not in skip:
                with urllib.request.urlopen(f"http://{node.host}:{node.monitor_port}/jsz", timeout=3) as answer:
                    return str(json.load(answer).get("meta_cluster", {}).get("leader", ""))
        return ""

    def node_of(self, connection_prefix: str) -> str:
        """The node a connection whose name starts with `connection_prefix` is on."""
        for node, names in self.connections().items():
            if any(name.startswith(connection_prefix) for name in names):
                return node
        raise AssertionError(f"no node holds a connection named {connection_prefix}*: {self.connections()}")


async def stream_leader(nc: nats.NATS, stream: str) -> str:
    info = await nc.jetstream(timeout=5).stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, info
    return info.cluster.leader


async def wait_caught_up(nc: nats.NATS, nodes: int, timeout: float = 60) -> float:
    """Until every replica of every fleet stream and bucket, on all `nodes` nodes, is current
    and every durable consumer of the fleet has a leader and current replicas (a returned
    node has caught up); seconds it took. AssertionError with the last view if not within
    `timeout`."""
    started = time.monotonic()
    view: list[str] = []
    while time.monotonic() - started < timeout:
        found = await cluster_nodes(nc)
        view = [node.line() for node in found]
        if len(found) == nodes and all(node.state == CURRENT for node in found):
            behind = await _consumers_behind(nc)
            if not behind:
                return time.monotonic() - started
            view.append(f"consumers without a leader or with replicas behind: {behind}")
        await asyncio.sleep(0.25)
    raise AssertionError("replicas not current in time:\n" + "\n".join(view))


async def _consumers_behind(nc: nats.NATS) -> list[str]:
    js = nc.jetstream(timeout=2)
    behind = []
    for stream, durable in FLEET_CONSUMERS:
        try:
            cluster = (await js.consumer_info(stream, durable)).cluster
        except (APIError, nats.errors.Error, TimeoutError):
            behind.append(durable)
            continue
        if cluster is None or not cluster.leader or any(p.offline or not p.current for p in cluster.replicas or []):
            behind.append(durable)
    return behind
