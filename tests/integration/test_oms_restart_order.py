"""kill -9 of the order manager while it holds deliveries it has not acknowledged, in the
middle of a few hundred orders (risk, the order manager and the paper connector as real
processes on a real nats-server).

JetStream redelivers those only after the consumer's ack_wait, behind newer messages (a
shorter ack_wait than the product's: processes.REDELIVERY_AFTER). The
restarted order manager must still apply every stream in order: afterwards no anomaly was
recorded or logged, and `tradebus oms rebuild` finds the live state equal to the streams'.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import nats
from nats.js import JetStreamContext

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode, reply_decoder
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.control import ListOrders
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import TERMINAL_STATUSES
from tradebus.shared.natsserver import NatsServer, free_port

from .processes import ProcessFleet, create_durables_with_short_ack_wait
from .test_order_path_faults import LIMITS, orders, settle

ORDERS = 300
KILLS = 3
SERVICES = ("risk", "oms", "connector.paper")
CONSUMERS = (("CMD", "risk"), ("ROUTE", "connector-paper"), ("ROUTE", "oms-route"), ("EVENTS", "oms-events"))
# Small pulls: the deliveries the frozen order manager holds end in the middle of an
# order's events, so that after the restart its later events come first.
BATCH = 7
_oms = reply_decoder(Family.OMS_QUERY)


async def publish(js: JetStreamContext, commands: list[PlaceOrder]) -> None:
    for command in commands:
        await js.publish(subjects.command("paper", "demo"), encode(command),
                         headers={"Nats-Msg-Id": command_dedupe_id(command)})


async def kill_holding_deliveries(fleet: ProcessFleet, js: JetStreamContext, commands: list[PlaceOrder]) -> int:
    """Freeze the order manager, publish while it cannot acknowledge what its open pull
    requests receive, and kill -9 it once it holds unacknowledged EVENTS deliveries.
    Returns how many of `commands` it took (the rest are for later)."""
    sent = 0
    while sent < len(commands):
        await asyncio.to_thread(fleet.freeze, "oms")
        await publish(js, commands[sent : sent + 20])
        sent += 20
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if (await js.consumer_info("EVENTS", "oms-events")).num_ack_pending > 0:
                await asyncio.to_thread(fleet.kill, "oms")
                return sent
            await asyncio.sleep(0.05)
        await asyncio.to_thread(fleet.thaw, "oms")  # it had no pull request open: try again
    raise AssertionError("the order manager never held an unacknowledged delivery")


async def run_with_kills(fleet: ProcessFleet) -> None:
    nc = await nats.connect(fleet.nats_url)
    js = nc.jetstream()
    commands = orders()[:ORDERS]
    chunk = ORDERS // (KILLS + 1)
    for kill in range(KILLS):
        await publish(js, commands[kill * chunk : kill * chunk + chunk // 2])
        taken = await kill_holding_deliveries(fleet, js, commands[kill * chunk + chunk // 2 : (kill + 1) * chunk])
        await publish(js, commands[kill * chunk + chunk // 2 + taken : (kill + 1) * chunk])
        await asyncio.to_thread(fleet.start, "oms")
    await publish(js, commands[KILLS * chunk :])
    await settle(nc, timeout=150, consumers=CONSUMERS)  # includes the redeliveries, after REDELIVERY_AFTER
    reply = _oms.decode((await nc.request(subjects.OMS_QUERY, encode(ListOrders(limit=10_000)), timeout=10)).data)
    await nc.close()
    assert {r.client_order_id for r in reply.orders} == {c.client_order_id for c in commands}
    assert all(r.status in TERMINAL_STATUSES for r in reply.orders)
    assert [(r.client_order_id, r.anomalies) for r in reply.orders if r.anomalies] == []


def test_kill_9_holding_deliveries_then_the_live_state_equals_a_rebuild(tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text(LIMITS)
    with NatsServer(store_dir=tmp_path / "nats", port=free_port()) as server:
        fleet = ProcessFleet(server.url, tmp_path, env={"TRADEBUS_CONFIG": str(config),
                                                        "TRADEBUS_OMS__BATCH_SIZE": str(BATCH)})
        try:
            asyncio.run(create_durables_with_short_ack_wait(server.url))
            for name in SERVICES:
                fleet.start(name)
            asyncio.run(run_with_kills(fleet))
            rebuild = subprocess.run([sys.executable, "-m", "tradebus.cli.main", "oms", "rebuild"], env=fleet.env,
                                     capture_output=True, text=True, timeout=120)
            assert rebuild.returncode == 0 and "no differences" in rebuild.stdout, rebuild.stdout + rebuild.stderr
            assert f"rebuilt: {ORDERS} orders" in rebuild.stdout, rebuild.stdout
            log = (tmp_path / "oms.log").read_text()
            assert "illegal order transition" not in log
            assert log.count("caught up with unacknowledged deliveries") >= KILLS, log[-4000:]
        finally:
            codes = fleet.stop_all()
        assert codes == dict.fromkeys(SERVICES, 0), {name: fleet.log(name) for name, code in codes.items() if code}
