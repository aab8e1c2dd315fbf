"""Test hosts for a NATS cluster: one network namespace per node where namespaces can be
made, else loopback ports; the mode is detected at run time and reported.

Namespaces (`ip netns add`, root here and in CI): each node gets a namespace of its own, a
veth pair whose outer end joins a bridge made for the run, and an address of its own on a
private /24 (10.213.x.0). The services and the test client run outside, in this namespace,
and reach every node through the bridge, as machines on one switch. Isolating a node is
`ip link set <its outer veth end> down`: its routes and its clients' connections go silent
(no reset, no error: packets are simply not carried), as when a cable or a switch port
fails; `heal` sets the link up again.

Loopback (no namespaces: no root, no `ip`, a container without CAP_SYS_ADMIN): every node on
127.0.0.1 with ports of its own. Processes can be killed and restarted, but nothing can cut
one node's routes without a packet filter, which these machines lack (no iptables or nft):
`can_partition` is False and says why, and the partition scenarios skip with that reason.

Only the run's own namespaces, bridge and addresses (or loopback) are ever touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from tradebus.shared.natscluster import Node
from tradebus.shared.natsserver import free_port

NODES = 3
CLIENT_PORT = 4222  # inside a namespace every node has the whole port space to itself
ROUTE_PORT = 6222
MONITOR_PORT = 8222


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=10)


@dataclass
class Hosts:
    mode: str  # "namespaces" or "loopback"
    reason: str  # why this mode (the loopback fallback's cause)
    nodes: list[Node]
    can_partition: bool
    _links: dict[str, str] = field(default_factory=dict)  # node name: its outer veth end
    _namespaces: list[str] = field(default_factory=list)
    _bridge: str = ""

    def isolate(self, name: str) -> None:
        """Cut node `name` off from every other node and every client."""
        assert self.can_partition, self.reason
        _ip("link", "set", self._links[name], "down")

    def heal(self, name: str) -> None:
        _ip("link", "set", self._links[name], "up")

    def remove(self) -> None:
        """Delete the run's namespaces (their veth pairs go with them) and bridge. Stop the
        servers first: a namespace lives on while a process runs in it."""
        for namespace in self._namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)
        if self._bridge:
            subprocess.run(["ip", "link", "del", self._bridge], capture_output=True, timeout=10)


def make_hosts(count: int = NODES) -> Hosts:
    """Namespaces when they can be made, else loopback (with the reason)."""
    if os.geteuid() != 0:
        reason = "not root: network namespaces cannot be made"
    elif shutil.which("ip") is None:
        reason = "no `ip` command (iproute2): network namespaces cannot be made"
    else:
        hosts = Hosts("namespaces", "", [], can_partition=True)
        try:
            _build_namespaces(hosts, count)
            return hosts
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            hosts.remove()
            detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else "timed out"
            reason = f"`{' '.join(map(str, exc.cmd))}` failed: {detail}"
    nodes = [Node(f"nats-{n}", "127.0.0.1", free_port(), free_port(), free_port()) for n in range(1, count + 1)]
    return Hosts("loopback", reason, nodes, can_partition=False)


def _build_namespaces(hosts: Hosts, count: int) -> None:
    run = os.getpid() % 100_000  # names stay within 15 characters: tb<run>v<n>
    subnet = f"10.213.{run % 250}"
    hosts._bridge = f"tb{run}br"
    _ip("link", "add", hosts._bridge, "type", "bridge")
    _ip("addr", "add", f"{subnet}.1/24", "dev", hosts._bridge)
    _ip("link", "set", hosts._bridge, "up")
    for n in range(1, count + 1):
        namespace, outer, inner = f"tb{run}-nats-{n}", f"tb{run}v{n}", f"tb{run}p{n}"
        _ip("netns", "add", namespace)
        hosts._namespaces.append(namespace)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", namespace)
        _ip("link", "set", outer, "master", hosts._bridge)
        _ip("link", "set", outer, "up")
        _ip("-n", namespace, "addr", "add", f"{subnet}.{10 + n}/24", "dev", inner)
        _ip("-n", namespace, "link", "set", inner, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        name = f"nats-{n}"
        hosts._links[name] = outer
        hosts.nodes.append(Node(name, f"{subnet}.{10 + n}", CLIENT_PORT, ROUTE_PORT, MONITOR_PORT,
                                wrapper=("ip", "netns", "exec", namespace)))
