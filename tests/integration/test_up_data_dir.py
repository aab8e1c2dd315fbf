"""`tradebus up --data-dir D`: the whole fleet lives in D, and D serves one fleet at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tradebus.shared.natsserver import free_port

from .test_cli import TRADEBUS, Fleet, tradebus

FLEET_SERVICES = ("risk", "oms", "audit", "sizing", "connector.paper")


class DataDirFleet(Fleet):
    """`tradebus up --data-dir` with no TRADEBUS_DATA_DIR, and HOME / XDG_DATA_HOME in a
    temporary dir: the default data dir is one the test can look into."""

    def __init__(self, tmp_path: Path, data_dir: Path, name: str) -> None:
        self.port = free_port()
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
        self.env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"), PYTHONUNBUFFERED="1",
                        TRADEBUS_NATS_URL=f"nats://127.0.0.1:{self.port}")
        self.output = tmp_path / f"{name}.log"
        self.process = subprocess.Popen([*TRADEBUS, "up", "--data-dir", str(data_dir)], env=self.env,
                                        stdout=self.output.open("w"), stderr=subprocess.STDOUT)


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def running(pid: int) -> bool:
    """Not gone and not a zombie (a zombie holds no files: whoever reaps it, if anyone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def trade_and_verify(fleet: Fleet, data_dir: Path, client_order_id: str) -> str:
    """Once the fleet is ready, place an order; then the audit report of `data_dir`."""
    fleet.wait_ready()
    fleet.wait_services(FLEET_SERVICES)
    placed = tradebus("order", "place", "--venue", "paper", "--account", "demo", "--symbol", "BTC/USDT", "--side",
                      "buy", "--qty", "0.5", "--client-order-id", client_order_id, env=fleet.env)
    assert placed.returncode == 0, placed.stdout + placed.stderr
    verified = tradebus("audit", "verify", "--data-dir", str(data_dir), "--wait", "20", env=fleet.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return verified.stdout


def test_a_fleet_keeps_every_record_in_its_data_dir_and_the_dir_serves_one_fleet(tmp_path: Path) -> None:
    data_dir = tmp_path / "fleet"
    default_dir = tmp_path / "xdg" / "tradebus"
    first = DataDirFleet(tmp_path, data_dir, "first")
    try:
        report = trade_and_verify(first, data_dir, "dd-1")
        assert "CMD: complete, 1 records (seq 1-1)" in report and "EVENTS: complete" in report, report
        assert (data_dir / "audit.sqlite").exists() and not default_dir.exists()

        # A second fleet on the same data dir (its own port) is refused before it starts anything.
        second = DataDirFleet(tmp_path, data_dir, "second")
        assert second.process.wait(60) == 2
        refusal = second.output.read_text()
        assert f"the data dir {data_dir} is in use by another fleet" in refusal
        assert f"pid {first.process.pid}" in refusal and first.env["TRADEBUS_NATS_URL"] in refusal, refusal
        assert first.process.poll() is None

        # Killed, `up` takes its whole fleet with it (every service and its nats-server, which
        # holds the lock) and leaves no stale lock: the next one starts on the same data dir,
        # on the same streams, and its audit logger goes on in the same store.
        fleet_pids = children(first.process.pid)
        assert len(fleet_pids) == len(FLEET_SERVICES) + 1  # the services and the nats-server
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        deadline = time.monotonic() + 5
        while any(map(running, fleet_pids)):
            assert time.monotonic() < deadline, f"orphans of the killed fleet: {list(filter(running, fleet_pids))}"
            time.sleep(0.1)
        third = DataDirFleet(tmp_path, data_dir, "third")
        try:
            report = trade_and_verify(third, data_dir, "dd-2")
            assert "CMD: complete, 2 records (seq 1-2)" in report, report
        finally:
            assert third.stop() == 0
    finally:
        if first.process.poll() is None:
            first.stop()
    assert not default_dir.exists(), sorted(default_dir.rglob("*"))
    logs = sorted(path.name for path in (data_dir / "logs").iterdir())
    assert {"audit.log", "nats-server.log"} <= set(logs), logs
