"""The deployment files as the tests read them: paths, the compose file, the Dockerfile's
stages, compose's variable interpolation, the NATS profile's users, the services' metric
names and the metric names a PromQL expression uses."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tradebus.cli.run import build_service
from tradebus.services.settings import load_settings
from tradebus.shared.natsserver import nats_server_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NATS_CONF = DEPLOY / "nats" / "nats-server.conf"
CLUSTER_CONF = DEPLOY / "nats" / "cluster-r3.conf.example"
TENANTS = DEPLOY / "tenants.toml"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = DEPLOY / "env.example"
MONITORING = DEPLOY / "monitoring"
PROMETHEUS = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
KUSTOMIZATION = DEPLOY / "kustomization.yaml"
K8S = DEPLOY / "k8s"
RUNBOOK = REPO / "docs" / "runbook.md"
README = DEPLOY / "README.md"

NATS_SERVER = os.environ.get("NATS_SERVER_BIN") or nats_server_binary()
"""The server under test; NATS_SERVER_BIN checks the configs against another release
(e.g. the one the compose file's image ships)."""

PROVISION = "provision"
"""The one-shot compose service (and NATS user) that creates streams, buckets and durables."""
NATS_NODES = ("nats-1", "nats-2", "nats-3")


def base_env() -> dict[str, str]:
    """This process's environment without TRADEBUS_* (a developer's own settings must not leak in)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}


# --- the NATS profile ----------------------------------------------------------------------


def conf_users() -> dict[str, str]:
    """user -> the environment variable holding its password, as nats-server.conf declares them."""
    users = dict(re.findall(r"\{\s*user:\s*\"?([\w-]+)\"?,\s*password:\s*\$(\w+)", NATS_CONF.read_text()))
    assert users, "no `{user: NAME, password: $VAR ...}` entries found in nats-server.conf"
    return users


def strong_password() -> str:
    """What deploy/env.example tells operators to generate."""
    return "p" + secrets.token_hex(24)


USERS = conf_users()
PASSWORDS = {user: strong_password() for user in USERS}
PASSWORD_ENV = {USERS[user]: password for user, password in PASSWORDS.items()}
ROUTE_PASSWORD_ENV = {"TRADEBUS_NATS_PASSWORD_ROUTE": strong_password()}
"""The cluster's route password (cluster-r3.conf.example), besides the users'."""


def config_test(conf: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`nats-server -t`: parse the configuration (variables resolved from `env`) and exit."""
    return subprocess.run(
        [NATS_SERVER, "-t", "-c", str(conf)], env=env, cwd=cwd, capture_output=True, text=True, timeout=30
    )


def cluster_config_dir(tmp_path: Path) -> Path:
    """The cluster configuration as the containers mount it: cluster.conf next to the
    profile it includes."""
    shutil.copy(NATS_CONF, tmp_path / "nats-server.conf")
    shutil.copy(CLUSTER_CONF, tmp_path / "cluster.conf")
    return tmp_path


# --- docker-compose.yml ----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def tradebus_services() -> dict[str, dict[str, Any]]:
    """The compose services built from deploy/Dockerfile, the one-shot `provision` included."""
    return {name: spec for name, spec in compose()["services"].items() if "build" in spec}


def fleet_services() -> dict[str, dict[str, Any]]:
    """The long-running tradebus services (`tradebus run ...`)."""
    return {name: spec for name, spec in tradebus_services().items() if name != PROVISION}


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose_variables() -> dict[str, str | None]:
    """Every ${VAR...} of the compose file (comments excluded) -> its operator (`:?`, `:-`, ...)."""
    text = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    return {match["name"]: match["op"] for match in _VARIABLE.finditer(text)}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            return value if value else arg
        if op in (":?", "?"):
            assert value, f"compose would refuse to start: {name} unset ({arg})"
        assert value is not None, f"{name} is unset and has no default"
        return value

    return _VARIABLE.sub(substitute, text)


def env_example() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            entries[key.strip()] = value.strip()
    return entries


def compose_values() -> dict[str, str]:
    """What a filled-in .env holds: env.example's defaults and a password for every secret."""
    values = {**env_example(), **PASSWORD_ENV, **ROUTE_PASSWORD_ENV}
    for name, op in compose_variables().items():
        if op == ":?" and not values.get(name):
            values[name] = strong_password()
    return values


def resolved_environment(spec: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    environment = spec.get("environment") or {}
    assert isinstance(environment, dict), "write environment as a mapping"
    return {key: interpolate(str(value), values) for key, value in environment.items()}


def check_settings(environment: dict[str, str]) -> Any:
    """Exactly what a service does with its environment: unknown keys or bad values raise."""
    return load_settings(env=environment)


# --- deploy/Dockerfile -----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical]


@dataclass
class Stage:
    name: str
    base: str  # the image or stage it starts FROM
    instructions: list[tuple[str, str]]

    def values(self, instruction: str) -> list[str]:
        return [arg for name, arg in self.instructions if name == instruction]


def stages() -> dict[str, Stage]:
    """The Dockerfile's stages by name (`FROM base AS name`), in order."""
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for name, arg in dockerfile_instructions():
        if name == "FROM":
            base, _, stage_name = arg.partition(" AS ")
            assert stage_name, f"unnamed stage: FROM {arg}"
            current = found[stage_name.strip()] = Stage(stage_name.strip(), base.strip(), [])
        elif current is not None:
            current.instructions.append((name, arg))
    return found


def lineage(stage: str) -> Iterator[Stage]:
    """The stage and every stage it is built FROM, nearest first."""
    known = stages()
    while stage in known:
        yield known[stage]
        stage = known[stage].base


def inherited(stage: str, instruction: str) -> str | None:
    """The value a target gets for an instruction that later ones replace (CMD, USER, ...)."""
    for ancestor in lineage(stage):
        values = ancestor.values(instruction)
        if values:
            return values[-1]
    return None


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return value


def healthcheck_argv(stage: str = "runtime") -> list[str]:
    healthcheck = inherited(stage, "HEALTHCHECK")
    assert healthcheck is not None, f"no HEALTHCHECK for {stage}"
    return exec_form(healthcheck[healthcheck.index("CMD") + len("CMD"):].strip())


# --- metrics ---------------------------------------------------------------------------------

# What prometheus-nats-exporter exports and the rules or the dashboard read (its
# collector/jsz.go and collector/healthz.go, v0.16-v0.20: `jetstream_<kind>_<field>`,
# `gnatsd_healthz_status` 0 when the node's /healthz is ok).
NATS_EXPORTER_METRICS = frozenset({
    "jetstream_consumer_num_pending", "jetstream_consumer_num_ack_pending", "jetstream_consumer_num_redelivered",
    "jetstream_stream_total_messages", "gnatsd_healthz_status",
})
PROMETHEUS_METRICS = frozenset({"up"})
"""Series Prometheus makes for every scrape target."""

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "gauge": ("",), "info": ("_info",)}


def service_metrics() -> dict[str, set[str]]:
    """service -> the names of the series its registry can export (a counter `x` as
    `x_total`, a histogram as `x_bucket` / `x_sum` / `x_count`), from the real services,
    built as `tradebus run` builds them."""
    settings = load_settings(env={})
    names: dict[str, set[str]] = {}
    for name in ("connector", "risk", "oms", "audit", "sizing"):
        service = build_service(name, settings, "paper")
        names[name] = {family.name + suffix for family in service.metrics.registry.collect()
                       for suffix in _SUFFIXES[family.type]}
    return names


def known_metrics() -> frozenset[str]:
    return frozenset().union(*service_metrics().values()) | NATS_EXPORTER_METRICS | PROMETHEUS_METRICS


_PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
})


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are neither functions
    (followed by `(`), aggregation modifiers with their label lists, label matchers, range
    selectors, strings nor numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match[0]
        if word.lower() in _PROMQL_WORDS or text[match.end():].lstrip().startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names
