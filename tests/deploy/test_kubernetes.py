"""The Kubernetes manifests (deploy/k8s, assembled by deploy/kustomization.yaml), checked
without a cluster: every object against the Kubernetes API schemas that kubernetes-validate
ships (offline, strict: unknown fields are errors), then what the schemas cannot say: one
Deployment per venue of the VenueSpec registry, probes, resources, disruption budgets, who
may reach NATS and PostgreSQL, Secrets without values, and the NATS nodes' configuration
through `nats-server -t` with the environment the StatefulSet gives them."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from tradebus.services.connector.venuespecs import VENUE_SPECS

from .deployfiles import (
    DEPLOY,
    K8S,
    KUSTOMIZATION,
    NATS_CONF,
    PASSWORD_ENV,
    ROUTE_PASSWORD_ENV,
    TENANTS,
    base_env,
    check_settings,
    cluster_config_dir,
    config_test,
    stages,
    strong_password,
)

KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
"""The oldest release still supported upstream when this was written, and the newest the
installed kubernetes-validate knows."""
NATS_NODES = [f"nats-{index}.nats.tradebus.svc.cluster.local" for index in range(3)]
SECRETS_TEMPLATE = K8S / "secrets.template.yaml"
TRADEBUS = [sys.executable, "-m", "tradebus.cli.main"]
VENUES_KUSTOMIZATION = K8S / "venues" / "kustomization.yaml"


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    return sorted(path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml")


@functools.cache
def all_objects() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in manifest_files() for doc in load(path))


def objects(kind: str | None = None) -> list[dict[str, Any]]:
    found = all_objects()
    return [doc for doc in found if kind is None or doc["kind"] == kind]


def by_name(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in objects(kind)}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def secret_values() -> dict[str, dict[str, str]]:
    """Secret name -> key -> a value, as an operator fills the template in."""
    return {name: {key: strong_password() for key in doc["stringData"]} for name, doc in by_name("Secret").items()}


def container_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment the kubelet gives a container: envFrom Secrets, then env with secret
    references resolved and $(VAR) expanded from what is defined before."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(secrets[source["secretRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = re.sub(r"\$\((\w+)\)", lambda m: environment[m[1]], variable["value"])
        elif "secretKeyRef" in variable["valueFrom"]:
            ref = variable["valueFrom"]["secretKeyRef"]
            environment[variable["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            environment[variable["name"]] = "<from the pod>"
    return environment


def tradebus_workloads() -> dict[str, dict[str, Any]]:
    """The Deployments and the Job that run a tradebus image."""
    found = {**by_name("Deployment"), **by_name("Job")}
    return {name: doc for name, doc in found.items() if pod_spec(doc)["containers"][0]["image"].startswith("tradebus-")}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(version: str) -> None:
    checked = 0
    for path in manifest_files():
        for doc in load(path):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{path.relative_to(DEPLOY)}: {doc['kind']}/{doc['metadata']['name']}: "
                                     f"{exc.message} at {'.'.join(map(str, exc.path))}") from None
            checked += 1
    assert checked >= 20


def test_the_kustomizations_list_every_manifest_and_the_generated_configuration() -> None:
    root = yaml.safe_load(KUSTOMIZATION.read_text())
    listed = {(DEPLOY / path).resolve() for path in root["resources"]}
    expected = {path.resolve() for path in K8S.glob("*.yaml") if path != SECRETS_TEMPLATE}
    assert listed == expected  # the Secrets template is applied by hand, filled in, never from here
    for generator in root["configMapGenerator"]:
        for entry in generator["files"]:
            assert (DEPLOY / entry.split("=", 1)[1]).is_file(), entry
    venues = yaml.safe_load(VENUES_KUSTOMIZATION.read_text())
    assert venues["namespace"] == root["namespace"] == "tradebus"
    assert (VENUES_KUSTOMIZATION.parent / venues["resources"][0]).resolve() == DEPLOY.resolve()
    assert {(VENUES_KUSTOMIZATION.parent / path).resolve() for path in venues["resources"][1:]} == {
        path.resolve() for path in (K8S / "venues").glob("connector-*.yaml")}


def test_every_venue_has_a_connector_deployment_from_its_own_image() -> None:
    deployments = by_name("Deployment")
    assert {name for name in deployments if name.startswith("connector-")} == {f"connector-{v}" for v in VENUE_SPECS}
    for venue, spec in VENUE_SPECS.items():
        name = f"connector-{venue}"
        pod = pod_spec(deployments[name])
        [container] = pod["containers"]
        assert container["image"].split(":")[0] == f"tradebus-{name}" and name in stages(), name
        assert container["args"] == ["run", "connector", "--venue", venue]
        assert pod_labels(deployments[name])["tradebus.io/venue"] == venue
        if spec.needs_credentials:
            env = {variable["name"]: variable.get("value") for variable in container["env"]}
            mount = next(m for m in container["volumeMounts"] if m["name"] == "venue-credentials")
            assert env["TRADEBUS_SECRETS_FILE"] == f"{mount['mountPath']}/credentials.env", name
            volume = next(v for v in pod["volumes"] if v["name"] == "venue-credentials")
            assert volume["secret"]["secretName"] == f"venue-{venue}", name
            # readable by the service's group (fsGroup); the secrets file loader needs no more
            assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 10001


def test_every_service_is_probed_limited_non_root_and_one_at_a_time() -> None:
    budgets = objects("PodDisruptionBudget")
    for name, deployment in by_name("Deployment").items():
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}, name
        pod = pod_spec(deployment)
        [container] = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["timeoutSeconds"] >= 3, (name, probe)  # a frozen process never answers
            assert container[probe]["httpGet"]["port"] == "http", (name, probe)
        assert [port["containerPort"] for port in container["ports"]] == [8080], name
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert pod["terminationGracePeriodSeconds"] > 10  # the service's own shutdown_grace
        selected = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()]
        assert len(selected) == 1, f"{name}: {len(selected)} PodDisruptionBudgets"


def test_every_tradebus_container_gets_valid_settings_listing_every_node_as_its_own_user() -> None:
    secrets = secret_values()
    for name, workload in tradebus_workloads().items():
        [container] = pod_spec(workload)["containers"]
        environment = container_env(container, secrets)
        settings = check_settings({key: value for key, value in environment.items() if key.startswith("TRADEBUS_")})
        user = "provision" if name == "provision" else name
        [password_ref] = [v["valueFrom"]["secretKeyRef"] for v in container["env"] if v["name"] == "NATS_PASSWORD"]
        assert password_ref == {"name": "nats-passwords", "key": PASSWORD_ENV_OF[user]}, name
        password = secrets["nats-passwords"][password_ref["key"]]
        assert settings.nats_url == ",".join(f"nats://{user}:{password}@{node}:4222" for node in NATS_NODES), name
        assert settings.streams.replicas == 3, name
        assert pod_labels(workload)["tradebus.io/nats-client"] == "true", name
        assert not [key for key in environment if key.startswith("TRADEBUS_NATS_PASSWORD")], name  # unknown settings


PASSWORD_ENV_OF = {variable.removeprefix("TRADEBUS_NATS_PASSWORD_").lower().replace("_", "-"): variable
                   for variable in PASSWORD_ENV}


def test_the_provision_job_shapes_the_bus_for_every_connector() -> None:
    job = by_name("Job")["provision"]
    [container] = pod_spec(job)["containers"]
    assert container["image"].startswith("tradebus-core:") and container["args"][0] == "provision"
    assert sorted(container["args"][2::2]) == sorted(VENUE_SPECS) and set(container["args"][1::2]) == {"--venue"}


def test_the_nats_cluster_has_three_nodes_on_their_own_volumes_and_loses_one_at_most() -> None:
    nats = by_name("StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["podManagementPolicy"] == "Parallel"
    [claim] = nats["spec"]["volumeClaimTemplates"]
    container = pod_spec(nats)["containers"][0]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert container["command"][container["command"].index("--store_dir") + 1].startswith("/data/")
    [budget] = [b for b in objects("PodDisruptionBudget") if b["metadata"]["name"] == "nats"]
    assert budget["spec"]["maxUnavailable"] == 1
    anti = pod_spec(nats)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert by_name("Service")["nats"]["spec"]["clusterIP"] == "None"  # nats-N.nats: one name per node


def test_a_node_starts_only_once_every_password_of_the_profile_is_strong() -> None:
    """nats-server opens a user whose password is empty: the init container runs the
    profile generator's check over the same venues and tenants the profile was made from."""
    nats = by_name("StatefulSet")["nats"]
    [check] = pod_spec(nats)["initContainers"]
    assert check["image"].startswith("tradebus-core:") and "--check-environment" in check["args"]
    generated_by = re.search(r"^#\s+tradebus (nats-config .+) --output \S+$", NATS_CONF.read_text(), re.MULTILINE)
    assert generated_by
    tenants = check["args"][check["args"].index("--tenants") + 1]
    assert check["args"] == [*generated_by[1].replace("deploy/tenants.toml", tenants).split(), "--check-environment"]
    volume = next(v for v in pod_spec(nats)["volumes"] if v["name"] == "tenants")
    assert volume["configMap"]["name"] == "tradebus-tenants"
    argv = [*check["args"]]
    argv[argv.index("--tenants") + 1] = str(TENANTS)
    secrets = secret_values()
    filled = container_env(check, secrets)
    assert subprocess.run([*TRADEBUS, *argv], env={**base_env(), **filled}, capture_output=True, timeout=60).returncode == 0
    empty = {**filled, "TRADEBUS_NATS_PASSWORD_RISK": ""}
    refused = subprocess.run([*TRADEBUS, *argv], env={**base_env(), **empty}, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 78 and "TRADEBUS_NATS_PASSWORD_RISK" in refused.stderr


def test_each_nodes_configuration_passes_nats_server_config_test(tmp_path: Path) -> None:
    """What the StatefulSet's pods run: the ConfigMap's files (deploy/kustomization.yaml) with
    the environment the StatefulSet gives them; the routes name every node."""
    nats = by_name("StatefulSet")["nats"]
    container = pod_spec(nats)["containers"][0]
    config = Path(container["command"][container["command"].index("--config") + 1])
    generator = next(g for g in yaml.safe_load(KUSTOMIZATION.read_text())["configMapGenerator"] if g["name"] == "nats-config")
    keys = {entry.split("=", 1)[0]: entry.split("=", 1)[1] for entry in generator["files"]}
    assert keys == {"nats-server.conf": "nats/nats-server.conf", "cluster.conf": "nats/cluster-r3.conf.example"}
    assert config.name in keys and {"name": "config", "mountPath": str(config.parent), "readOnly": True} in container["volumeMounts"]
    directory = cluster_config_dir(tmp_path)
    secrets = secret_values()
    environment = container_env(container, secrets)
    routes = re.findall(r"nats://route:([^@]+)@([\w.-]+):6222", environment["TRADEBUS_NATS_ROUTES"])
    assert routes == [(secrets["nats-passwords"]["TRADEBUS_NATS_PASSWORD_ROUTE"], node) for node in NATS_NODES]
    for index in range(3):
        result = config_test(directory / "cluster.conf", {**base_env(), **environment, "NATS_SERVER_NAME": f"nats-{index}"},
                             cwd=directory)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_secrets_template_has_every_key_the_manifests_read_and_no_value() -> None:
    template = {doc["metadata"]["name"]: doc["stringData"] for doc in load(SECRETS_TEMPLATE)}
    for values in template.values():
        assert set(values.values()) == {""}
    assert set(template["nats-passwords"]) == set(PASSWORD_ENV) | set(ROUTE_PASSWORD_ENV)
    for workload in objects("Deployment") + objects("StatefulSet") + objects("Job"):
        pod = pod_spec(workload)
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] in template
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in template[ref["name"]], ref
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in template


def test_only_nats_clients_reach_nats_and_only_the_audit_logger_reaches_postgresql() -> None:
    policies = by_name("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    client_rule = policies["nats"]["spec"]["ingress"][0]
    assert client_rule["ports"] == [{"protocol": "TCP", "port": 4222}]
    client_label = client_rule["from"][0]["podSelector"]["matchLabels"]
    assert client_label == {"tradebus.io/nats-client": "true"}
    for rule in policies["nats"]["spec"]["ingress"][1:]:
        assert {"protocol": "TCP", "port": 4222} not in rule["ports"]
    labelled = {doc["metadata"]["name"] for doc in objects("Deployment") + objects("StatefulSet") + objects("Job")
                if client_label.items() <= pod_labels(doc).items()}
    assert labelled == set(tradebus_workloads())  # NATS and PostgreSQL themselves are no clients
    [postgres_rule] = policies["postgres"]["spec"]["ingress"]
    assert postgres_rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "tradebus",
                                                                      "app.kubernetes.io/component": "audit"}}}]
    assert postgres_rule["ports"] == [{"protocol": "TCP", "port": 5432}]
