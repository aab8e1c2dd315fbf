"""A NATS cluster with JetStream: N nodes, each a nats-server (natsserver.py) with its own
configuration file and its own store.

`tradebus up --cluster 3` runs one on loopback ports (`loopback_nodes`); the failure tests run
one node per network namespace (tests/fault/hosts.py). Every node keeps JetStream's
`sync_interval: always` (the Jepsen analysis of NATS lost acknowledged writes without it) and
routes to every other node; streams and buckets get replicas 3 from provisioning
(`CLUSTER_REPLICAS`), so a publish is acknowledged once two of three nodes have it on disk.

Pings every PING_INTERVAL seconds, PING_MAX unanswered ones: the server's default (two
minutes) would leave a node or client cut off by a partition believing in its peer for
minutes; these notice it in seconds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
from nats.js.errors import APIError, ServiceUnavailableError

from .natsserver import NatsServer, NatsServerError

CLUSTER_NAME = "tradebus"
CLUSTER_REPLICAS = 3  # every stream and bucket: survives the loss of any one node of three
ROUTE_PORT_OFFSET = 2000  # a node's route port: its client port + 2000 (4222 -> 6222, NATS' own pairing)
PING_INTERVAL = "2s"
PING_MAX = 3


@dataclass(frozen=True)
class Node:
    """Where one node listens: clients on host:port, the other nodes on host:route_port,
    monitoring (HTTP: /varz, /connz, /jsz) on host:monitor_port when it is set."""

    name: str  # nats-1 ...: JetStream's raft peers are known by it, never change it for a store
    host: str
    port: int
    route_port: int
    monitor_port: int = 0
    wrapper: tuple[str, ...] = ()  # runs its nats-server, e.g. `ip netns exec NS`

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats://{self.host}:{self.route_port}"


def loopback_nodes(count: int, port: int, host: str = "127.0.0.1") -> list[Node]:
    """`count` nodes on one host: clients on port, port+1, ...; routes on those + 2000."""
    return [Node(f"nats-{n + 1}", host, port + n, port + ROUTE_PORT_OFFSET + n) for n in range(count)]


def node_config(node: Node, nodes: Sequence[Node]) -> str:
    """The configuration file of `node` in a cluster of `nodes` (listen address, port and
    store come from the command line, natsserver.py)."""
    routes = ", ".join(f'"{peer.route_url}"' for peer in nodes if peer != node)
    monitor = f'http: "{node.host}:{node.monitor_port}"\n' if node.monitor_port else ""
    return f"""# {node.name} of the {len(nodes)}-node cluster `{CLUSTER_NAME}` (written by tradebus; natscluster.py)
server_name: {node.name}
ping_interval: "{PING_INTERVAL}"
ping_max: {PING_MAX}
{monitor}
jetstream {{
  # fsync every write before acknowledging it: an order command or fill survives a power loss.
  sync_interval: always
}}

cluster {{
  name: {CLUSTER_NAME}
  listen: "{node.host}:{node.route_port}"
  routes: [{routes}]
}}
"""


class NatsCluster:
    """The nodes' servers, each with its store `<data_dir>/<node name>`, its configuration
    `<data_dir>/<node name>.conf` and its log in `log_dir`."""

    def __init__(self, nodes: Sequence[Node], data_dir: str | os.PathLike[str], *,
                 log_dir: str | os.PathLike[str] | None = None, pass_fds: tuple[int, ...] = (),
                 die_with_parent: bool = False) -> None:
        self.nodes = list(nodes)
        self.data_dir = Path(data_dir)
        logs = Path(log_dir) if log_dir else self.data_dir
        self.servers = [
            NatsServer(store_dir=self.data_dir / node.name, host=node.host, port=node.port,
                       log_file=logs / f"{node.name}.log", config_file=self.data_dir / f"{node.name}.conf",
                       pass_fds=pass_fds, die_with_parent=die_with_parent, wrapper=node.wrapper)
            for node in self.nodes
        ]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: what services and clients are given (they fail over)."""
        return ",".join(node.url for node in self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def server(self, name: str) -> NatsServer:
        return self.servers[[node.name for node in self.nodes].index(name)]

    def write_configs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for node, server in zip(self.nodes, self.servers, strict=True):
            assert server.config_file is not None
            Path(server.config_file).write_text(node_config(node, self.nodes))

    def start(self, timeout: float = 30.0) -> None:
        """Every node launched, then each waited for until it listens (a node alone cannot
        form the cluster); `wait_for_jetstream` then waits for the cluster itself."""
        self.write_configs()
        for server in self.servers:
            server.launch()
        try:
            for server in self.servers:
                server.wait_listening(timeout)
        except NatsServerError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        for server in self.servers:
            server.stop(timeout)


async def wait_for_jetstream(url: str, timeout: float) -> None:
    """Until the cluster at `url` (comma-separated) answers a JetStream request: its nodes
    have met and elected a meta leader. TimeoutError if not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    nc = await nats.connect(url.split(","), connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream(timeout=2)
        while True:
            try:
                await js.account_info()
                return
            except (nats.errors.Error, APIError, ServiceUnavailableError, TimeoutError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the cluster at {url} elected no JetStream leader within {timeout:g}s") from None
                await asyncio.sleep(0.2)
    finally:
        await nc.close()
