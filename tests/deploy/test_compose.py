"""docker-compose.yml, checked statically (no Docker engine here) and by `docker-compose
config` where that tool is installed: the 3-node NATS cluster on the generated profile, its
one-shot provisioning, the order path with the audit logger on PostgreSQL, one connector per
venue of the VenueSpec registry, Prometheus and Grafana; every secret from .env or a Docker
secret, never in the file."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradebus.services.connector.venuespecs import VENUE_SPECS
from tradebus.shared.tenants import load_tenants

from .deployfiles import (
    ALERTS,
    COMPOSE_FILE,
    DASHBOARDS,
    MONITORING,
    NATS_CONF,
    NATS_NODES,
    PASSWORD_ENV,
    PASSWORDS,
    PROMETHEUS,
    PROVISION,
    README,
    REPO,
    ROUTE_PASSWORD_ENV,
    TENANTS,
    USERS,
    base_env,
    check_settings,
    cluster_config_dir,
    compose,
    compose_values,
    compose_variables,
    config_test,
    env_example,
    exec_form,
    fleet_services,
    healthcheck_argv,
    interpolate,
    resolved_environment,
    stages,
    tradebus_services,
)

ORDER_PATH = ("risk", "oms", "audit")
BESIDE_THE_ORDER_PATH = ("sizing",)
MONITORING_SERVICES = {"prometheus", "grafana", *(f"nats-exporter-{node[-1]}" for node in NATS_NODES)}
ENTRYPOINT = ["tradebus"]


def mounts(spec: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's `source:target[:options]` volumes."""
    return {parts[1]: parts[0] for parts in (volume.split(":") for volume in spec.get("volumes", []))}


def test_a_plain_up_runs_the_cluster_the_order_path_and_the_paper_venue() -> None:
    services = compose()["services"]
    default = {name for name, spec in services.items() if not spec.get("profiles")}
    assert default == {*NATS_NODES, PROVISION, *ORDER_PATH, *BESIDE_THE_ORDER_PATH, "postgres", "connector-paper"}
    monitoring = {name for name, spec in services.items() if "monitoring" in spec.get("profiles", [])}
    assert monitoring == MONITORING_SERVICES


def test_every_venue_has_a_connector_service_built_from_its_own_target() -> None:
    services = compose()["services"]
    connectors = {name for name in services if name.startswith("connector-")}
    assert connectors == {f"connector-{venue}" for venue in VENUE_SPECS}
    for venue, spec in VENUE_SPECS.items():
        name = f"connector-{venue}"
        service = services[name]
        assert service["build"]["target"] == name and name in stages(), name
        assert service["image"].startswith(f"tradebus-{name}:"), name
        assert ENTRYPOINT + service["command"] == ["tradebus", "run", "connector", "--venue", venue]
        if venue == "paper":
            assert "profiles" not in service
            continue
        assert service["profiles"] == [venue], name  # `docker compose --profile <venue> up`
        if not spec.needs_credentials:  # IBKR: its gateway is logged in by its user, nothing to hand over
            assert "secrets" not in service and "TRADEBUS_SECRETS_FILE" not in service["environment"], name
            continue
        # its API credentials: a Docker secret, the dotenv file TRADEBUS_SECRETS_FILE names
        assert service["secrets"] == [venue], name
        assert service["environment"]["TRADEBUS_SECRETS_FILE"] == f"/run/secrets/{venue}", name
        assert compose()["secrets"][venue]["file"].endswith(f"/{venue}.env"), name


def test_every_tradebus_service_starts_after_provisioning_with_the_images_probe() -> None:
    probe = ["CMD", *healthcheck_argv()]
    for name, spec in fleet_services().items():
        assert spec["build"]["target"] in stages(), name
        assert "entrypoint" not in spec, name
        argv = ENTRYPOINT + spec["command"]
        assert argv[:2] == ["tradebus", "run"], (name, argv)
        if argv[2] != "connector":
            assert argv[2] == name and spec["build"]["target"] == "core", name
        assert spec["restart"] == "unless-stopped", name
        # nats healthy, then provisioned (a service may not create what it uses)
        assert spec["depends_on"][PROVISION] == {"condition": "service_completed_successfully"}, name
        assert spec["healthcheck"]["test"] == probe, name
        assert spec["healthcheck"]["timeout"], name  # Docker's own bound on a frozen process
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], name


def test_provisioning_shapes_the_bus_once_for_every_connector_before_the_services_start() -> None:
    spec = compose()["services"][PROVISION]
    assert spec["build"]["target"] == "core"
    argv = ENTRYPOINT + spec["command"]
    venues = sorted(name.removeprefix("connector-") for name in fleet_services() if name.startswith("connector-"))
    assert argv[:2] == ["tradebus", "provision"]
    assert sorted(argv[3::2]) == venues and set(argv[2::2]) == {"--venue"}
    assert spec["restart"] == "no"  # a one-shot: done once it exited 0
    assert spec["depends_on"] == {node: {"condition": "service_healthy"} for node in NATS_NODES}
    assert spec["healthcheck"] == {"disable": True}  # nothing to probe; compose waits for its exit
    assert "profiles" not in spec  # whatever profile runs a service runs it first


