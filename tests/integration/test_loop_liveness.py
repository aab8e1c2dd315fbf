"""Liveness from the event loop's responsiveness: a service whose loop is blocked fails its
health check (and recovers with its loop); a process that cannot answer at all fails the
container's probe by the probe's timeout."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradebus.schemas.values import ServiceState
from tradebus.services.connector.service import ConnectorService
from tradebus.shared.natsserver import NatsServer

from ..deploy.deployfiles import NATS_NODES, base_env, compose, healthcheck_argv, tradebus_services
from .helpers import paper_settings
from .processes import ProcessFleet
from .test_fleet_status import status_rows

STALL_LIMIT = 2.0


def healthz(port: int, timeout: float = 5.0) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout).status
    except urllib.error.HTTPError as answer:
        return answer.code


def loop_lag(port: int) -> float:
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return float(re.search(r"^tradebus_event_loop_lag_seconds (\S+)$", metrics, re.M).group(1))


def wait_for(condition, what: str, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


class ServiceThread:
    """A real connector served on an event loop of its own thread, so that the test (on
    this thread) can block that loop and still ask the service's health endpoint."""

    def __init__(self, nats_url: str) -> None:
        settings = paper_settings(nats_url)
        settings.loop_stall_limit = STALL_LIMIT
        self.loop = asyncio.new_event_loop()
        self.service = ConnectorService(settings, venue="paper", venue_config=settings.paper)
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, name="service-under-test")

    def _run(self) -> None:
        self.exit_code = self.loop.run_until_complete(self.service.serve())
        self.loop.close()

    def block_loop(self, seconds: float) -> None:
        """A synchronous call in a callback: the loop runs nothing else until it returns."""
        self.loop.call_soon_threadsafe(time.sleep, seconds)

    def stop(self) -> int | None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.service.request_stop)
            self.thread.join(30)
        return self.exit_code


@pytest.fixture
def served(nats_server: NatsServer) -> Iterator[ServiceThread]:
    running = ServiceThread(nats_server.url)
    running.thread.start()
    try:
        wait_for(lambda: running.service.state is ServiceState.READY or not running.thread.is_alive(), "ready")
        assert running.thread.is_alive(), f"the connector exited with {running.exit_code}"
        yield running
    finally:
        assert running.stop() == 0


def test_a_blocked_event_loop_fails_healthz_and_passes_again_once_it_runs(served: ServiceThread) -> None:
    assert served.service.health is not None
    port = served.service.health.port
    assert healthz(port) == 200 and loop_lag(port) < STALL_LIMIT

    served.block_loop(STALL_LIMIT + 3)
    blocked_at = time.monotonic()
    wait_for(lambda: healthz(port) == 503, "a 503 from the blocked service", timeout=STALL_LIMIT + 2.5)
    assert time.monotonic() - blocked_at >= STALL_LIMIT  # not before the limit
    assert loop_lag(port) > STALL_LIMIT  # the gauge grows while the loop is blocked, not only afterwards
    assert served.service.state is ServiceState.READY  # the service's own view: it cannot tell

    wait_for(lambda: healthz(port) == 200, "healthy again once the loop runs", timeout=15)
    assert time.monotonic() - blocked_at >= STALL_LIMIT + 3
    wait_for(lambda: loop_lag(port) < STALL_LIMIT, "the lag back to normal")


def test_a_short_stall_below_the_limit_keeps_the_service_live(served: ServiceThread) -> None:
    assert served.service.health is not None
    port = served.service.health.port
    served.block_loop(STALL_LIMIT / 2)
    answers = []
    until = time.monotonic() + STALL_LIMIT
    while time.monotonic() < until:
        answers.append(healthz(port))
    assert set(answers) == {200}


def test_the_container_probe_fails_a_frozen_service_by_its_timeout(nats_server: NatsServer, tmp_path: Path) -> None:
    """SIGSTOP: not even the health server's thread runs. Nothing in the process can answer;
    the probe's own timeout is what fails it, so the image and compose must set one."""
    argv = healthcheck_argv()
    assert "timeout=" in argv[-1]  # urllib's timeout: a silent service cannot hold the probe
    for name, spec in tradebus_services().items():
        if spec.get("restart") == "no":  # a one-shot job (provision): it exits, nothing to probe
            assert spec["healthcheck"] == {"disable": True}, name
            continue
        assert spec["healthcheck"]["timeout"], name  # Docker's own bound on the probe
    assert all(compose()["services"][node]["healthcheck"]["timeout"] for node in NATS_NODES)

    fleet = ProcessFleet(nats_server.url, tmp_path)
    try:
        fleet.start("connector.paper")
        process = fleet.processes["connector.paper"]
        port = int(status_rows(fleet.env)[1]["connector.paper"][5])  # its HTTP port
        probe = argv
        env = {**base_env(), "TRADEBUS_HTTP_PORT": str(port)}
        assert subprocess.run(probe, env=env, timeout=30).returncode == 0
        os.kill(process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0
            assert time.monotonic() - started < 15  # failed by its timeout, not left hanging
        finally:
            os.kill(process.pid, signal.SIGCONT)
        wait_for(lambda: subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode == 0,
                 "the probe passes again once the process runs")
    finally:
        fleet.stop_all()
