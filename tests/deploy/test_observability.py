"""The alert rules, the Prometheus configurations and the Grafana dashboard
(deploy/monitoring): promtool checks them and runs the rules' unit tests where it is
installed (Debian's `prometheus` package; .ci/run installs it); everywhere, every metric
they read must be one the services' real registries or the NATS exporter export (an alert on
a metric that does not exist never fires), every alert has its runbook section, and the
dashboard covers what operators watch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradebus.services.connector.venuespecs import VENUE_SPECS

from .deployfiles import ALERTS, DASHBOARDS, MONITORING, PROMETHEUS, RUNBOOK, known_metrics, promql_metrics

ALERT_TESTS = MONITORING / "alerts.test.yml"
PROMETHEUS_KUBERNETES = MONITORING / "prometheus-kubernetes.yml"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

ISSUE_ALERTS = {
    "connector down": "ConnectorDown",
    "market data stalled": "MarketDataStalled",
    "reject rate": "VenueRejectRateHigh",
    "orders stuck in pending": "OrdersStuckPending",
    "audit lag": "AuditLagging",
    "JetStream consumer lag": "JetStreamConsumerLag",
    "token expiring": "SessionTokenExpiring",
}
"""What operators asked to be alerted on -> the rule that does it."""


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run does); "
                    "the rules' metric names and structure are still checked by the other tests here")
    return path


def runbook_sections() -> dict[str, str]:
    """Alert name -> its runbook section's text (`## Name` up to the next `## `)."""
    parts = re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_every_alert_reads_only_metrics_that_exist() -> None:
    known = known_metrics()
    for rule in rules():
        used = promql_metrics(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        assert used <= known, f"{rule['alert']} reads metrics nothing exports: {sorted(used - known)}"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    sections = runbook_sections()
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name in sections, f"docs/runbook.md has no `## {name}`"
        section = sections[name]
        for heading in ("What it means", "What to do"):
            assert heading in section, f"{name}: runbook section lacks {heading!r}"
    assert set(sections) == set(names), "runbook sections without an alert"


def test_the_alerts_operators_asked_for_exist() -> None:
    names = {rule["alert"] for rule in rules()}
    assert set(ISSUE_ALERTS.values()) <= names


def test_the_session_token_alert_covers_exactly_the_venues_that_trade_with_a_days_token() -> None:
    [rule] = [rule for rule in rules() if rule["alert"] == "SessionTokenExpiring"]
    venues = re.search(r'venue=~"([^"]+)"', rule["expr"])
    assert venues
    assert set(venues[1].split("|")) == {name for name, spec in VENUE_SPECS.items() if spec.secret_name == "ACCESS_TOKEN"}


def test_promtool_accepts_the_rules_and_their_unit_tests_pass(tmp_path: Path) -> None:
    """The unit tests (alerts.test.yml) run on a copy of the rules without annotations: they
    pin expressions and labels; the texts are the runbook's."""
    binary = promtool()
    checked = subprocess.run([binary, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bare = yaml.safe_load(ALERTS.read_text())
    for group in bare["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(bare))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    tested = subprocess.run([binary, "test", "rules", str(tmp_path / ALERT_TESTS.name)], capture_output=True, text=True,
                            timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    covered = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    assert covered == {rule["alert"] for rule in rules()} - {"ServiceNotReady", "EventLoopStalled", "MessagesQuarantined"}


def prometheus_copy(config: Path, tmp_path: Path) -> Path:
    """The config with its rule file where promtool (outside the container) finds it."""
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    copy = tmp_path / config.name
    copy.write_text(config.read_text().replace("/etc/prometheus/alerts.yml", ALERTS.name))
    return copy


def test_promtool_accepts_the_compose_prometheus_configuration(tmp_path: Path) -> None:
    result = subprocess.run([promtool(), "check", "config", str(prometheus_copy(PROMETHEUS, tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_kubernetes_prometheus_configuration(tmp_path: Path) -> None:
    result = subprocess.run([promtool(), "check", "config", str(prometheus_copy(PROMETHEUS_KUBERNETES, tmp_path))],
                            capture_output=True, text=True, timeout=60)
    if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool is built without Kubernetes service discovery (Debian's is); "
                    "prometheus-kubernetes.yml's relabelling is checked structurally by the next test")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kubernetes_scrape_config_labels_targets_as_the_rules_expect() -> None:
    """What the rules group by (`service`, `venue`, `node`) comes from the pod labels the
    manifests set (deploy/k8s); checked structurally, as promtool may lack Kubernetes SD."""
    config = yaml.safe_load(PROMETHEUS_KUBERNETES.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {job["job_name"] for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]}
    targets = {job: {relabel.get("target_label") for relabel in spec["relabel_configs"]} for job, spec in jobs.items()}
    assert {"service", "venue"} <= targets["tradebus"] and "node" in targets["nats"]
    manifests = "\n".join(path.read_text() for path in (MONITORING.parent / "k8s").rglob("*.yaml"))
    for job in jobs.values():
        for relabel in job["relabel_configs"]:
            re.compile(relabel.get("regex", "(.*)"))
            for source in relabel["source_labels"]:
                label = source.removeprefix("__meta_kubernetes_pod_label_")
                if label != source:  # a pod label: the manifests set it (dots and slashes become _)
                    assert any(re.sub(r"[./-]", "_", name) == label
                               for name in re.findall(r"^\s+([\w./-]+):", manifests, re.MULTILINE)), label
    assert config["rule_files"] == yaml.safe_load(PROMETHEUS.read_text())["rule_files"]


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]


def test_the_dashboard_reads_only_metrics_that_exist_from_the_provisioned_datasource() -> None:
    known = known_metrics()
    [datasource] = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    [dashboard] = dashboards()
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = promql_metrics(target["expr"])
            assert used and used <= known, f"{panel['title']}: {sorted(used - known)}"


def test_the_dashboard_shows_what_operators_watch() -> None:
    [dashboard] = dashboards()
    read = {title: {name for target in panel["targets"] for name in promql_metrics(target["expr"])}
            for panel in dashboard["panels"] for title in [panel["title"]]}
    expected = {
        "order flow": "tradebus_risk_decisions_total",
        "fills": "tradebus_connector_events_total",
        "rejects by reason": "tradebus_connector_events_total",
        "latency histograms": "tradebus_connector_command_seconds_bucket",
        "ticks per venue": "tradebus_connector_market_data_published_total",
        "service health": "tradebus_service_ready",
        "consumer lag": "jetstream_consumer_num_pending",
    }
    for what, metric in expected.items():
        assert any(metric in names for names in read.values()), what
    rejects = [panel for panel in dashboard["panels"] if "reason" in panel["title"].lower()]
    assert rejects and all("reason" in target["expr"] for panel in rejects for target in panel["targets"])
