"""kill -9 of the paper connector in the middle of a stream of 1,000 orders: after a restart
every order reaches exactly one final state and the venue never takes one twice."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import CancelOrder, OrderCommand, PlaceOrder, command_dedupe_id
from tradebus.schemas.control import Reconcile
from tradebus.schemas.events import (
    TERMINAL_EVENTS,
    BalanceUpdate,
    CommandRejected,
    FillEventBase,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    PositionUpdate,
)
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import CancelReason, OrderType, Side
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import connector_consumer

from .processes import ProcessFleet

ORDERS = 1000
CONSUMER = connector_consumer("paper")
CASH = Decimal("1000000")  # the default demo account's USDT
_reconcile_reply = reply_decoder(Family.RECONCILE)


def _place(n: int) -> PlaceOrder:
    """Every third order a buy limit far below the market (it rests), the others market
    orders alternately buying and selling (they fill)."""
    terms: dict[str, Any] = {"side": Side.BUY, "order_type": OrderType.LIMIT, "price": Decimal("1000.00")}
    if n % 3:
        terms = {"side": Side.BUY if n % 2 else Side.SELL, "order_type": OrderType.MARKET}
    return PlaceOrder(
        client_order_id=f"o{n}", venue="paper", account="demo", symbol="BTC/USDT", quantity=Decimal("0.01"), **terms
    )


def _cancel(client_order_id: str) -> CancelOrder:
    return CancelOrder(client_order_id=client_order_id, venue="paper", account="demo")


def _stream() -> list[OrderCommand]:
    """The orders, with a cancel of an older resting limit after every hundredth from 250."""
    commands: list[OrderCommand] = []
    for n in range(ORDERS):
        commands.append(_place(n))
        if n >= 250 and n % 100 == 50:
            commands.append(_cancel(f"o{(n - 150) // 3 * 3}"))  # a multiple of 3: a limit
    return commands


async def _route(js: JetStreamContext, commands: list[OrderCommand]) -> None:
    acks = [
        await js.publish_async(
            subjects.route("paper", "demo"), encode(c), headers={"Nats-Msg-Id": command_dedupe_id(c)}
        )
        for c in commands
    ]
    await asyncio.gather(*acks)


async def _acked(js: JetStreamContext) -> int:
    return (await js.consumer_info(CONSUMER.stream.name, CONSUMER.durable)).ack_floor.stream_seq


async def _wait_all_acked(js: JetStreamContext, timeout: float) -> None:
    last = (await js.stream_info(CONSUMER.stream.name)).state.last_seq
    deadline = time.monotonic() + timeout
    while True:
        info = await js.consumer_info(CONSUMER.stream.name, CONSUMER.durable)
        if info.ack_floor.stream_seq == last and info.num_pending == 0 and info.num_ack_pending == 0:
            return
        assert time.monotonic() < deadline, f"commands left: acked up to {info.ack_floor.stream_seq} of {last}"
        await asyncio.sleep(0.1)


async def _stored_events(js: JetStreamContext) -> list[Any]:
    """Every event stored on the paper venue's subjects, oldest first."""
    config = ConsumerConfig(ack_policy=AckPolicy.NONE)
    reader = await js.pull_subscribe("tradebus.evt.*.paper.>", stream="EVENTS", config=config)
    total = (await reader.consumer_info()).num_pending
    messages: list[Any] = []
    while len(messages) < total:
        messages += await reader.fetch(min(1000, total - len(messages)), timeout=5)
    await reader.unsubscribe()
    return [decoder(subjects.parse(m.subject).family).decode(m.data) for m in messages]


def _by_order(events: list[Any]) -> dict[str, list[Any]]:
    orders: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        if not isinstance(event, (CommandRejected, BalanceUpdate, PositionUpdate)):
            orders[event.client_order_id].append(event)
    return orders


