"""`tradebus up` supervises its own nats-server: killed or frozen, it is started again on the
same port and store, the services reconnect by themselves, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from decimal import Decimal
from pathlib import Path

from tradebus.cli import busguard
from tradebus.client import Client
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.values import OrderStatus, OrderType, Side

from .test_cli import Fleet, tradebus
from .test_fleet_status import wait_for
from .test_order_path_faults import LIMITS
from .test_up_data_dir import FLEET_SERVICES, children, running

# Orders acknowledged just before the kill may have been in flight in risk: they come back
# after its consumer's ack wait (30 s), past the default time to live. They must still run:
# the limits of the kill -9 tests (a long time to live, no throttle) serve here too.
BEFORE_THE_KILL = 20


def supervised_fleet(tmp_path: Path) -> Fleet:
    config = tmp_path / "tradebus.toml"
    config.write_text(LIMITS)
    fleet = Fleet(tmp_path, "--config", str(config), TRADEBUS_HEARTBEAT_INTERVAL="0.5")
    fleet.wait_ready()
    fleet.wait_services(FLEET_SERVICES)
    return fleet


def nats_server_pid(fleet: Fleet) -> int:
    [pid] = [pid for pid in children(fleet.process.pid)
             if b"nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]]
    return pid


def place_fills(fleet: Fleet, client_order_id: str) -> None:
    """An order placed as a user would, and filled. Its wait is long: the services ride out
    the server's restart (test_bus_restart.py), but this machine is shared and slow at times."""
    placed = tradebus("order", "place", "--venue", "paper", "--account", "demo", "--symbol", "BTC/USDT", "--side",
                      "buy", "--qty", "0.01", "--client-order-id", client_order_id, "--timeout", "90",
                      env=fleet.env, timeout=120)
    assert placed.returncode == 0 and re.search(rf"^filled +{client_order_id} ", placed.stdout, re.M), (
        placed.stdout + placed.stderr)


async def send_orders(url: str, prefix: str, count: int) -> list[str]:
    """`count` market orders, each acknowledged by JetStream (Client.place returns then)."""
    client = await Client.connect(url)
    try:
        for n in range(count):
            await client.place(PlaceOrder(client_order_id=f"{prefix}{n}", venue="paper", account="demo",
                                          symbol="ETH/USDT", side=Side.BUY if n % 2 else Side.SELL,
                                          order_type=OrderType.MARKET, quantity=Decimal("0.01"),
                                          ts_created=time.time_ns()))
    finally:
        await client.close()
    return [f"{prefix}{n}" for n in range(count)]


def statuses(url: str, client_order_ids: list[str]) -> dict[str, OrderStatus]:
    async def ask() -> dict[str, OrderStatus]:
        client = await Client.connect(url)
        try:
            records = await client.orders(venue="paper", account="demo")
        finally:
            await client.close()
        return {record.client_order_id: record.status for record in records if record.client_order_id in client_order_ids}

    return asyncio.run(ask())


def restarted_nats_server(fleet: Fleet, old_pid: int, how: str) -> int:
    """Wait for `up`'s notes that the server `how` (exited / is hung) and runs again; its new pid."""
    wait_for(lambda: f"nats-server (pid {old_pid}) {how}" in fleet.output.read_text(), f"up sees the server {how}")
    wait_for(lambda: "nats-server started again" in fleet.output.read_text(), "the server started again")
    new_pid = nats_server_pid(fleet)
    assert new_pid != old_pid and not running(old_pid)
    # the table shows it, with its restart
    wait_for(lambda: re.search(rf"^nats-server +running +{new_pid} +- +- +- +1 ", fleet.output.read_text(), re.M),
             "the table row of the restarted server")
    return new_pid


def test_a_killed_nats_server_is_started_again_and_no_acknowledged_command_is_lost(tmp_path: Path) -> None:
    fleet = supervised_fleet(tmp_path)
    url = fleet.env["TRADEBUS_NATS_URL"]
    try:
        old_pid = nats_server_pid(fleet)
        acknowledged = asyncio.run(send_orders(url, "k", BEFORE_THE_KILL))
        os.kill(old_pid, signal.SIGKILL)  # right after the last acknowledgement: work in flight everywhere
        restarted_nats_server(fleet, old_pid, "exited (killed by SIGKILL)")

        fleet.wait_services(FLEET_SERVICES)  # on the same port: every service reconnected by itself
        place_fills(fleet, "after-the-kill")
        wait_for(lambda: set(statuses(url, acknowledged).values()) == {OrderStatus.FILLED}
                 and len(statuses(url, acknowledged)) == BEFORE_THE_KILL,
                 "every order acknowledged before the kill filled", timeout=120)
        assert fleet.process.poll() is None
    finally:
        assert fleet.stop() == 0


def test_a_frozen_nats_server_is_killed_and_started_again(tmp_path: Path) -> None:
    fleet = supervised_fleet(tmp_path)
    old_pid = nats_server_pid(fleet)
    try:
        os.kill(old_pid, signal.SIGSTOP)  # the process lives, the server answers nothing
        stopped_at = time.monotonic()
        restarted_nats_server(fleet, old_pid, "is hung")
        # detected after its unanswered probes, not at once and not much later
        limit = busguard.UNANSWERED_PROBES * (busguard.PROBE_TIMEOUT + 1)
        assert busguard.UNANSWERED_PROBES * busguard.PROBE_TIMEOUT <= time.monotonic() - stopped_at < limit + 30
        fleet.wait_services(FLEET_SERVICES)
        place_fills(fleet, "after-the-freeze")
    finally:
        if running(old_pid):
            os.kill(old_pid, signal.SIGKILL)
        assert fleet.stop() == 0
