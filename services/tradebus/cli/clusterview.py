"""The NATS cluster's nodes as the fleet's streams and buckets see them (`tradebus status`).

JetStream names, for every replicated stream, its leader and each other replica: whether it
is current, how far behind it is, whether it is offline, when its leader last heard from it
(a frozen or cut-off node stays "current" for a while: silence says more). Put together per node, that says
which nodes serve the fleet's data and which do not, from any one connection and with the
rights of any identity that may read stream info (one that may not sees no node table). A bus
of one server is not asked at all: no table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nats
import nats.errors
from nats.js.api import ClusterInfo
from nats.js.errors import APIError

from tradebus.shared.busaccess import PermissionRefused
from tradebus.shared.topology import BUCKETS, STREAMS

SILENT_AFTER = 5.0  # seconds a replica's leader has not heard from it: raft peers talk every second or so
OFFLINE = "offline"
BEHIND = "behind"
CURRENT = "current"


@dataclass
class NodeView:
    name: str
    leads: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    behind: list[str] = field(default_factory=list)  # stream (operations behind)
    replicas: int = 0

    @property
    def state(self) -> str:
        return OFFLINE if self.offline else BEHIND if self.behind else CURRENT

    def line(self) -> str:
        detail = [f"leads {', '.join(self.leads)}" if self.leads else "leads nothing"]
        if self.offline:
            detail.append(f"offline for {', '.join(self.offline)}")
        if self.behind:
            detail.append(f"behind in {', '.join(self.behind)}")
        return f"{self.name:<22} {self.state:<9} {self.replicas:>8}  {'; '.join(detail)}"


async def cluster_nodes(nc: nats.NATS, timeout: float = 2.0) -> list[NodeView]:
    """Every node holding a replica of a fleet stream or bucket; [] on a single server or
    when this identity may not read stream info."""
    if not _in_a_cluster(nc):
        return []  # asks nothing: an identity without the right would show up as a permission violation
    js = nc.jetstream(timeout=timeout)
    nodes: dict[str, NodeView] = {}
    for stream in [s.name for s in STREAMS] + [f"KV_{bucket}" for bucket in BUCKETS]:
        try:
            info = await js.stream_info(stream)
        except PermissionRefused:
            return []  # not this identity's to read (a tenant's): no node table
        except (APIError, nats.errors.Error, TimeoutError):
            continue  # missing, or between leaders: judged from the others
        if info.cluster is not None and info.cluster.replicas:
            _add(nodes, stream, info.cluster)
    return sorted(nodes.values(), key=lambda node: node.name)


def _in_a_cluster(nc: nats.NATS) -> bool:
    """Whether the server of this connection is a node of a cluster: its INFO names the
    cluster (nats-py keeps that INFO private)."""
    info = getattr(nc, "_server_info", None)
    return isinstance(info, dict) and bool(info.get("cluster"))


def _add(nodes: dict[str, NodeView], stream: str, cluster: ClusterInfo) -> None:
    if cluster.leader:
        leader = nodes.setdefault(cluster.leader, NodeView(cluster.leader))
        leader.leads.append(stream)
        leader.replicas += 1
    for peer in cluster.replicas or []:
        if not peer.name:
            continue
        node = nodes.setdefault(peer.name, NodeView(peer.name))
        node.replicas += 1
        silent = (peer.active or 0) / 1e9  # nanoseconds since its leader last heard from it
        if peer.offline:
            node.offline.append(stream)
        elif silent > SILENT_AFTER:
            node.offline.append(f"{stream} (silent {silent:.0f}s)")
        elif not peer.current:
            node.behind.append(f"{stream} ({peer.lag or 0})")
    if not cluster.leader:  # no leader: every replica's stream is unavailable
        for node in nodes.values():
            if stream not in node.offline and any(p.name == node.name for p in cluster.replicas or []):
                node.offline.append(f"{stream} (no leader)")


def node_table(nodes: list[NodeView]) -> str:
    header = f"{'NATS NODE':<22} {'STATE':<9} {'REPLICAS':>8}  DETAIL"
    return "\n".join([header, *(node.line() for node in nodes)])
