"""Order groups and trailing stops held natively by Alpaca: the connector (through the real
alpaca-py) against the Alpaca emulator, driven at the connector level (`execute`), as risk
does not route groups yet. The emulator's orders are read through alpaca-py too."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tradebus.emulators.alpaca import AlpacaEmulator
from tradebus.schemas.commands import CancelOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import OrderAccepted, OrderCancelled, OrderFilled, OrderRejected
from tradebus.schemas.values import CancelReason, GroupKind, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.connector.venues.alpaca.connector import AlpacaConnector
from tradebus.shared.natsserver import NatsServer

from .emulatortests import started_connector
from .helpers import wait_until
from .test_alpaca_emulator import API_KEY, API_SECRET, client, emulator

__all__ = ["emulator"]
TICK = Decimal("0.01")


def connector(emulator: AlpacaEmulator, nats_server: NatsServer, events: list[Any]) -> Any:
    """The Alpaca connector for the emulator's equities (trailing stops are equity orders),
    started as the service starts it, its events (returned and emitted) in `events`."""
    table = {**emulator.connector_config(account="main", api_key=API_KEY, api_secret=API_SECRET),
             "symbols": ["AAPL", "BRK.B"], "subscribe": []}
    return started_connector(AlpacaConnector, "alpaca", table, nats_server, events,
                             lambda: emulator.trade_stream_listening(API_KEY))


def price(emulator: AlpacaEmulator) -> Decimal:
    market = emulator.venue.last_market["AAPL"]
    return ((market.bids[0][0] + market.asks[0][0]) / 2).quantize(TICK)


def order(coid: str, side: Side, order_type: OrderType, quantity: int = 5, **terms: Any) -> PlaceOrder:
    return PlaceOrder(client_order_id=coid, venue="alpaca", account="main", symbol="AAPL", side=side,
                      order_type=order_type, quantity=Decimal(quantity), time_in_force=TimeInForce.GTC, **terms)


def group(group_id: str, kind: GroupKind, *orders: PlaceOrder) -> PlaceOrderGroup:
    return PlaceOrderGroup(group_id=group_id, venue="alpaca", account="main", kind=kind, orders=list(orders))


async def run(venue: AlpacaConnector, events: list[Any], command: Any) -> list[Any]:
    """`execute`, its answer kept with the emitted events (the service publishes both)."""
    answered = await venue.execute(command)
    events.extend(answered)
    return answered


def of(events: list[Any], kind: type, coid: str) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.client_order_id == coid]


async def until(events: list[Any], kind: type, coid: str, what: str) -> Any:
    await wait_until(lambda: bool(of(events, kind, coid)), what, 10)
    return of(events, kind, coid)[0]


async def venue_status(emulator: AlpacaEmulator, venue: AlpacaConnector, coid: str) -> str:
    order_id = venue.tracker.venue_order_id(coid)
    return str((await asyncio.to_thread(client(emulator).get_order_by_id, order_id)).status.value)


async def test_a_brackets_exits_are_held_then_work_and_cancelling_one_cancels_the_other(
        emulator: AlpacaEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        now = price(emulator)
        placed = await run(venue, events, group(
            "b1", GroupKind.BRACKET, order("b1-in", Side.BUY, OrderType.MARKET),
            order("b1-tp", Side.SELL, OrderType.LIMIT, price=now + 50), order("b1-sl", Side.SELL, OrderType.STOP,
                                                                                stop_price=now - 50)))
        accepted = {e.client_order_id: e for e in placed if isinstance(e, OrderAccepted)}
        assert set(accepted) == {"b1-in", "b1-tp", "b1-sl"} and {e.group_id for e in accepted.values()} == {"b1"}
        assert [accepted[c].contingent_on for c in ("b1-in", "b1-tp", "b1-sl")] == [None, "b1-in", "b1-in"]
        assert await venue_status(emulator, venue, "b1-tp") == "held"  # until the entry is completely filled
        await until(events, OrderFilled, "b1-in", "the entry filled")
        await asyncio.sleep(0.3)  # the emulator releases the legs on its loop, right after the fill
        assert [await venue_status(emulator, venue, c) for c in ("b1-tp", "b1-sl")] == ["new", "new"]
        await run(venue, events, CancelOrder(client_order_id="b1-tp", venue="alpaca", account="main"))
        assert (await until(events, OrderCancelled, "b1-sl", "the stop-loss cancelled")).reason is CancelReason.CONTINGENT
        assert of(events, OrderCancelled, "b1-tp")[0].reason is CancelReason.REQUESTED


async def test_a_take_profit_fill_cancels_the_stop_loss_and_a_redelivery_places_nothing(
        emulator: AlpacaEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        now = price(emulator)
        bracket = group("b2", GroupKind.BRACKET, order("b2-in", Side.BUY, OrderType.MARKET),
                        order("b2-tp", Side.SELL, OrderType.LIMIT, price=now - 5),  # marketable once it works
                        order("b2-sl", Side.SELL, OrderType.STOP, stop_price=now - 50))
        await run(venue, events, bracket)
        await until(events, OrderFilled, "b2-tp", "the take-profit filled")
        cancelled = await until(events, OrderCancelled, "b2-sl", "the stop-loss cancelled")
        assert cancelled.reason is CancelReason.CONTINGENT and not of(events, OrderFilled, "b2-sl")
        placed = len(emulator.venue.orders)
        again = await run(venue, events, bracket)  # a re-delivery: each order answered with its latest event
        assert {e.client_order_id for e in again} == {"b2-in", "b2-tp", "b2-sl"}
    fresh: list[Any] = []
    async with connector(emulator, nats_server, fresh) as restarted:  # crashed before storing: the tracker is empty
        answered = await run(restarted, fresh, bracket)  # Alpaca refuses the duplicate; the parent is looked up
        assert {e.client_order_id for e in answered if isinstance(e, OrderAccepted)} == {"b2-in", "b2-tp", "b2-sl"}
        assert restarted.tracker.status("b2-sl") is not None and not restarted.tracker.is_open("b2-sl")
    assert len(emulator.venue.orders) == placed  # nothing placed twice


async def test_oco_and_oto(emulator: AlpacaEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        now = price(emulator)
        # OTO: a market buy, then a marketable sell limit that works once it filled
        await run(venue, events, group("t1", GroupKind.OTO, order("t1-in", Side.BUY, OrderType.MARKET, 10),
                                  order("t1-tp", Side.SELL, OrderType.LIMIT, 10, price=now - 5)))
        assert of(events, OrderAccepted, "t1-tp")[0].contingent_on == "t1-in"
        await until(events, OrderFilled, "t1-tp", "the oto's second order filled")
        now = price(emulator)
        flat = await run(venue, events, group("o0", GroupKind.OCO, order("o0-sl", Side.SELL, OrderType.STOP, stop_price=now - 50),
                                              order("o0-tp", Side.SELL, OrderType.LIMIT, price=now + 50)))
        assert {e.reason for e in flat if isinstance(e, OrderRejected)} == {RejectReason.INSUFFICIENT_FUNDS}  # no position
        await run(venue, events, order("pos", Side.BUY, OrderType.MARKET, 5))  # Alpaca's oco is an exit of a position
        await until(events, OrderFilled, "pos", "the position bought")
        now = price(emulator)
        await run(venue, events, group("o1", GroupKind.OCO, order("o1-sl", Side.SELL, OrderType.STOP, stop_price=now - 50),
                                  order("o1-tp", Side.SELL, OrderType.LIMIT, price=now - 5)))
        assert [of(events, OrderAccepted, c)[0].contingent_on for c in ("o1-tp", "o1-sl")] == [None, None]
        await until(events, OrderFilled, "o1-tp", "the oco's limit filled")
        assert (await until(events, OrderCancelled, "o1-sl", "the other cancelled")).reason is CancelReason.CONTINGENT
        two_limits = await run(venue, events, group("o2", GroupKind.OCO, order("o2-a", Side.SELL, OrderType.LIMIT, price=now + 5),
                                               order("o2-b", Side.SELL, OrderType.LIMIT, price=now + 9)))
        assert [(e.reason, "one take-profit limit and one stop-loss" in e.message) for e in two_limits
                if isinstance(e, OrderRejected)] == [(RejectReason.UNSUPPORTED_ORDER_GROUP, True)] * 2


async def test_a_trailing_stop_follows_the_market_and_triggers_once(
        emulator: AlpacaEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        await run(venue, events, order("pos2", Side.BUY, OrderType.MARKET, 5))
        await until(events, OrderFilled, "pos2", "the position bought")
        trail = Decimal("0.10")  # a tenth of a dollar under the highest trade since placement
        [accepted] = [e for e in await run(venue, events, order("tr1", Side.SELL, OrderType.TRAILING_STOP,
                                                            trail_amount=trail)) if isinstance(e, OrderAccepted)]
        assert (accepted.order_type, accepted.trail_amount, accepted.stop_price) == (OrderType.TRAILING_STOP, trail, None)
        trading, order_id = client(emulator), venue.tracker.venue_order_id("tr1")
        first = await asyncio.to_thread(trading.get_order_by_id, order_id)
        marks = {first.hwm}
        while not of(events, OrderFilled, "tr1"):
            seen = await asyncio.to_thread(trading.get_order_by_id, order_id)
            if seen.status.value == "new":
                assert Decimal(seen.stop_price) == Decimal(seen.hwm) - trail  # the stop follows the mark
                marks.add(seen.hwm)
            await asyncio.sleep(0.1)
            assert len(marks) < 200, "no trigger within the test's time"
        filled = of(events, OrderFilled, "tr1")
        assert len(filled) == 1 and filled[0].cum_quantity == 5  # triggered once, one market order
        assert len(marks) > 1, "the mark never moved before the stop triggered"