def test_every_container_environment_is_valid_settings_listing_every_node_as_its_own_user() -> None:
    values = compose_values()
    replicas = set()
    for name, spec in tradebus_services().items():
        assert "env_file" not in spec, f"{name}: an env file would hand it every password"
        environment = resolved_environment(spec, values)
        for key in environment:
            assert key.startswith("TRADEBUS_"), (name, key)
        settings = check_settings(environment)
        if name != PROVISION:
            assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080), name
        assert name in USERS, f"{name} has no NATS user in nats-server.conf"
        assert settings.nats_url == ",".join(f"nats://{name}:{PASSWORDS[name]}@{node}:4222" for node in NATS_NODES)
        replicas.add(settings.streams.replicas)
    # `provision` creates the streams with the replicas every service is told about: one per node
    assert replicas == {3}


def test_the_audit_logger_stores_in_postgresql_which_only_it_reaches() -> None:
    services = compose()["services"]
    values = compose_values()
    audit = check_settings(resolved_environment(services["audit"], values)).audit
    assert audit.store == "postgres"
    postgres = resolved_environment(services["postgres"], values)
    dsn = audit.postgres_dsn.reveal() if hasattr(audit.postgres_dsn, "reveal") else str(audit.postgres_dsn)
    assert dsn == (f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{postgres['POSTGRES_DB']}")
    assert services["audit"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    on_store = {name for name, spec in services.items() if "store" in spec.get("networks", [])}
    assert on_store == {"audit", "postgres"}
    assert services["postgres"]["networks"] == ["store"]
    assert "ports" not in services["postgres"]
    assert mounts(services["postgres"])["/var/lib/postgresql/data"] in compose()["volumes"]


def test_the_order_manager_reads_the_tenants_file_the_profile_was_generated_from() -> None:
    oms = compose()["services"]["oms"]
    path = oms["environment"]["TRADEBUS_OMS__TENANTS_FILE"]
    volume = next(v for v in oms["volumes"] if v.split(":")[1] == path)
    source, _, options = volume.split(":")
    assert (REPO / source).resolve() == TENANTS.resolve() and options == "ro"
    assert f"--tenants {TENANTS.relative_to(REPO)} " in NATS_CONF.read_text()
    for tenant in load_tenants(TENANTS):
        assert tenant.name in USERS, f"tenant {tenant.name} has no user in nats-server.conf"


def test_the_nats_nodes_form_one_cluster_on_the_generated_profile_with_persistent_stores() -> None:
    services = compose()["services"]
    values = compose_values()
    names = set()
    for node in NATS_NODES:
        spec = services[node]
        image, _, tag = spec["image"].partition(":")
        assert image == "nats"
        assert tuple(int(part) for part in re.match(r"(\d+)\.(\d+)", tag).groups()) >= (2, 12)  # type: ignore[union-attr]
        command = spec["command"]
        config = command[command.index("--config") + 1]
        store_dir = command[command.index("--store_dir") + 1]
        sources = mounts(spec)
        assert (REPO / sources[config]).name == "cluster-r3.conf.example"
        # cluster-r3.conf includes ./nats-server.conf: the profile sits next to it
        assert (REPO / sources[str(Path(config).parent / "nats-server.conf")]).resolve() == NATS_CONF.resolve()
        data = next(target for target, source in sources.items() if source in compose()["volumes"])
        assert store_dir.startswith(data.rstrip("/") + "/") and sources[data] == f"{node}-data"
        environment = resolved_environment(spec, values)
        names.add(environment["NATS_SERVER_NAME"])
        assert set(environment) == {*PASSWORD_ENV, *ROUTE_PASSWORD_ENV, "TRADEBUS_NATS_ROUTES", "NATS_SERVER_NAME"}
        routes = re.findall(r"nats://route:([^@]+)@([\w-]+):6222", environment["TRADEBUS_NATS_ROUTES"])
        assert routes == [(values["TRADEBUS_NATS_PASSWORD_ROUTE"], other) for other in NATS_NODES]
        for port in spec["ports"]:
            assert str(port).startswith("127.0.0.1:"), port
        assert "/healthz" in " ".join(spec["healthcheck"]["test"])
    assert names == set(NATS_NODES)


def test_each_nodes_configuration_passes_nats_server_config_test(tmp_path: Path) -> None:
    """`nats-server -t` on what each container runs, with the environment compose gives it;
    without the route password it refuses."""
    directory = cluster_config_dir(tmp_path)
    values = compose_values()
    for node in NATS_NODES:
        environment = {**base_env(), **resolved_environment(compose()["services"][node], values)}
        result = config_test(directory / "cluster.conf", environment, cwd=directory)
        assert result.returncode == 0, result.stdout + result.stderr
        del environment["TRADEBUS_NATS_PASSWORD_ROUTE"]
        assert config_test(directory / "cluster.conf", environment, cwd=directory).returncode != 0


def test_the_compose_file_holds_no_secrets() -> None:
    text = COMPOSE_FILE.read_text()
    # Every credential in a URL is a required variable.
    for match in re.finditer(r"://([^:/@\s]+):([^@\s]+)@", text):
        assert re.fullmatch(r"\$\{TRADEBUS_\w*PASSWORD\w*:\?[^}]*\}", match[2]), match[0]
    for name, spec in compose()["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN")) and not str(value).startswith("/run/secrets/"):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), (name, key)
    for key, value in env_example().items():
        if "PASSWORD" in key:
            assert value == "", key


