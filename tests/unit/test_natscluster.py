"""The cluster profile's node configurations (shared/natscluster.py), as nats-server reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tradebus.shared.natscluster import NatsCluster, loopback_nodes
from tradebus.shared.natsserver import nats_server_binary


def test_every_node_configuration_is_valid_durable_and_routes_to_the_others(tmp_path: Path) -> None:
    nodes = loopback_nodes(3, 4300)
    assert [(n.name, n.port, n.route_port) for n in nodes] == [
        ("nats-1", 4300, 6300), ("nats-2", 4301, 6301), ("nats-3", 4302, 6302)]
    cluster = NatsCluster(nodes, tmp_path)
    cluster.write_configs()
    assert cluster.url == "nats://127.0.0.1:4300,nats://127.0.0.1:4301,nats://127.0.0.1:4302"
    for node in nodes:
        config = tmp_path / f"{node.name}.conf"
        checked = subprocess.run([nats_server_binary(), "-t", "-c", str(config)], capture_output=True, text=True,
                                 timeout=30)
        assert checked.returncode == 0, checked.stderr
        text = config.read_text()
        assert "sync_interval: always" in text and f"server_name: {node.name}" in text
        routes = text.split("routes: [", 1)[1].split("]", 1)[0]
        assert sorted(routes.replace('"', "").split(", ")) == sorted(p.route_url for p in nodes if p != node)
