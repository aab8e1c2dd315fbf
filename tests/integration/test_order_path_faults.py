"""kill -9 of risk, of the order manager and of the audit logger in the middle of a stream of
1,000 orders (every service a real process on a real nats-server).

What the order manager or the audit logger held unacknowledged comes back after the ack_wait
of their durables, created shorter for the test (processes.create_durables_with_short_ack_wait).
After the victim restarts: every order reaches exactly one final state, the venue never
received a duplicate, the order manager holds every order in its final state, and the audit
store holds every message of the three streams exactly once with a chain that verifies.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from nats.js.errors import ServiceUnavailableError

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.control import ListOrders
from tradebus.schemas.events import TERMINAL_EVENTS, OrderAccepted, OrderRejected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import TERMINAL_STATUSES, MarketDataKind, OrderType, Side, TimeInForce
from tradebus.shared.natsserver import NatsServer, free_port

from .helpers import read_stream
from .processes import UNLIMITED, ProcessFleet, create_durables_with_short_ack_wait

ORDERS = 1000
SERVICES = ("risk", "oms", "audit", "connector.paper")
# This test is about losing and doubling nothing, not about time (test_command_order.py is):
# its commands may wait longer than the default time to live on this shared machine.
LIMITS = """
[risk]
command_ttl = 300
""" + UNLIMITED
_event = decoder(Family.ORDER_EVENT)
_oms = reply_decoder(Family.OMS_QUERY)


def orders() -> list[PlaceOrder]:
    """Market orders (filled) and IOC limits that cannot cross (cancelled): all end at once."""
    made = []
    for n in range(ORDERS):
        side = Side.BUY if n % 2 else Side.SELL
        if n % 3:
            made.append(PlaceOrder(client_order_id=f"f{n}", venue="paper", account="demo", symbol="ETH/USDT", side=side,
                                   order_type=OrderType.MARKET, quantity=Decimal("0.01")))
        else:
            price = Decimal("2800.00") if side is Side.BUY else Decimal("3200.00")  # far from the ~3000 market
            made.append(PlaceOrder(client_order_id=f"f{n}", venue="paper", account="demo", symbol="ETH/USDT", side=side,
                                   order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=price,
                                   time_in_force=TimeInForce.IOC))
    return made


FLEET_CONSUMERS = (("CMD", "risk"), ("ROUTE", "connector-paper"), ("ROUTE", "oms-route"), ("EVENTS", "oms-events"),
                   ("CMD", "audit-cmd"), ("ROUTE", "audit-route"), ("EVENTS", "audit-events"))


async def settle(nc: nats.NATS, timeout: float = 90, consumers: tuple[tuple[str, str], ...] = FLEET_CONSUMERS) -> None:
    """Wait until these durable consumers (stream, name) have nothing pending. On a cluster
    a consumer between leaders answers 503 for a moment: asked again."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            infos = [await js.consumer_info(stream, durable) for stream, durable in consumers]
        except ServiceUnavailableError:
            await asyncio.sleep(0.2)
            continue
        if all(info.num_pending == 0 and info.num_ack_pending == 0 for info in infos):
            return
        await asyncio.sleep(0.2)
    raise AssertionError({durable: (i.num_pending, i.num_ack_pending) for (_, durable), i in zip(consumers, infos, strict=True)})


async def run_with_a_crash(fleet: ProcessFleet, victim: str) -> None:
    nc = await nats.connect(fleet.nats_url)
    js = nc.jetstream()
    # The limit orders pass the built-in price collar only once risk has a quote: once the
    # test has seen quotes, risk (on the same subject) has too.
    quotes = await nc.subscribe(subjects.market_data("paper", MarketDataKind.QUOTE, "ETH/USDT"))
    for _ in range(2):
        await quotes.next_msg(timeout=30)
    await quotes.unsubscribe()
    commands = orders()
    for n, command in enumerate(commands):
        await js.publish(subjects.command("paper", "demo"), encode(command), headers={"Nats-Msg-Id": command_dedupe_id(command)})
        if n == ORDERS // 2:
            await asyncio.to_thread(fleet.kill, victim)
    await asyncio.to_thread(fleet.start, victim)
    await settle(nc)
    await nc.close()


def check_outcome(fleet: ProcessFleet) -> None:
    async def gather() -> tuple[list, list, int, object]:
        nc = await nats.connect(fleet.nats_url)
        js = nc.jetstream()
        events = [_event.decode(m.data) for m in await read_stream(js, "EVENTS", subjects.ALL_ANSWERS)]
        records = _oms.decode((await nc.request(subjects.OMS_QUERY, encode(ListOrders(limit=10_000)), timeout=10)).data)
        totals = sum([(await js.stream_info(name)).state.messages for name in ("CMD", "ROUTE", "EVENTS")])
        await nc.close()
        return events, records.orders, totals, records

    events, records, stream_total, _ = asyncio.run(gather())
    expected = {f"f{n}" for n in range(ORDERS)}
    answered = Counter(e.client_order_id for e in events if isinstance(e, (OrderAccepted, OrderRejected)))
    finished = Counter(e.client_order_id for e in events if isinstance(e, TERMINAL_EVENTS))
    missing = sorted(expected - set(answered))
    statuses = {r.client_order_id: (r.status.value, r.last_message) for r in records if r.client_order_id in missing[:5]}
    assert not missing, f"{len(missing)} orders without a venue answer, e.g. {statuses}"
    assert max(answered.values()) == 1, "the venue saw an order twice"
    assert set(finished) == expected and max(finished.values()) == 1, "an order did not end exactly once"
    refused = Counter(e.reason.value for e in events if isinstance(e, OrderRejected))
    assert not refused, f"no order of this test should be refused: {refused}"
    assert {r.client_order_id for r in records} == expected
    assert all(r.status in TERMINAL_STATUSES and not r.anomalies for r in records)

    verify = subprocess.run([sys.executable, "-m", "tradebus.cli.main", "audit", "verify"], env=fleet.env,
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"ok: {stream_total} records" in verify.stdout, (stream_total, verify.stdout)


@pytest.mark.parametrize("victim", ["risk", "oms", "audit"])
def test_kill_9_in_the_middle_of_1000_orders(victim: str, tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text(LIMITS)
    with NatsServer(store_dir=tmp_path / "nats", port=free_port()) as server:
        fleet = ProcessFleet(server.url, tmp_path, env={"TRADEBUS_CONFIG": str(config)})
        try:
            asyncio.run(create_durables_with_short_ack_wait(server.url))
            for name in SERVICES:
                fleet.start(name)
            asyncio.run(run_with_a_crash(fleet, victim))
            check_outcome(fleet)
        finally:
            codes = fleet.stop_all()
        assert codes == dict.fromkeys(SERVICES, 0), {name: fleet.log(name) for name, code in codes.items() if code}
