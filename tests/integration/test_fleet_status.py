"""Status from evidence: `tradebus status` and `tradebus up` show a dead, hung, stopped or
refusing service as such, as a user reading them would check it."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tradebus.shared.natsserver import NatsServer

from .processes import ProcessFleet
from .test_cli import Fleet, tradebus


def status_rows(env: dict[str, str]) -> tuple[int, dict[str, list[str]]]:
    """`tradebus status`: its exit code and its rows (columns split) by service, e.g. `risk`
    or `connector.paper` (the order-path services' instance, the host name, left out)."""
    result = tradebus("status", env=env, timeout=60)
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        key = line.split()[0]
        rows[key if key.startswith("connector.") else key.split(".", 1)[0]] = line.split()
    return result.returncode, rows


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_status_keeps_a_killed_service_marked_down_and_a_stopped_one_stopped(nats_server: NatsServer,
                                                                              tmp_path: Path) -> None:
    fleet = ProcessFleet(nats_server.url, tmp_path)  # heartbeats every 0.2 s
    env = fleet.env
    try:
        fleet.start("connector.paper")
        fleet.start("risk")
        code, rows = status_rows(env)
        connector = rows["connector.paper"]
        assert code == 0 and connector[1] == "ready" and int(connector[2]) == fleet.processes["connector.paper"].pid
        port = int(connector[5])  # the HTTP column: the service's health endpoint really is there
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).status == 200

        fleet.kill("connector.paper")
        killed_at = time.monotonic()
        code, rows = wait_for(lambda: (found := status_rows(env))[1]["connector.paper"][1] == "down" and found,
                              "the killed connector shown down")
        assert time.monotonic() - killed_at < 15
        connector = rows["connector.paper"]
        assert int(connector[2]) == fleet.processes["connector.paper"].pid  # its last known process
        assert float(connector[3].rstrip("s")) > 0.6 and "no heartbeat for" in " ".join(connector)
        assert rows["risk"][1] == "ready"
        assert code == 1  # a script checking `tradebus status` learns that something is down

        fleet.processes["risk"].send_signal(signal.SIGTERM)
        assert fleet.processes["risk"].wait(30) == 0
        wait_for(lambda: status_rows(env)[1]["risk"][1] == "stopped", "the cleanly stopped risk service shown stopped")
    finally:
        fleet.stop_all()


def test_up_leaves_a_service_that_refuses_its_configuration_stopped_and_shows_why(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, "--venue", "paper", "--venue", "nope")
    try:
        fleet.wait_ready()
        wait_for(lambda: "connector.nope refused its configuration (exit 78)" in fleet.output.read_text(),
                 "the refusal reported")
        time.sleep(8)  # longer than several restart delays: it must not have been tried again
        output = fleet.output.read_text()
        assert fleet.process.poll() is None  # the rest of the fleet runs on
        assert output.count("connector.nope refused its configuration") == 1
        assert "unknown venue 'nope'; known venues:" in output  # its reason, not only a log file name
        log = (tmp_path / "data" / "logs" / "connector.nope.log").read_text()
        assert log.count("unknown venue 'nope'") == 1  # started once, never again
        rows = [line for line in output.splitlines() if line.startswith("connector.nope")]
        assert rows and " failed " in rows[-1] and "refused its configuration" in rows[-1]
        fleet.wait_services(("connector.paper",))
    finally:
        assert fleet.stop() == 0


def test_up_shows_a_hung_connector_and_restarts_it(tmp_path: Path) -> None:
    """SIGSTOP: the process exists but does nothing, as a connector blocked for good. It is
    SIGKILLed the fleet's shutdown_grace (plus a margin) after the SIGTERM it cannot handle."""
    fleet = Fleet(tmp_path, TRADEBUS_HEARTBEAT_INTERVAL="0.3", TRADEBUS_SHUTDOWN_GRACE="2")
    try:
        fleet.wait_ready()
        fleet.wait_services(("connector.paper",))
        _, rows = status_rows(fleet.env)
        pid = int(rows["connector.paper"][2])
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: status_rows(fleet.env)[1]["connector.paper"][1] == "down", "status shows it down")
        wait_for(lambda: re.search(r"^connector\.paper +hung ", fleet.output.read_text(), re.M), "up shows it hung")
        wait_for(lambda: (row := status_rows(fleet.env)[1]["connector.paper"])[1] == "ready" and int(row[2]) != pid,
                 "a new connector process ready", timeout=90)
        output = fleet.output.read_text()
        assert f"connector.paper (pid {pid}) is hung" in output and "SIGKILL after 5s" in output
        assert "connector.paper did not stop within 5s of SIGTERM; killing it" in output
        assert "connector.paper exited (killed by SIGKILL)" in output
    finally:
        assert fleet.stop() == 0