def test_compose_variables_are_all_in_env_example_and_passwords_are_required() -> None:
    example = env_example()
    used = compose_variables()
    assert set(used) <= set(example), set(used) - set(example)
    for name, op in used.items():
        if "PASSWORD" in name:
            assert op == ":?", f"{name} must be required (${{{name}:?...}})"
        else:
            assert op in (":-", "-"), f"{name} needs a default"
    assert set(PASSWORD_ENV) | set(ROUTE_PASSWORD_ENV) <= set(used)


def test_prometheus_scrapes_every_service_and_node_and_grafana_is_provisioned() -> None:
    services = compose()["services"]
    config = yaml.safe_load(PROMETHEUS.read_text())
    groups = [group for job in config["scrape_configs"] for group in job["static_configs"]]
    labels = {target.split(":")[0]: (int(target.split(":")[1]), group.get("labels", {}))
              for group in groups for target in group["targets"]}
    for name in fleet_services():
        port, scraped = labels[name]
        assert port == 8080, name
        if name.startswith("connector-"):
            assert scraped == {"service": "connector", "venue": name.removeprefix("connector-")}, name
        else:
            assert scraped == {"service": name}, name
    for host in labels:
        assert host in services, host
    assert {f"nats-exporter-{node[-1]}" for node in NATS_NODES} <= set(labels)
    prometheus = mounts(services["prometheus"])
    assert (REPO / prometheus["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS.resolve()
    [rules] = config["rule_files"]
    assert (REPO / prometheus[rules]).resolve() == ALERTS.resolve()
    grafana = mounts(services["grafana"])
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/tradebus.yml").read_text())
    [path] = [p["options"]["path"] for p in provider["providers"]]
    assert (REPO / grafana[path]).resolve() == DASHBOARDS.resolve()
    datasources = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert [d["url"] for d in datasources["datasources"]] == ["http://prometheus:9090"]
    assert (REPO / grafana["/etc/grafana/provisioning"]).resolve() == (MONITORING / "grafana/provisioning").resolve()


def compose_command() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([*command, "version"], capture_output=True, timeout=30).returncode == 0:
                return command
    return None


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here (.ci/run installs Debian's); "
                    "the YAML checks above still ran")
    env_file = tmp_path / "compose.env"
    values = compose_values()
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    base = [*command, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE)]
    result = subprocess.run([*base, "--env-file", str(env_file), "--profile", "monitoring",
                             *(part for venue in VENUE_SPECS for part in ("--profile", venue)), "config"],
                            capture_output=True, text=True, env=base_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == set(compose()["services"])
    url = rendered["services"]["connector-paper"]["environment"]["TRADEBUS_NATS_URL"]
    assert url == interpolate(compose()["services"]["connector-paper"]["environment"]["TRADEBUS_NATS_URL"], values)
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run([*base, "--env-file", str(empty), "config"], capture_output=True, text=True,
                             env=base_env(), timeout=60)
    assert missing.returncode != 0 and "PASSWORD" in missing.stdout + missing.stderr


def test_the_deploy_readme_documents_every_service_user_and_the_durable_profile() -> None:
    text = README.read_text()
    for user in USERS:  # services, tenants, operator, readonly, provision
        assert f"`{user}`" in text, user
    first_cells = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    for name in compose()["services"]:
        assert any(f"`{name}`" in cell for cell in first_cells), f"compose service {name} missing from the README's table"
    generated_by = re.search(r"^#\s+(tradebus nats-config .+)$", NATS_CONF.read_text(), re.MULTILINE)
    assert generated_by and generated_by[1] in text
    for needle in ("sync_interval: always", "TRADEBUS_STREAMS__REPLICAS", "docker compose up", "deploy/env.example",
                   "deploy/monitoring/prometheus.yml", "deploy/tenants.toml", "TRADEBUS_OMS__TENANTS_FILE",
                   "service_completed_successfully", "docs/security.md", "docs/runbook.md", "kubectl apply -k deploy"):
        assert needle in text, needle
    assert exec_form('["tradebus", "provision"]')[1] in text
