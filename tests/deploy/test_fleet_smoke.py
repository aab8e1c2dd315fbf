"""The compose fleet for real, with testcontainers: built, started, provisioned on its 3-node
cluster, every service healthy, and an order placed by the tenant `client` through the
host's ports comes back filled. Needs a Docker engine; without one it skips, saying so (the
static checks of test_compose.py and the running cluster of tests/integration/test_deploy.py
still ran)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradebus.shared.natsserver import free_port

from .deployfiles import NATS_NODES, PASSWORDS, PROVISION, REPO, base_env, compose_values

HEALTHY = ("risk", "oms", "audit", "connector-paper", "postgres", *NATS_NODES)


def no_engine_reason() -> str | None:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # testcontainers brings it; an environment without the test extra lacks it
        return "the docker package is not installed (pip install -e '.[test]')"
    try:
        docker.from_env().ping()
    except DockerException as exc:
        return f"no Docker engine reachable here ({str(exc)[:120]})"
    return None


@pytest.mark.slow
def test_the_compose_fleet_starts_healthy_and_fills_an_order(tmp_path: Path) -> None:
    reason = no_engine_reason()
    if reason is not None:
        pytest.skip(reason)
    from testcontainers.compose import DockerCompose

    ports = {node: free_port() for node in NATS_NODES}
    values = {**compose_values(), "TRADEBUS_IMAGE_TAG": "smoke", "TRADEBUS_SECRETS_DIR": str(tmp_path)}
    for index, node in enumerate(NATS_NODES, start=1):
        values[f"TRADEBUS_NATS_PORT_{index}"] = str(ports[node])
        values[f"TRADEBUS_NATS_MONITOR_PORT_{index}"] = str(free_port())
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    env_file.chmod(0o600)

    fleet = DockerCompose(REPO, compose_file_name="docker-compose.yml", build=True, wait=False, env_file=str(env_file))
    with fleet:
        deadline = time.monotonic() + 300
        while True:  # `docker compose ps`, each time
            provision = fleet.get_container(PROVISION, include_all=True)
            health = {name: fleet.get_container(name).Health for name in HEALTHY}
            if provision.State == "exited":
                assert provision.ExitCode == 0, fleet.get_logs(PROVISION)
                if all(status == "healthy" for status in health.values()):
                    break
            assert time.monotonic() < deadline, (provision.State, health)
            time.sleep(2)
        url = ",".join(f"nats://client:{PASSWORDS['client']}@127.0.0.1:{ports[node]}" for node in NATS_NODES)
        env = {**base_env(), "TRADEBUS_NATS_URL": url}
        placed = subprocess.run(
            [sys.executable, "-m", "tradebus.cli.main", "order", "place", "--symbol", "BTC/USDT", "--side", "buy",
             "--qty", "0.01", "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert placed.returncode == 0, placed.stderr
        assert "filled" in [json.loads(line)["type"] for line in placed.stdout.splitlines()], placed.stdout
