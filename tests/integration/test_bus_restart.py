"""nats-server SIGKILLed in the middle of a stream of orders and started again on the same port
and store, with risk, the order manager, the audit logger and the paper connector as real
processes: no service exits, trading resumes within seconds of the server being back, and
nothing acknowledged is lost or doubled. A server that stays away longer than
`bus_outage_grace` makes every service exit non-zero, in time (crash-only, the last resort).
An acknowledgement the restart cut off brings its message back after the durable's ack_wait,
created shorter for the test (processes.create_durables_with_short_ack_wait).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import nats.errors

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.events import TERMINAL_EVENTS, OrderAccepted, OrderRejected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import TERMINAL_STATUSES, MarketDataKind, OrderType, Side
from tradebus.services.oms.book import OmsState
from tradebus.shared.bus import MSG_ID
from tradebus.shared.direct import read_bucket
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.topology import ORDERS_BUCKET

from .helpers import read_stream, wait_until
from .processes import ProcessFleet, configured_fleet, create_durables_with_short_ack_wait
from .test_order_path_faults import LIMITS, ORDERS, SERVICES, check_outcome, orders, settle

FROZEN_FOR = 0.3  # seconds the server is stopped (SIGSTOP) before its SIGKILL
DOWN_FOR = 1.5  # seconds between the kill and the new start
BURSTS = 3  # times the 1,000 orders of test_order_path_faults routed at once: the kill finds the connector busy
RESUMED_WITHIN = 10.0  # seconds from the server's new start to the first new order's final event
_event = decoder(Family.ORDER_EVENT)


class Restart:
    """What the order stream saw of the restart."""

    def __init__(self) -> None:
        self.back_at: float | None = None  # monotonic time the new server listened
        self.first_after: str | None = None  # the first order placed after that
        self.finished: dict[str, float] = {}  # client order id -> when its final event arrived


async def restart(server: NatsServer, seen: Restart) -> None:
    """SIGKILL at the worst moment: frozen first for a moment, so that the services' publishes
    of that moment are surely on the wire, unanswered, when it dies."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    await asyncio.sleep(FROZEN_FOR)
    await asyncio.to_thread(server.kill)
    await asyncio.sleep(DOWN_FOR)
    await asyncio.to_thread(server.start)
    seen.back_at = time.monotonic()


async def follow_events(nc: nats.NATS, seen: Restart) -> None:
    async def on_event(msg: nats.aio.msg.Msg) -> None:
        event = _event.decode(msg.data)
        if isinstance(event, TERMINAL_EVENTS):
            seen.finished.setdefault(event.client_order_id, time.monotonic())

    for subject in subjects.answers("paper", "demo"):
        await nc.subscribe(subject, cb=on_event)


async def place(js: nats.js.JetStreamContext, subject: str, command: PlaceOrder) -> None:
    """As a client (or risk) does: the same command, with its dedupe id, until JetStream acks it."""
    while True:
        try:
            await js.publish(subject, encode(command), headers={MSG_ID: command_dedupe_id(command)}, timeout=2)
            return
        except (nats.errors.Error, TimeoutError):  # the bus is away
            await asyncio.sleep(0.1)


