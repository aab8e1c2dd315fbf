"""Poison never stops the order path (every service a real process on a real nats-server).

A garbage value in each KV bucket and an unreadable message on every subject a service
consumes: no service exits or stops answering, the raw bytes appear on the dead-letter
subject `tradebus.dlq.<service>.<source>`, orders and cancels still work afterwards, and a
restarted service reads the same poison on start-up and comes up READY.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import CancelOrder, OrderCommand, PlaceOrder, command_dedupe_id
from tradebus.schemas.control import GetOrder, Subscribe
from tradebus.schemas.events import OrderAccepted, OrderCancelled
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, OrderStatus, OrderType, Side
from tradebus.shared.quarantine import HEADER_ROOM, ORIGIN_HEADER, SIZE_HEADER

from .processes import ProcessFleet, process_fleet

SERVICES = ("risk", "oms", "audit", "connector.paper")
LIMITS = """
[risk.limits.defaults]
allowed_symbols = ["*"]
max_open_orders = 1000
"""
_event = decoder(Family.ORDER_EVENT)
_oms_reply = reply_decoder(Family.OMS_QUERY)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    work = tmp_path_factory.mktemp("poison")
    config = work / "tradebus.toml"
    config.write_text(LIMITS)
    with process_fleet(work, SERVICES, env={"TRADEBUS_CONFIG": str(config)}) as processes:
        yield processes


class DeadLetters:
    """Everything published on tradebus.dlq.>, from the moment the block starts."""

    def __init__(self, nc: nats.NATS) -> None:
        self.nc = nc
        self.letters: list[Msg] = []

    async def __aenter__(self) -> DeadLetters:
        async def receive(msg: Msg) -> None:
            self.letters.append(msg)

        self.subscription = await self.nc.subscribe(f"{subjects.PREFIX}.dlq.>", cb=receive)
        await self.nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.subscription.unsubscribe()

    async def expect(self, wanted: set[tuple[str, str, bytes]], timeout: float = 60) -> None:
        """Wait for every (dead-letter subject, origin, body)."""
        deadline = time.monotonic() + timeout
        while missing := wanted - self.seen():
            assert time.monotonic() < deadline, f"no dead letter for {sorted(missing)}; got {sorted(self.seen())}"
            await asyncio.sleep(0.05)

    def seen(self) -> set[tuple[str, str, bytes]]:
        return {(m.subject, (m.headers or {}).get(ORIGIN_HEADER, ""), m.data) for m in self.letters}


async def send_command(js: nats.js.JetStreamContext, command: OrderCommand) -> None:
    await js.publish(subjects.command(command.venue, command.account), encode(command),
                     headers={"Nats-Msg-Id": command_dedupe_id(command)})


async def quotes_flowing(nc: nats.NATS) -> None:
    """Subscribe to ETH/USDT quotes (or renew the subscription) and wait for one: risk
    checks a limit price against the last quote."""
    quotes = await nc.subscribe(subjects.market_data("paper", MarketDataKind.QUOTE, "ETH/USDT"))
    subscribe = Subscribe(symbols=["ETH/USDT"], kinds=[MarketDataKind.QUOTE])
    await nc.request(subjects.market_data_control("paper"), encode(subscribe), timeout=10)
    await quotes.next_msg(timeout=30)
    await quotes.unsubscribe()


async def place_and_cancel(nc: nats.NATS, client_order_id: str) -> None:
    """A resting limit order is accepted, then cancelled, and the order manager knows it."""
    await quotes_flowing(nc)
    js = nc.jetstream()
    events: list[object] = []

    async def on_event(msg: Msg) -> None:
        event = _event.decode(msg.data)
        if getattr(event, "client_order_id", None) == client_order_id:
            events.append(event)

    async def wait_for(kind: type) -> None:
        deadline = time.monotonic() + 30
        while not any(isinstance(event, kind) for event in events):
            assert time.monotonic() < deadline, f"{client_order_id}: no {kind.__name__}, only {events}"
            await asyncio.sleep(0.02)

    subscription = await nc.subscribe(subjects.order_events("paper", "demo"), cb=on_event)
    await send_command(js, PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo",
                                      symbol="ETH/USDT", side=Side.BUY, order_type=OrderType.LIMIT,
                                      quantity=Decimal("0.01"), price=Decimal("2800")))  # below the ~3000 market, within the collar
    await wait_for(OrderAccepted)
    await send_command(js, CancelOrder(client_order_id=client_order_id, venue="paper", account="demo"))
    await wait_for(OrderCancelled)
    await subscription.unsubscribe()
    query = encode(GetOrder(venue="paper", account="demo", client_order_id=client_order_id))
    deadline = time.monotonic() + 30
    while True:
        reply = _oms_reply.decode((await nc.request(subjects.OMS_QUERY, query, timeout=5)).data)
        if reply.orders and reply.orders[0].status is OrderStatus.CANCELLED:
            return
        assert time.monotonic() < deadline, f"the order manager has {reply}"
        await asyncio.sleep(0.1)


def restart(fleet: ProcessFleet, name: str) -> None:
    """SIGTERM (a clean exit is required), then start again and wait for READY."""
    code, _ = fleet.terminate(name)
    assert code == 0, fleet.log(name)
    fleet.start(name)


def assert_all_serving(fleet: ProcessFleet) -> None:
    """Every service is alive and still sends READY heartbeats."""
    assert all(fleet.alive().values()), {name: fleet.log(name) for name, alive in fleet.alive().items() if not alive}
    for name in SERVICES:
        fleet.wait_ready(name, timeout=30)


async def poison_bucket(nc: nats.NATS, bucket: str, garbage: dict[str, bytes]) -> KeyValue:
    kv = await nc.jetstream().key_value(bucket)
    for key, value in garbage.items():
        await kv.put(key, value)
    return kv


def bucket_letters(service: str, source: str, bucket: str, garbage: dict[str, bytes]) -> set[tuple[str, str, bytes]]:
    return {(subjects.dead_letter(service, source), f"$KV.{bucket}.{key}", value) for key, value in garbage.items()}


def test_a_garbage_trading_state_is_quarantined_and_risk_restarts_over_it(fleet: ProcessFleet) -> None:
    garbage = {"fleet": b"\xff\xfe not a trading state",
               "account.demo": b'{"type":"trading_state_changed","state":"nonsense"}',
               "no-such-key": b"{}"}
    wanted = bucket_letters("risk", "trading_state", "tradebus_risk", garbage)

    async def scenario() -> None:
        nc = await nats.connect(fleet.nats_url)
        async with DeadLetters(nc) as letters:  # risk watches its bucket
            kv = await poison_bucket(nc, "tradebus_risk", garbage)
            await letters.expect(wanted)
            await asyncio.to_thread(assert_all_serving, fleet)
            await place_and_cancel(nc, "poison-state-1")
        async with DeadLetters(nc) as letters:
            # The original failure: a restarted risk read the garbage while starting and hung.
            await asyncio.to_thread(restart, fleet, "risk")
            await letters.expect(wanted)
            await place_and_cancel(nc, "poison-state-2")
        for key in garbage:
            await kv.delete(key)
        await nc.close()

    asyncio.run(scenario())


def test_a_garbage_order_record_is_quarantined_and_the_order_manager_restarts_over_it(fleet: ProcessFleet) -> None:
    garbage = {"order.paper.demo.poison": b"\x00\x01 not a record",
               "position.paper.demo.ETH/USDT": b'{"type":"position","quantity":"lots"}',
               "nobody.knows": b"[]"}

    async def scenario() -> None:
        nc = await nats.connect(fleet.nats_url)
        await poison_bucket(nc, "tradebus_orders", garbage)
        async with DeadLetters(nc) as letters:
            await asyncio.to_thread(restart, fleet, "oms")  # the order manager reads its bucket on start-up
            await letters.expect(bucket_letters("oms", "orders_bucket", "tradebus_orders", garbage))
        await asyncio.to_thread(assert_all_serving, fleet)
        await place_and_cancel(nc, "poison-record")
        await nc.close()

    asyncio.run(scenario())


def test_unreadable_messages_on_every_consumed_subject_are_quarantined(fleet: ProcessFleet) -> None:
    order_events, account_events = subjects.order_events("paper", "demo"), subjects.account_events("paper", "demo")
    routes = (subjects.route("paper", "demo"), subjects.route("paper", "demo") + ".extra")
    # subject -> the dead letters (service.source) its poison must cause
    stored = {
        subjects.command("paper", "demo"): ["risk.command"],
        subjects.command("paper", "demo") + ".extra": ["risk.command"],
        routes[0]: ["connector.route", "oms.route"],
        routes[1]: ["connector.route", "oms.route"],
        order_events: ["risk.event", "oms.event"],
        account_events: ["risk.event", "oms.event"],
    }
    published = {subjects.market_data("paper", MarketDataKind.QUOTE, "ETH/USDT"): ["risk.market_data"]}
    requested = {
        subjects.RISK_CONTROL: ["risk.risk_control"],
        subjects.OMS_QUERY: ["oms.oms_query"],
        subjects.market_data_control("paper"): ["connector.md_control"],
        subjects.reconcile("paper"): ["connector.reconcile"],
    }
    poison = {subject: b"\xff poison on %s {\"type\": " % subject.encode() for subject in {**stored, **published, **requested}}

    def letters(sinks: dict[str, list[str]]) -> set[tuple[str, str, bytes]]:
        return {(f"{subjects.PREFIX}.dlq.{sink}", subject, poison[subject]) for subject, names in sinks.items()
                for sink in names}

    async def scenario() -> None:
        nc = await nats.connect(fleet.nats_url)
        js = nc.jetstream()
        async with DeadLetters(nc) as dead:
            for subject in stored:
                await js.publish(subject, poison[subject])
            for subject in published:
                await nc.publish(subject, poison[subject])
            for subject in requested:  # the sender still gets an answer saying what was wrong
                reply = await nc.request(subject, poison[subject], timeout=10)
                assert b'"ok":false' in reply.data or b'"error":"' in reply.data, (subject, reply.data)
            await dead.expect(letters({**stored, **published, **requested}))
        await asyncio.to_thread(assert_all_serving, fleet)
        await place_and_cancel(nc, "poison-messages-1")

        # Start-up reads the same poison again: risk replays ROUTE and EVENTS, the paper venue
        # rebuilds itself from its events. Every service restarts over it.
        async with DeadLetters(nc) as dead:
            for name in SERVICES:
                await asyncio.to_thread(restart, fleet, name)
            await dead.expect(letters({routes[0]: ["risk.route"], routes[1]: ["risk.route"],
                                       order_events: ["risk.event", "connector.journal"],
                                       account_events: ["risk.event", "connector.journal"]}))
        await asyncio.to_thread(assert_all_serving, fleet)
        await place_and_cancel(nc, "poison-messages-2")
        await nc.close()

    asyncio.run(scenario())


def test_a_dead_letter_too_big_for_the_bus_is_cut_short(fleet: ProcessFleet) -> None:
    """The dead letter adds headers to a message that may already fill the bus's limit: its
    body is cut, and the size header keeps the original length."""

    async def scenario() -> None:
        nc = await nats.connect(fleet.nats_url)
        huge = b"\xff" + b"x" * (nc.max_payload - 1000)
        async with DeadLetters(nc) as dead:
            await nc.jetstream().publish(subjects.command("paper", "demo"), huge)
            deadline = time.monotonic() + 60
            while not dead.letters:
                assert time.monotonic() < deadline, "no dead letter"
                await asyncio.sleep(0.05)
        [letter] = dead.letters
        assert letter.subject == subjects.dead_letter("risk", "command")
        assert letter.data == huge[: nc.max_payload - HEADER_ROOM]
        assert letter.headers is not None and letter.headers[SIZE_HEADER] == str(len(huge))
        await asyncio.to_thread(assert_all_serving, fleet)
        await nc.close()

    asyncio.run(scenario())
