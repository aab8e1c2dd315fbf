"""The bus `tradebus up` runs: one embedded nats-server, or with `--cluster N` a NATS
cluster of N nodes on loopback ports (shared/natscluster.py), each guarded like the single
server (busguard.py: restarted on exit or hang, a row of its own in the table).

A cluster's nodes keep their stores in `<data dir>/nats-cluster/<node>` (the single server's
is `<data dir>/nats`: the two are different buses), and every stream and bucket is
provisioned with 3 replicas before any service starts (TRADEBUS_STREAMS__REPLICAS=3 for
the services too, so what they would create matches). Services and clients get every
node's URL, comma-separated, and fail over between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from tradebus.shared.busaccess import connect_bus
from tradebus.shared.natscluster import CLUSTER_REPLICAS, NatsCluster, loopback_nodes, wait_for_jetstream
from tradebus.shared.natsserver import NatsServer, NatsServerError
from tradebus.shared.topology import Outcome, StreamSettings, provision

from .busguard import BusGuard
from .datadirlock import DataDirLock
from .supervisor import Notes


class BusNotStarted(RuntimeError):
    """The embedded bus could not be started (the reason is the message)."""


@dataclass
class EmbeddedBus:
    url: str  # comma-separated for a cluster
    servers: list[NatsServer]
    env: dict[str, str]  # what every service needs besides the URL (a cluster's replica count)

    def guards(self, lock: DataDirLock, notes: Notes) -> list[BusGuard]:
        if len(self.servers) == 1:
            return [BusGuard(self.servers[0], lock, notes)]
        return [BusGuard(server, lock, notes, name=server.store_dir.name) for server in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


async def start_bus(*, data_dir: Path, log_dir: Path, port: int, cluster: int, lock: DataDirLock,
              config_file: Path | None) -> EmbeddedBus:
    """Start the single server (`cluster` 0) or a cluster of `cluster` nodes from `port` on."""
    if not cluster:
        server = NatsServer(store_dir=data_dir / "nats", port=port, log_file=log_dir / "nats-server.log",
                            config_file=config_file, pass_fds=(lock.fd,), die_with_parent=True)
        try:
            server.start()
        except NatsServerError as exc:
            raise BusNotStarted(str(exc)) from None
        return EmbeddedBus(server.url, [server], {})
    if cluster < CLUSTER_REPLICAS:
        raise BusNotStarted(f"--cluster {cluster}: a cluster needs {CLUSTER_REPLICAS} nodes or more "
                            f"(its streams keep {CLUSTER_REPLICAS} replicas)")
    if config_file is not None:
        raise BusNotStarted("--cluster with --secure is not supported by `up` yet: a secured cluster runs from "
                            "deploy/nats/cluster-r3.conf.example")
    nats = NatsCluster(loopback_nodes(cluster, port), data_dir / "nats-cluster", log_dir=log_dir,
                       pass_fds=(lock.fd,), die_with_parent=True)
    try:
        nats.start()
        await wait_for_jetstream(nats.url, timeout=30)
    except (NatsServerError, TimeoutError) as exc:
        nats.stop()
        raise BusNotStarted(f"the NATS cluster did not start: {exc}") from None
    return EmbeddedBus(nats.url, nats.servers, {"TRADEBUS_STREAMS__REPLICAS": str(CLUSTER_REPLICAS)})


async def provision_replicated(bus: EmbeddedBus, streams: StreamSettings, venues: tuple[str, ...]) -> list[str]:
    """Streams, buckets and durables of a cluster, created or updated with 3 replicas; the
    items the cluster refused (none on a healthy cluster)."""
    nc = await connect_bus(bus.url, name="tradebus-provision", connect_timeout=5)
    try:
        done = await provision(nc.jetstream(timeout=10), msgspec.structs.replace(streams, replicas=CLUSTER_REPLICAS),
                               list(venues))
    finally:
        await nc.close()
    return [str(item) for item in done if item.outcome is Outcome.REFUSED]
