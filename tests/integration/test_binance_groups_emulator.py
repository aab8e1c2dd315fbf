"""OCO groups held natively by Binance spot as order lists: the ccxt connector (through the
real ccxt, POST /api/v3/orderList/oco) against the Binance emulator, driven at the
connector level (`execute`), as risk routes a group: one command, every leg's events."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import BaseError

from tradebus.emulators.binance import BinanceEmulator
from tradebus.schemas.commands import CancelOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import OrderAccepted, OrderCancelled, OrderFilled, OrderPartiallyFilled, OrderRejected
from tradebus.schemas.values import CancelReason, GroupKind, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.connector.errors import OrderRefused
from tradebus.services.connector.venues.ccxt import binance_lists, parsing
from tradebus.services.connector.venues.ccxt.connector import CcxtConnector
from tradebus.shared.natsserver import NatsServer

from .emulatortests import started_connector
from .helpers import wait_until
from .test_binance_emulator import API_KEY, API_SECRET, SYMBOL, binance, emulator

__all__ = ["binance", "emulator"]
QUANTITY = Decimal("0.01")
TICK = Decimal("0.01")


def connector(emulator: BinanceEmulator, nats_server: NatsServer, events: list[Any], **resilience: float) -> Any:
    """The ccxt connector for the emulated Binance, started as the service starts it, its
    events (returned and emitted) in `events`."""
    table = {**emulator.connector_config(account="main", api_key=API_KEY, api_secret=API_SECRET),
             "symbols": [SYMBOL], "subscribe": [], "resilience": resilience}
    return started_connector(CcxtConnector, "binance", table, nats_server, events,
                             lambda: emulator.user_stream_subscribed(API_KEY))


def book(emulator: BinanceEmulator) -> tuple[Decimal, Decimal]:
    market = emulator.venue.last_market[SYMBOL]
    assert market.bids and market.asks
    return market.bids[0][0], market.asks[0][0]


def order(coid: str, order_type: OrderType, side: Side = Side.SELL, quantity: Decimal = QUANTITY,
          **terms: Any) -> PlaceOrder:
    return PlaceOrder(client_order_id=coid, venue="binance", account="main", symbol=SYMBOL, side=side,
                      order_type=order_type, quantity=quantity, time_in_force=TimeInForce.GTC, **terms)


def oco(group_id: str, *orders: PlaceOrder) -> PlaceOrderGroup:
    return PlaceOrderGroup(group_id=group_id, venue="binance", account="main", kind=GroupKind.OCO, orders=list(orders))


async def run(venue: CcxtConnector, events: list[Any], command: Any) -> list[Any]:
    """`execute`, its answer kept with the emitted events (the service publishes both)."""
    answered = await venue.execute(command)
    events.extend(answered)
    return answered


def of(events: list[Any], kind: type | tuple[type, ...], coid: str) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.client_order_id == coid]


async def until(events: list[Any], kind: type | tuple[type, ...], coid: str, what: str, timeout: float = 10) -> Any:
    await wait_until(lambda: bool(of(events, kind, coid)), what, timeout)
    return of(events, kind, coid)[0]


async def test_an_oco_works_both_legs_and_the_limits_fill_expires_the_stop_as_contingent(
        emulator: BinanceEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        bid, ask = book(emulator)
        # a buy OCO: the limit 0.5% under the bid (the seeded walk falls to it within seconds),
        # the stop (a breakout) a tenth above the market, beyond this test's reach
        group = oco("g1", order("g1-tp", OrderType.LIMIT, Side.BUY, price=(bid * Decimal("0.995")).quantize(TICK)),
                    order("g1-sl", OrderType.STOP_LIMIT, Side.BUY, stop_price=(ask * Decimal("1.1")).quantize(TICK),
                          price=(ask * Decimal("1.11")).quantize(TICK)))
        placed = await run(venue, events, group)
        accepted = {e.client_order_id: e for e in placed if isinstance(e, OrderAccepted)}
        assert set(accepted) == {"g1-tp", "g1-sl"} and {e.group_id for e in accepted.values()} == {"g1"}, placed
        assert [accepted[c].contingent_on for c in ("g1-tp", "g1-sl")] == [None, None]  # both work at once
        legs = {o.client_order_id: o for o in emulator.venue.orders.values()}
        assert {legs[c].is_open for c in ("g1-tp", "g1-sl")} == {True}
        assert emulator.lists.list_id(legs["g1-tp"]) == emulator.lists.list_id(legs["g1-sl"]) != -1
        await until(events, (OrderPartiallyFilled, OrderFilled), "g1-tp", "the take-profit traded", timeout=20)
        cancelled = await until(events, OrderCancelled, "g1-sl", "the stop expired by its list")
        assert cancelled.reason is CancelReason.CONTINGENT and legs["g1-sl"].status.value == "expired"
        assert not of(events, (OrderPartiallyFilled, OrderFilled), "g1-sl")

        placed_orders = len(emulator.venue.orders)
        again = await run(venue, events, group)  # a re-delivery: each leg answered with its latest event
        assert {e.client_order_id for e in again} == {"g1-tp", "g1-sl"}
    fresh: list[Any] = []
    # crashed before storing, and the legs older than the start's look-back: the tracker is empty
    async with connector(emulator, nats_server, fresh, reconcile_lookback=0.001) as restarted:
        assert not restarted.tracker.knows("g1-tp")
        answered = await run(restarted, fresh, group)  # the legs are found by client order id, not sent again
        assert {e.client_order_id for e in answered if isinstance(e, OrderAccepted)} == {"g1-tp", "g1-sl"}
        # read back over REST (no expiry reason there): expired by its list all the same
        assert of(answered, OrderCancelled, "g1-sl")[0].reason is CancelReason.CONTINGENT
    assert len(emulator.venue.orders) == placed_orders  # nothing placed twice


async def test_a_sell_oco_is_mirrored_and_a_cancelled_leg_cancels_its_list(
        emulator: BinanceEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        bid, ask = book(emulator)
        placed = await run(venue, events, oco("g2", order("g2-sl", OrderType.STOP, stop_price=(bid * Decimal("0.9")).quantize(TICK)),
                                              order("g2-tp", OrderType.LIMIT, price=(ask * Decimal("1.1")).quantize(TICK))))
        assert {e.client_order_id for e in placed if isinstance(e, OrderAccepted)} == {"g2-tp", "g2-sl"}
        await run(venue, events, CancelOrder(client_order_id="g2-tp", venue="binance", account="main"))
        assert of(events, OrderCancelled, "g2-tp")[0].reason is CancelReason.REQUESTED
        assert (await until(events, OrderCancelled, "g2-sl", "the list cancelled")).reason is CancelReason.CONTINGENT


async def test_shapes_binance_cannot_hold_are_refused_naming_why(
        emulator: BinanceEmulator, nats_server: NatsServer) -> None:
    events: list[Any] = []
    async with connector(emulator, nats_server, events) as venue:
        bid, ask = book(emulator)
        count = len(emulator.venue.orders)
        two_limits = await run(venue, events, oco("g3", order("g3-a", OrderType.LIMIT, price=ask + 5),
                                                  order("g3-b", OrderType.LIMIT, price=ask + 9)))
        two_sizes = await run(venue, events, oco("g4", order("g4-a", OrderType.LIMIT, price=ask + 5),
                                                 order("g4-b", OrderType.STOP, quantity=QUANTITY * 2, stop_price=bid - 5)))
        refusals = [(e.reason, e.message) for e in [*two_limits, *two_sizes] if isinstance(e, OrderRejected)]
        assert [reason for reason, _ in refusals] == [RejectReason.UNSUPPORTED_ORDER_GROUP] * 4
        assert "one limit (LIMIT_MAKER) and one stop" in refusals[0][1] and "one quantity" in refusals[2][1]
        assert len(emulator.venue.orders) == count  # nothing sent



async def test_the_emulator_refuses_a_duplicate_list_with_binances_code_and_reports_lists(
        emulator: BinanceEmulator, binance: Any) -> None:
    """Through ccxt alone: the order list's answer and `listStatus` / `g` on the stream, and
    -2010 "Duplicate order sent." for a list whose client id is open, mapped by the code table."""
    await binance.load_markets()
    watching = asyncio.ensure_future(binance.watch_orders(SYMBOL))
    await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "the user data stream subscribed")
    bid, ask = book(emulator)
    group = oco("d1", order("d1-tp", OrderType.LIMIT, price=(ask * Decimal("1.1")).quantize(TICK)),
                order("d1-sl", OrderType.STOP, stop_price=(bid * Decimal("0.9")).quantize(TICK)))
    request = binance_lists.oco_request(group, "BTCUSDT")
    answer = await binance.private_post_orderlist_oco(request)
    assert (answer["contingencyType"], answer["listStatusType"], answer["listOrderStatus"]) == ("OCO", "EXEC_STARTED",
                                                                                                "EXECUTING")
    assert answer["listClientOrderId"] == "d1" and len(answer["orderReports"]) == 2
    assert {(r["clientOrderId"], r["type"], r["orderListId"]) for r in answer["orderReports"]} == {
        ("d1-tp", "LIMIT_MAKER", answer["orderListId"]), ("d1-sl", "STOP_LOSS", answer["orderListId"])}
    reports = await asyncio.wait_for(watching, timeout=10)
    assert {o["info"]["g"] for o in reports} == {answer["orderListId"]}
    with pytest.raises(BaseError) as refused:
        await binance.private_post_orderlist_oco(request)
    assert '"code":-2010' in str(refused.value).replace(" ", "") and "Duplicate order sent." in str(refused.value)
    error = parsing.venue_error(refused.value, changes_state=True, retry_after=None, exchange_id="binance",
                                last_body=binance.last_http_response)
    assert isinstance(error, OrderRefused) and error.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