async def test_kill_9_in_the_middle_of_1000_orders(nats_server: NatsServer, tmp_path: Path) -> None:
    # A millisecond of simulated venue latency per command makes the stream last long
    # enough to be killed in the middle of it.
    fleet = ProcessFleet(
        nats_server.url, tmp_path, env={"TRADEBUS_PAPER__SEED": "1", "TRADEBUS_PAPER__LATENCY": "0.001"}
    )
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await asyncio.to_thread(fleet.start, "connector.paper")
        commands = _stream()
        await _route(js, commands)
        while await _acked(js) < 300:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # half-way through the next batch of 100
        fleet.kill("connector.paper")
        assert await _acked(js) < len(commands), "the stream was over before the kill"

        await asyncio.to_thread(fleet.start, "connector.paper")
        # The batch the killed process held comes back after the consumer's ack_wait.
        await _wait_all_acked(js, timeout=CONSUMER.ack_wait + 20)
        status = decoder(Family.STATUS).decode((await nc.request(subjects.PING, b"", timeout=5)).data)
        assert status.counters["skipped_redeliveries"] > 0  # what the killed process had executed

        events = await _stored_events(js)
        _check_every_order_once(events, commands)
        _check_the_ledger(events)

        resting = [c for c, history in _by_order(events).items() if isinstance(history[-1], OrderAccepted)]
        assert len(resting) > 300
        await _check_reconcile(nc, js, known=[resting[0], "o1", "o99"], unknown=["never-placed"])
        await _route(js, [_cancel(c) for c in resting[:5]])
        await _wait_all_acked(js, timeout=10)
        after = _by_order(await _stored_events(js))
        for client_order_id in resting[:5]:
            assert isinstance(after[client_order_id][-1], OrderCancelled)
        assert fleet.stop_all() == {"connector.paper": 0}
    finally:
        await nc.close()
        fleet.stop_all()


def _check_every_order_once(events: list[Any], commands: list[OrderCommand]) -> None:
    assert len({e.event_id for e in events}) == len(events)
    assert not [e for e in events if isinstance(e, CommandRejected)]  # neither duplicates nor spurious refusals
    orders = _by_order(events)
    places = [c for c in commands if isinstance(c, PlaceOrder)]
    assert sorted(orders) == sorted(p.client_order_id for p in places)
    accepted = [e for e in events if isinstance(e, OrderAccepted)]
    assert len({e.venue_order_id for e in accepted}) == len(accepted)
    fills = [e.fill.trade_id for e in events if isinstance(e, FillEventBase)]
    assert len(set(fills)) == len(fills)
    cancelled = {c.client_order_id for c in commands if isinstance(c, CancelOrder)}
    for place in places:
        history = orders[place.client_order_id]
        assert sum(isinstance(e, (OrderAccepted, OrderRejected)) for e in history) == 1
        ends = [e for e in history if isinstance(e, TERMINAL_EVENTS)]
        if place.order_type is OrderType.MARKET or place.client_order_id in cancelled:
            assert len(ends) == 1 and history[-1] is ends[0], history
        else:
            assert ends == [], history  # a resting limit is still open
        if place.client_order_id in cancelled:
            assert ends[0].reason is CancelReason.REQUESTED


def _check_the_ledger(events: list[Any]) -> None:
    """The last balance and position the venue published add up every fill it published."""
    cash, position = CASH, Decimal(0)
    for event in events:
        if isinstance(event, FillEventBase):
            fill = event.fill
            signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
            cash -= signed * fill.price + fill.fee
            position += signed
    balance = [e for e in events if isinstance(e, BalanceUpdate)][-1]
    reported = [e for e in events if isinstance(e, PositionUpdate)][-1]
    assert balance.balances[0].total == cash and reported.quantity == position


async def _check_reconcile(nc: nats.NATS, js: JetStreamContext, *, known: list[str], unknown: list[str]) -> None:
    """The connector names what it knows and re-publishes it under the original ids: the
    stream, which has them all, stores nothing new."""
    stored = (await js.stream_info("EVENTS")).state.messages
    request = Reconcile(account="demo", client_order_ids=known + unknown)
    answer = _reconcile_reply.decode((await nc.request(subjects.reconcile("paper"), encode(request), timeout=5)).data)
    assert (answer.known, answer.unknown, answer.error) == (known, unknown, "")
    assert (await js.stream_info("EVENTS")).state.messages == stored
    bad = _reconcile_reply.decode(
        (await nc.request(subjects.reconcile("paper"), b'{"type":"reconcile"}', timeout=5)).data
    )
    assert bad.error and bad.known == [] == bad.unknown