async def orders_through_a_restart(fleet: ProcessFleet, server: NatsServer) -> Restart:
    nc = await nats.connect(fleet.nats_url, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
    js = nc.jetstream()
    seen = Restart()
    await follow_events(nc, seen)
    quotes = await nc.subscribe(subjects.market_data("paper", MarketDataKind.QUOTE, "ETH/USDT"))
    for _ in range(2):  # risk has a quote too: the limit orders pass its price collar
        await quotes.next_msg(timeout=30)
    await quotes.unsubscribe()

    commands = orders()
    # Half the orders at once, and the kill while the fleet works through them: every
    # service has publishes in flight then.
    await asyncio.gather(*[await js.publish_async(subjects.command("paper", "demo"), encode(command),
                                                  headers={MSG_ID: command_dedupe_id(command)})
                           for command in commands[: ORDERS // 2]])
    restarting = asyncio.create_task(restart(server, seen))
    for command in commands[ORDERS // 2 :]:
        if seen.back_at is not None and seen.first_after is None:
            seen.first_after = command.client_order_id
        await place(js, subjects.command("paper", "demo"), command)
    await restarting
    await settle(nc, timeout=120)
    await nc.close()
    return seen


async def test_no_service_exits_and_trading_resumes_after_a_bus_restart(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "nats", port=free_port()) as server:
        await create_durables_with_short_ack_wait(server.url)
        async with configured_fleet(server.url, tmp_path, LIMITS, *SERVICES) as fleet:
            pids = {name: process.pid for name, process in fleet.processes.items()}
            seen = await orders_through_a_restart(fleet, server)
            assert fleet.alive() == dict.fromkeys(SERVICES, True), {
                name: fleet.log(name) for name, alive in fleet.alive().items() if not alive}
            assert {name: process.pid for name, process in fleet.processes.items()} == pids
            rode_out(fleet, SERVICES)
            report_resumption(seen)
            await asyncio.to_thread(check_outcome, fleet)


def rode_out(fleet: ProcessFleet, names: tuple[str, ...]) -> None:
    """Each service saw the break and came through it without handing a batch back for
    redelivery (the old way: a publish timed out, its messages came back after the ack wait)."""
    for name in names:
        log = (fleet.work / f"{name}.log").read_text(errors="replace")
        assert "bus reconnected" in log, fleet.log(name)
        for failure in ("batch handler failed", "background task failed"):
            assert failure not in log, log[log.index(failure) - 500 :][:3000]


def report_resumption(seen: Restart) -> None:
    assert seen.back_at is not None and seen.first_after is not None
    resumed = seen.finished[seen.first_after] - seen.back_at
    print(f"first order placed after the restart ({seen.first_after}) final {resumed:.2f}s after the server was back")
    assert resumed < RESUMED_WITHIN, resumed


async def routes_through_a_restart(fleet: ProcessFleet, server: NatsServer) -> Restart:
    """Orders routed straight to the connector (where risk routes them), a burst the kill
    interrupts once the connector has answered a few, then one more after the restart."""
    nc = await nats.connect(fleet.nats_url, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
    js = nc.jetstream()
    seen = Restart()
    await follow_events(nc, seen)
    commands = [msgspec.structs.replace(command, client_order_id=f"{command.client_order_id}-{n}")
                for n in range(BURSTS) for command in orders()]
    acks = [await js.publish_async(subjects.route("paper", "demo"), encode(command),
                                   headers={MSG_ID: command_dedupe_id(command)}) for command in commands]
    await asyncio.gather(*acks)
    await wait_until(lambda: len(seen.finished) >= 50, "the connector at work", timeout=30)
    await restart(server, seen)
    after = PlaceOrder(client_order_id="after", venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                       order_type=OrderType.MARKET, quantity=Decimal("0.01"))
    seen.first_after = after.client_order_id
    await place(js, subjects.route("paper", "demo"), after)
    await settle(nc, timeout=120, consumers=(("ROUTE", "connector-paper"), ("ROUTE", "oms-route"),
                                             ("EVENTS", "oms-events")))
    events = [_event.decode(m.data) for m in await read_stream(js, "EVENTS", subjects.ALL_ANSWERS)]
    bucket = OmsState()
    for key, value in await read_bucket(nc, ORDERS_BUCKET):
        bucket.load(key, value)
    await nc.close()
    expected = {command.client_order_id for command in commands} | {after.client_order_id}
    answered = Counter(e.client_order_id for e in events if isinstance(e, (OrderAccepted, OrderRejected)))
    finished = Counter(e.client_order_id for e in events if isinstance(e, TERMINAL_EVENTS))
    assert not [e for e in events if isinstance(e, OrderRejected)], "no order of this test should be refused"
    assert set(answered) == expected and max(answered.values()) == 1, "an order lost or answered twice"
    assert set(finished) == expected and max(finished.values()) == 1, "an order did not end exactly once"
    records = bucket.orders.values()
    assert {r.client_order_id for r in records} == expected, "the order manager's bucket lacks orders"
    unfinished = [(r.client_order_id, r.status.value) for r in records if r.status not in TERMINAL_STATUSES or r.anomalies]
    assert not unfinished, f"records in the bucket not in their final state: {unfinished[:5]}"
    return seen


async def test_the_connector_and_the_order_manager_ride_out_a_bus_restart_in_a_burst(tmp_path: Path) -> None:
    """The connector of issue 10: its event publishes in flight when the server died never got
    their acks, it exited, and its successor waited for what it left unacknowledged. The
    order manager's bucket writes carry no Nats-Msg-Id: it writes their keys again instead."""
    names = ("connector.paper", "oms")
    with NatsServer(store_dir=tmp_path / "nats", port=free_port()) as server:
        await create_durables_with_short_ack_wait(server.url)
        async with configured_fleet(server.url, tmp_path, LIMITS, *names) as fleet:
            pids = {name: process.pid for name, process in fleet.processes.items()}
            seen = await routes_through_a_restart(fleet, server)
            assert fleet.alive() == dict.fromkeys(names, True), {name: fleet.log(name) for name in names}
            assert {name: process.pid for name, process in fleet.processes.items()} == pids
            rode_out(fleet, names)
            report_resumption(seen)
            for name, cut_off in (("connector.paper", "publishing again"), ("oms", "bucket writes cut off")):
                log = (fleet.work / f"{name}.log").read_text(errors="replace")
                print(f"{name}: {log.count(cut_off)} x {cut_off!r}")


GRACE = 3.0
SHUTDOWN_GRACE = 3.0
MARGIN = 5.0


def test_a_bus_away_longer_than_the_grace_makes_every_service_exit_in_time(tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text(LIMITS)
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port())
    server.start()
    fleet = ProcessFleet(server.url, tmp_path, env={"TRADEBUS_CONFIG": str(config),
                                                    "TRADEBUS_BUS_OUTAGE_GRACE": str(GRACE),
                                                    "TRADEBUS_SHUTDOWN_GRACE": str(SHUTDOWN_GRACE)})
    try:
        for name in SERVICES:
            fleet.start(name)
        asyncio.run(orders_in_flight(server.url))
        server.kill()
        killed_at = time.monotonic()
        exits: dict[str, tuple[int, float]] = {}
        while len(exits) < len(SERVICES) and time.monotonic() < killed_at + GRACE + SHUTDOWN_GRACE + MARGIN + 30:
            for name in set(SERVICES) - set(exits):
                code = fleet.processes[name].poll()
                if code is not None:
                    exits[name] = (code, time.monotonic() - killed_at)
            time.sleep(0.05)
        print("exit code and seconds after the kill:", {name: (code, round(t, 2)) for name, (code, t) in exits.items()})
        assert set(exits) == set(SERVICES), f"still running: {set(SERVICES) - set(exits)}"
        for name, (code, seconds) in exits.items():
            log = (fleet.work / f"{name}.log").read_text(errors="replace")
            assert code == 1, (name, code, fleet.log(name))
            assert GRACE - 0.5 < seconds < GRACE + SHUTDOWN_GRACE + MARGIN, (name, seconds, fleet.log(name))
            assert "bus unreachable for longer than bus_outage_grace" in log, fleet.log(name)
    finally:
        fleet.stop_all()
        server.stop()


async def orders_in_flight(url: str) -> None:
    """Orders whose acks nobody awaits, so that the kill finds the fleet working."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for command in orders()[:300]:
        await js.publish_async(subjects.command("paper", "demo"), encode(command),
                               headers={MSG_ID: command_dedupe_id(command)})
    await nc.flush()
    await nc.close()
