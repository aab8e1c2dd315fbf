"""The simulated exchange: examples for every path, properties for the ledger
and matching invariants."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    command_dedupe_id,
)
from tradebus.schemas.events import (
    TERMINAL_EVENTS,
    BalanceUpdate,
    CancelAllDone,
    CommandAction,
    CommandRejected,
    FillEventBase,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
    PositionUpdate,
)
from tradebus.schemas.values import (
    CancelReason,
    GroupKind,
    LiquiditySide,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from tradebus.simulator.exchange import SimulatedExchange
from tradebus.simulator.rules import (
    FeeSchedule,
    InstrumentSpec,
    ceil_to,
    check_order,
    floor_to,
    is_multiple,
)

BTC = "BTC/USDT"
ETH = "ETH/USDT"
NS = 1_000_000_000
T0 = 1_704_110_400 * NS  # 2024-01-01T12:00:00Z
MIDNIGHT = 1_704_153_600 * NS  # 2024-01-02T00:00:00Z
FEES = FeeSchedule(maker_bps=D("2"), taker_bps=D("5"))
BOOK = {"bids": [(D("99"), D("1")), (D("98"), D("2"))], "asks": [(D("101"), D("1")), (D("102"), D("2"))]}


def spec(symbol: str = BTC, **overrides: Any) -> InstrumentSpec:
    terms: dict[str, Any] = {
        "symbol": symbol,
        "base": symbol.split("/")[0],
        "quote": "USDT",
        "tick_size": D("0.01"),
        "lot_size": D("0.001"),
        "min_quantity": D("0.01"),
        "min_notional": D("5"),
        "initial_price": D("100"),
    }
    return InstrumentSpec(**{**terms, **overrides})


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def exchange(
    *,
    cash: str = "1000000",
    slippage: str = "0",
    allow_short: bool = True,
    fees: FeeSchedule = FEES,
    clock: Clock | None = None,
    book: bool = True,
    instruments: list[InstrumentSpec] | None = None,
) -> SimulatedExchange:
    ex = SimulatedExchange(
        venue="paper",
        instruments=instruments or [spec(), spec(ETH)],
        accounts={"a": {"USDT": D(cash)}, "b": {"USDT": D(cash)}},
        fees=fees,
        slippage_bps=D(slippage),
        allow_short=allow_short,
        clock=clock or Clock(),
    )
    if book:
        ex.on_market(BTC, **BOOK)
        ex.on_market(ETH, **BOOK)
    return ex


def place(
    coid: str,
    side: Side,
    quantity: str,
    price: str | None = None,
    *,
    order_type: OrderType | None = None,
    stop: str | None = None,
    account: str = "a",
    symbol: str = BTC,
    **terms: Any,
) -> PlaceOrder:
    if order_type is None:
        order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return PlaceOrder(
        client_order_id=coid,
        venue="paper",
        account=account,
        symbol=symbol,
        side=side,
        order_type=order_type,
        quantity=D(quantity),
        price=None if price is None else D(price),
        stop_price=None if stop is None else D(stop),
        **terms,
    )


def modify(coid: str, modify_id: str = "m1", **terms: str) -> ModifyOrder:
    return ModifyOrder(
        client_order_id=coid, modify_id=modify_id, venue="paper", account="a", **{k: D(v) for k, v in terms.items()}
    )


def cancel(coid: str, account: str = "a") -> CancelOrder:
    return CancelOrder(client_order_id=coid, venue="paper", account=account)


def kinds(events: list[Any]) -> list[type]:
    return [type(e) for e in events]


def fills(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, FillEventBase)]


def fill_terms(events: list[Any]) -> list[tuple[D, D, LiquiditySide]]:
    return [(e.fill.price, e.fill.quantity, e.fill.liquidity) for e in fills(events)]


def only(events: list[Any], kind: type) -> Any:
    assert kinds(events) == [kind], events
    return events[0]


def rejected(ex: SimulatedExchange, command: OrderCommand) -> RejectReason:
    return only(ex.execute(command), OrderRejected).reason


def command_rejected(ex: SimulatedExchange, command: OrderCommand) -> RejectReason:
    return only(ex.execute(command), CommandRejected).reason


# ---------------------------------------------------------------------------------------
# Placement checks


def test_unknown_account_or_venue_is_rejected_and_not_recorded() -> None:
    ex = exchange()
    assert rejected(ex, place("c1", Side.BUY, "1", "100", account="nobody")) is RejectReason.UNKNOWN_ACCOUNT
    assert not ex.knows("nobody", "c1")
    wrong_venue = msgspec.structs.replace(place("c2", Side.BUY, "1", "100"), venue="binance")
    assert rejected(ex, wrong_venue) is RejectReason.UNKNOWN_VENUE
    assert not ex.knows("a", "c2")


def test_unknown_instrument() -> None:
    ex = exchange()
    assert rejected(ex, place("c1", Side.BUY, "1", "100", symbol="DOGE/USDT")) is RejectReason.UNKNOWN_INSTRUMENT
    assert ex.knows("a", "c1")


def test_tick_size_applies_to_price_and_stop_price() -> None:
    ex = exchange()
    assert rejected(ex, place("c1", Side.BUY, "1", "100.005")) is RejectReason.TICK_SIZE
    stop = place("c2", Side.BUY, "1", order_type=OrderType.STOP, stop="105.001")
    assert rejected(ex, stop) is RejectReason.TICK_SIZE


@pytest.mark.parametrize("quantity", ["0.0105", "0.009"], ids=["not-a-lot-multiple", "below-min-quantity"])
def test_lot_size(quantity: str) -> None:
    assert rejected(exchange(), place("c1", Side.BUY, quantity, "100")) is RejectReason.LOT_SIZE


def test_min_notional_uses_limit_price_or_best_opposite_price() -> None:
    ex = exchange()
    assert rejected(ex, place("c1", Side.BUY, "0.049", "100")) is RejectReason.MIN_NOTIONAL  # 4.9
    assert rejected(ex, place("c2", Side.SELL, "0.05")) is RejectReason.MIN_NOTIONAL  # 0.05 x best bid 99
    assert kinds(ex.execute(place("c3", Side.SELL, "0.051")))[0] is OrderAccepted  # 5.049


def test_insufficient_funds_counts_cash_locked_by_open_buys() -> None:
    ex = exchange(cash="1000")
    # 9.95 x 100 x 1.0005 = 995.4975: rests (best ask is 101) and locks that much.
    assert kinds(ex.execute(place("c1", Side.BUY, "9.95", "100"))) == [OrderAccepted]
    assert ex.balances("a")[0].available == D("4.5025")
    # 0.05 x 100 x 1.0005 = 5.0025
    assert rejected(ex, place("c2", Side.BUY, "0.05", "100")) is RejectReason.INSUFFICIENT_FUNDS
    ex.execute(cancel("c1"))
    assert ex.balances("a")[0].available == D("1000")
    # Market: 9.9 x best ask 101 x 1.0005 = 1000.39995.
    assert rejected(ex, place("c3", Side.BUY, "9.9")) is RejectReason.INSUFFICIENT_FUNDS
    assert kinds(ex.execute(place("c4", Side.BUY, "9.8")))[0] is OrderAccepted


def test_insufficient_funds_for_a_market_buy_includes_slippage() -> None:
    ex = exchange(cash="1000", slippage="100")
    # 9.8 x (101 x 1.01 = 102.01) x 1.0005 = 1000.19...
    assert rejected(ex, place("c1", Side.BUY, "9.8")) is RejectReason.INSUFFICIENT_FUNDS
    assert kinds(ex.execute(place("c2", Side.BUY, "9.7")))[0] is OrderAccepted


def test_without_short_selling_a_sell_is_limited_to_position_minus_pending_sells() -> None:
    ex = exchange(allow_short=False)
    assert rejected(ex, place("c1", Side.SELL, "1", "100")) is RejectReason.INSUFFICIENT_FUNDS
    ex.execute(place("c2", Side.BUY, "1"))
    assert kinds(ex.execute(place("c3", Side.SELL, "0.6", "105"))) == [OrderAccepted]
    assert rejected(ex, place("c4", Side.SELL, "0.5", "105")) is RejectReason.INSUFFICIENT_FUNDS
    assert kinds(ex.execute(place("c5", Side.SELL, "0.4", "105"))) == [OrderAccepted]


def test_gtd_expired_on_arrival() -> None:
    clock = Clock()
    ex = exchange(clock=clock)
    late = place("c1", Side.BUY, "1", "100", time_in_force=TimeInForce.GTD, expire_time=clock.now)
    assert rejected(ex, late) is RejectReason.EXPIRED_ON_ARRIVAL
    in_time = place("c2", Side.BUY, "1", "100", time_in_force=TimeInForce.GTD, expire_time=clock.now + 1)
    assert kinds(ex.execute(in_time)) == [OrderAccepted]


def test_post_only_that_would_cross_is_rejected() -> None:
    ex = exchange()
    assert rejected(ex, place("c1", Side.BUY, "1", "101", post_only=True)) is RejectReason.POST_ONLY_WOULD_TAKE
    assert rejected(ex, place("c2", Side.SELL, "1", "99", post_only=True)) is RejectReason.POST_ONLY_WOULD_TAKE
    assert kinds(ex.execute(place("c3", Side.BUY, "1", "100.99", post_only=True))) == [OrderAccepted]


def test_market_order_without_opposite_liquidity() -> None:
    ex = exchange(book=False)
    assert rejected(ex, place("c1", Side.BUY, "1")) is RejectReason.NO_LIQUIDITY
    ex.on_market(BTC, bids=[(D("99"), D("1"))], asks=[])
    assert rejected(ex, place("c2", Side.BUY, "1")) is RejectReason.NO_LIQUIDITY
    assert kinds(ex.execute(place("c3", Side.SELL, "1")))[0] is OrderAccepted


def test_reduce_only_may_neither_open_nor_flip_a_position() -> None:
    ex = exchange()
    assert rejected(ex, place("c1", Side.BUY, "1", reduce_only=True)) is RejectReason.REDUCE_ONLY_VIOLATION
    ex.execute(place("c2", Side.BUY, "1"))
    assert rejected(ex, place("c3", Side.BUY, "0.5", reduce_only=True)) is RejectReason.REDUCE_ONLY_VIOLATION
    assert rejected(ex, place("c4", Side.SELL, "1.5", reduce_only=True)) is RejectReason.REDUCE_ONLY_VIOLATION
    events = ex.execute(place("c5", Side.SELL, "1", reduce_only=True))
    assert kinds(events)[-3] is OrderFilled
    assert ex.positions("a")[0].quantity == 0


def test_a_resting_reduce_only_order_is_cancelled_once_nothing_is_left_to_reduce() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "1"))
    ex.execute(place("c2", Side.SELL, "1", "105", reduce_only=True))
    ex.execute(place("c3", Side.SELL, "1"))  # flat now
    events = ex.on_market(BTC, bids=[(D("105"), D("5"))], asks=[(D("106"), D("5"))])
    assert only(events, OrderCancelled).reason is CancelReason.VENUE
    assert ex.positions("a")[0].quantity == 0


def test_duplicate_client_order_id_is_refused_and_changes_nothing() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "1", "100"))
    duplicate = ex.execute(place("c1", Side.SELL, "2", "90"))
    refusal = only(duplicate, CommandRejected)
    assert (refusal.action, refusal.reason, refusal.client_order_id) == (
        CommandAction.PLACE,
        RejectReason.DUPLICATE_CLIENT_ORDER_ID,
        "c1",
    )
    assert refusal.message == "client order id already used with other terms: side sell (was buy), quantity 2 (was 1), price 90 (was 100)"
    [order] = ex.open_orders("a")
    assert (order.client_order_id, order.side, order.quantity, order.price) == ("c1", Side.BUY, D("1"), D("100"))
    # A rejected order's id is used too.
    ex.execute(place("c2", Side.BUY, "1", "100.001"))
    assert command_rejected(ex, place("c2", Side.BUY, "1", "100")) is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert ex.open_orders("a") == [order]


def test_the_same_place_again_is_answered_with_the_orders_latest_event() -> None:
    """A place the venue executed, delivered again as a new message (after a bus restart the
    delivery count starts over): recognized by its terms, never refused, nothing new happens."""
    ex = exchange()
    journal = ex.execute(place("c1", Side.BUY, "1", "100"))
    assert ex.execute(place("c1", Side.BUY, "1.0", "100.00")) == [journal[-1]]
    assert len(ex.open_orders("a")) == 1
    journal += ex.execute(modify("c1", price="99"))
    latest, _ = ex.reconcile("a", ["c1"])
    assert ex.execute(place("c1", Side.BUY, "1", "100")) == latest  # the terms it was placed with, not the modified ones
    copy, _ = restored(journal)
    assert copy.execute(place("c1", Side.BUY, "1", "100")) == latest
    conflict = only(copy.execute(place("c1", Side.BUY, "1", "101")), CommandRejected)
    assert conflict.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID and "price 101 (was 100)" in conflict.message


# ---------------------------------------------------------------------------------------
# Taking liquidity


def test_accepted_comes_first_then_each_fill_with_its_account_events() -> None:
    ex = exchange()
    events = ex.execute(place("c1", Side.BUY, "1.5"))
    assert kinds(events) == [
        OrderAccepted,
        OrderPartiallyFilled,
        BalanceUpdate,
        PositionUpdate,
        OrderFilled,
        BalanceUpdate,
        PositionUpdate,
    ]
    accepted = events[0]
    assert (accepted.side, accepted.order_type, accepted.quantity, accepted.venue_order_id) == (
        Side.BUY,
        OrderType.MARKET,
        D("1.5"),
        "P1",
    )
    done = events[4]
    # (101 x 1 + 102 x 0.5) / 1.5, rounded to 12 places
    assert (done.cum_quantity, done.leaves_quantity, done.avg_price) == (D("1.5"), 0, D("101.333333333333"))


def test_market_order_walks_the_book_with_adverse_slippage_rounded_to_tick() -> None:
    ex = exchange(slippage="25")
    # 101 x 1.0025 = 101.2525 -> 101.26; 102 x 1.0025 = 102.255 -> 102.26
    assert fill_terms(ex.execute(place("c1", Side.BUY, "1.5"))) == [
        (D("101.26"), D("1"), LiquiditySide.TAKER),
        (D("102.26"), D("0.5"), LiquiditySide.TAKER),
    ]
    # 99 x 0.9975 = 98.7525 -> 98.75
    assert fill_terms(ex.execute(place("c2", Side.SELL, "1"))) == [(D("98.75"), D("1"), LiquiditySide.TAKER)]


def test_market_remainder_is_cancelled_whatever_the_time_in_force() -> None:
    ex = exchange()
    events = ex.execute(place("c1", Side.BUY, "5", time_in_force=TimeInForce.GTC))
    assert [f.fill.quantity for f in fills(events)] == [D("1"), D("2")]
    cancelled = events[-1]
    assert isinstance(cancelled, OrderCancelled)
    assert (cancelled.reason, cancelled.cum_quantity) == (CancelReason.IOC_REMAINDER, D("3"))
    assert ex.open_orders("a") == []


def test_limit_takes_up_to_its_price_then_rests() -> None:
    ex = exchange()
    events = ex.execute(place("c1", Side.BUY, "2", "101.5"))
    assert fill_terms(events) == [(D("101"), D("1"), LiquiditySide.TAKER)]
    [order] = ex.open_orders("a")
    assert (order.cum_quantity, order.leaves_quantity) == (D("1"), D("1"))


def test_limit_ioc_remainder_is_cancelled() -> None:
    ex = exchange()
    events = ex.execute(place("c1", Side.SELL, "2", "99", time_in_force=TimeInForce.IOC))
    assert fill_terms(events) == [(D("99"), D("1"), LiquiditySide.TAKER)]
    assert (events[-1].reason, events[-1].cum_quantity) == (CancelReason.IOC_REMAINDER, D("1"))


def test_fok_fills_entirely_or_not_at_all() -> None:
    ex = exchange()
    events = ex.execute(place("c1", Side.BUY, "3.5", "102", time_in_force=TimeInForce.FOK))
    assert kinds(events) == [OrderAccepted, OrderCancelled]
    assert (events[1].reason, events[1].cum_quantity) == (CancelReason.FOK_UNFILLABLE, 0)
    events = ex.execute(place("c2", Side.BUY, "3", "102", time_in_force=TimeInForce.FOK))
    assert fill_terms(events) == [(D("101"), D("1"), LiquiditySide.TAKER), (D("102"), D("2"), LiquiditySide.TAKER)]
    assert isinstance(events[-3], OrderFilled)


def test_taken_liquidity_is_gone_until_the_next_book() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "0.6"))
    assert fill_terms(ex.execute(place("c2", Side.BUY, "0.6"))) == [
        (D("101"), D("0.4"), LiquiditySide.TAKER),
        (D("102"), D("0.2"), LiquiditySide.TAKER),
    ]
    ex.on_market(BTC, **BOOK)
    assert fill_terms(ex.execute(place("c3", Side.BUY, "1"))) == [(D("101"), D("1"), LiquiditySide.TAKER)]


def test_fill_quantities_are_rounded_down_to_the_lot() -> None:
    ex = exchange(instruments=[spec(lot_size=D("0.1"), min_quantity=D("0.1"))], book=False)
    ex.on_market(BTC, bids=[], asks=[(D("101"), D("0.25")), (D("102"), D("1"))])
    assert fill_terms(ex.execute(place("c1", Side.BUY, "0.5"))) == [
        (D("101"), D("0.2"), LiquiditySide.TAKER),
        (D("102"), D("0.3"), LiquiditySide.TAKER),
    ]


# ---------------------------------------------------------------------------------------
# Resting orders


def test_resting_buy_fills_as_maker_at_its_price_against_book_and_trades() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "2", "100"))
    # Asks at or below the limit: filled at the limit, limited by their displayed size.
    events = ex.on_market(BTC, bids=[(D("99"), D("1"))], asks=[(D("100"), D("0.5")), (D("100.5"), D("3"))])
    assert fill_terms(events) == [(D("100"), D("0.5"), LiquiditySide.MAKER)]
    # A print at the limit does not fill; one strictly below does, up to its size.
    assert ex.on_market(BTC, bids=[], asks=[(D("101"), D("1"))], trade=(D("100"), D("5"))) == []
    events = ex.on_market(BTC, bids=[], asks=[(D("101"), D("1"))], trade=(D("99.5"), D("0.7")))
    assert fill_terms(events) == [(D("100"), D("0.7"), LiquiditySide.MAKER)]
    # Asks well below: still filled at the limit, never through it.
    events = ex.on_market(BTC, bids=[], asks=[(D("95"), D("5"))])
    assert fill_terms(events) == [(D("100"), D("0.8"), LiquiditySide.MAKER)]
    assert isinstance(events[0], OrderFilled) and events[0].avg_price == D("100")
    assert events[0].fill.fee == D("100") * D("0.8") * 2 / 10000


def test_resting_sell_fills_symmetrically() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.SELL, "1", "101.5"))
    events = ex.on_market(BTC, bids=[(D("102"), D("0.3"))], asks=[], trade=(D("103"), D("0.2")))
    assert fill_terms(events) == [(D("101.5"), D("0.5"), LiquiditySide.MAKER)]


def test_resting_orders_fill_in_price_time_priority_and_share_the_displayed_size() -> None:
    ex = exchange()
    ex.execute(place("early", Side.BUY, "1", "100"))
    ex.execute(place("better", Side.BUY, "1", "100.5"))
    ex.execute(place("late", Side.BUY, "1", "100"))
    events = ex.on_market(BTC, bids=[], asks=[(D("99"), D("1.5"))])
    assert [(e.client_order_id, e.fill.quantity) for e in fills(events)] == [("better", D("1")), ("early", D("0.5"))]


def test_a_price_change_loses_time_priority() -> None:
    ex = exchange()
    ex.execute(place("first", Side.BUY, "1", "99.5"))
    ex.execute(place("second", Side.BUY, "1", "100"))
    ex.execute(modify("first", price="100"))
    events = ex.on_market(BTC, bids=[], asks=[(D("100"), D("1"))])
    assert [e.client_order_id for e in fills(events)] == ["second"]


# ---------------------------------------------------------------------------------------
# Stops


def test_buy_stop_triggers_on_the_best_ask_and_then_takes() -> None:
    ex = exchange()
    assert kinds(ex.execute(place("c1", Side.BUY, "1", order_type=OrderType.STOP, stop="105"))) == [OrderAccepted]
    assert ex.on_market(BTC, bids=[(D("103"), D("1"))], asks=[(D("104.99"), D("1"))]) == []
    events = ex.on_market(BTC, bids=[(D("104"), D("1"))], asks=[(D("105"), D("0.4")), (D("106"), D("2"))])
    assert kinds(events)[0] is OrderTriggered
    assert fill_terms(events) == [(D("105"), D("0.4"), LiquiditySide.TAKER), (D("106"), D("0.6"), LiquiditySide.TAKER)]


def test_sell_stop_triggers_on_a_trade_print() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.SELL, "1", order_type=OrderType.STOP, stop="95"))
    events = ex.on_market(BTC, bids=[(D("96"), D("5"))], asks=[(D("97"), D("5"))], trade=(D("95"), D("0.1")))
    assert kinds(events)[0] is OrderTriggered
    assert fill_terms(events) == [(D("96"), D("1"), LiquiditySide.TAKER)]


def test_a_stop_already_reached_triggers_on_placement() -> None:
    ex = exchange()
    events = ex.execute(place("c1", Side.BUY, "1", order_type=OrderType.STOP, stop="100"))
    assert kinds(events)[:3] == [OrderAccepted, OrderTriggered, OrderFilled]


def test_a_triggered_stop_facing_an_empty_book_is_cancelled() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.SELL, "1", order_type=OrderType.STOP, stop="95"))
    events = ex.on_market(BTC, bids=[], asks=[(D("97"), D("1"))], trade=(D("94"), D("1")))
    assert kinds(events) == [OrderTriggered, OrderCancelled]
    assert events[1].reason is CancelReason.NO_LIQUIDITY


def test_stop_limit_works_as_a_limit_once_triggered() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "1", "105.5", order_type=OrderType.STOP_LIMIT, stop="105"))
    # Triggered by the ask at 106, but 106 is through the limit: it rests.
    events = ex.on_market(BTC, bids=[], asks=[(D("106"), D("1"))], trade=(D("104"), D("1")))
    assert kinds(events) == [OrderTriggered]
    [order] = ex.open_orders("a")
    assert order.triggered and order.leaves_quantity == 1
    events = ex.on_market(BTC, bids=[], asks=[(D("105.5"), D("1"))])
    assert fill_terms(events) == [(D("105.5"), D("1"), LiquiditySide.MAKER)]


def test_stop_limit_takes_up_to_its_limit_on_trigger() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.SELL, "2", "94", order_type=OrderType.STOP_LIMIT, stop="95"))
    events = ex.on_market(BTC, bids=[(D("95"), D("0.5")), (D("94"), D("1")), (D("93"), D("5"))], asks=[])
    assert kinds(events)[0] is OrderTriggered
    assert fill_terms(events) == [(D("95"), D("0.5"), LiquiditySide.TAKER), (D("94"), D("1"), LiquiditySide.TAKER)]
    assert ex.open_orders("a")[0].leaves_quantity == D("0.5")


# ---------------------------------------------------------------------------------------
# Expiry


def test_day_order_expires_at_the_next_utc_midnight_before_it_can_fill() -> None:
    clock = Clock()
    ex = exchange(clock=clock)
    ex.execute(place("c1", Side.BUY, "1", "100", time_in_force=TimeInForce.DAY))
    clock.now = MIDNIGHT - 1
    assert ex.on_market(BTC, **BOOK) == []
    clock.now = MIDNIGHT
    expired = only(ex.on_market(BTC, bids=[], asks=[(D("99"), D("5"))]), OrderExpired)
    assert (expired.client_order_id, expired.cum_quantity, expired.ts_event) == ("c1", 0, MIDNIGHT)
    assert ex.open_orders("a") == []


def test_gtd_order_expires_at_its_time_on_the_next_call_of_any_kind() -> None:
    clock = Clock()
    ex = exchange(clock=clock)
    ex.execute(place("c1", Side.BUY, "1", "100", time_in_force=TimeInForce.GTD, expire_time=T0 + 1000))
    clock.now = T0 + 1000
    events = ex.execute(cancel("c1"))
    assert kinds(events) == [OrderExpired, CommandRejected]
    assert events[1].reason is RejectReason.ORDER_NOT_OPEN


# ---------------------------------------------------------------------------------------
# Modify and cancel


def test_modify_changes_the_terms() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "2", "100"))
    modified = only(ex.execute(modify("c1", quantity="3", price="100.5")), OrderModified)
    assert (modified.modify_id, modified.quantity, modified.price) == ("m1", D("3"), D("100.5"))
    [order] = ex.open_orders("a")
    assert (order.quantity, order.price, order.leaves_quantity) == (D("3"), D("100.5"), D("3"))


def test_a_modified_price_that_crosses_takes_at_once() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "2", "100"))
    events = ex.execute(modify("c1", price="101"))
    assert kinds(events)[0] is OrderModified
    assert fill_terms(events) == [(D("101"), D("1"), LiquiditySide.TAKER)]
    assert ex.open_orders("a")[0].leaves_quantity == 1


def test_modify_of_a_stop_price_can_trigger_it() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "1", order_type=OrderType.STOP, stop="110"))
    events = ex.execute(modify("c1", stop_price="101"))
    assert kinds(events)[:3] == [OrderModified, OrderTriggered, OrderFilled]


def test_modify_rejections() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "2", "101"))  # 1 filled, 1 resting
    ex.execute(place("stop", Side.BUY, "1", order_type=OrderType.STOP, stop="110"))
    ex.execute(place("post", Side.BUY, "1", "100", post_only=True))
    assert command_rejected(ex, modify("c1", quantity="1")) is RejectReason.LOT_SIZE
    assert command_rejected(ex, modify("c1", quantity="1.0005")) is RejectReason.LOT_SIZE
    assert command_rejected(ex, modify("c1", price="100.001")) is RejectReason.TICK_SIZE
    assert command_rejected(ex, modify("stop", price="100")) is RejectReason.MALFORMED
    assert command_rejected(ex, modify("c1", stop_price="100")) is RejectReason.MALFORMED
    assert command_rejected(ex, modify("post", price="102")) is RejectReason.POST_ONLY_WOULD_TAKE
    assert command_rejected(ex, modify("nope", price="100")) is RejectReason.UNKNOWN_ORDER
    ex.execute(cancel("c1"))
    refusal = only(ex.execute(modify("c1", "m9", price="100")), CommandRejected)
    assert (refusal.action, refusal.reason, refusal.request_id) == (
        CommandAction.MODIFY,
        RejectReason.ORDER_NOT_OPEN,
        "m9",
    )
    assert refusal.event_id == "paper.a.c1.modify.m9.rejected.order_not_open"


def test_modify_is_held_to_the_funds_check() -> None:
    ex = exchange(cash="1000")
    ex.execute(place("c1", Side.BUY, "5", "100"))
    assert command_rejected(ex, modify("c1", quantity="10")) is RejectReason.INSUFFICIENT_FUNDS
    assert kinds(ex.execute(modify("c1", "m2", quantity="9.99"))) == [OrderModified]


def test_cancel() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "2", "101"))
    cancelled = only(ex.execute(cancel("c1")), OrderCancelled)
    assert (cancelled.reason, cancelled.cum_quantity) == (CancelReason.REQUESTED, D("1"))
    refusal = only(ex.execute(cancel("c1")), CommandRejected)
    assert (refusal.action, refusal.reason) == (CommandAction.CANCEL, RejectReason.ORDER_NOT_OPEN)
    assert command_rejected(ex, cancel("nope")) is RejectReason.UNKNOWN_ORDER
    assert command_rejected(ex, cancel("c1", account="nobody")) is RejectReason.UNKNOWN_ACCOUNT


def test_cancel_all_filters_by_symbol_and_side() -> None:
    ex = exchange()
    ex.execute(place("buy-btc", Side.BUY, "1", "100"))
    ex.execute(place("sell-btc", Side.SELL, "1", "110"))
    ex.execute(place("buy-eth", Side.BUY, "1", "100", symbol=ETH))
    ex.execute(place("other", Side.BUY, "1", "100", account="b"))

    def cancel_all(request_id: str, **filters: Any) -> list[str]:
        """The orders cancelled, after checking the cancel-all's own answer comes last."""
        *events, done = ex.execute(CancelAllOrders(request_id=request_id, venue="paper", account="a", **filters))
        assert isinstance(done, CancelAllDone) and (done.request_id, done.cancelled) == (request_id, len(events))
        assert all(isinstance(e, OrderCancelled) for e in events)
        return sorted(e.client_order_id for e in events)

    assert cancel_all("r1", symbol=BTC, side=Side.BUY) == ["buy-btc"]
    assert cancel_all("r2") == ["buy-eth", "sell-btc"]
    assert cancel_all("r3") == []
    assert [o.client_order_id for o in ex.open_orders("b")] == ["other"]
    refusal = only(ex.execute(CancelAllOrders(request_id="r5", venue="paper", account="nobody")), CommandRejected)
    assert (refusal.action, refusal.request_id, refusal.reason) == (
        CommandAction.CANCEL_ALL,
        "r5",
        RejectReason.UNKNOWN_ACCOUNT,
    )


# ---------------------------------------------------------------------------------------
# Ledger and identifiers


def test_positions_realize_pnl_on_reductions_and_fees_go_to_cash() -> None:
    ex = exchange(cash="1000")
    ex.execute(place("c1", Side.BUY, "1"))  # 1 @ 101
    events = ex.execute(place("c2", Side.SELL, "2", "98"))  # 1 @ 99, 1 @ 98
    position = [e for e in events if isinstance(e, PositionUpdate)][-1]
    assert (position.quantity, position.avg_price, position.realized_pnl) == (D("-1"), D("98"), D("-2"))
    assert ex.positions("a") == [position]
    fees = (D("101") + D("99") + D("98")) * 5 / 10000
    assert ex.balances("a")[0].total == D("1000") - D("101") + D("99") + D("98") - fees
    ex.on_market(BTC, **BOOK)
    ex.execute(place("c3", Side.BUY, "1"))  # covers at 101
    assert ex.positions("a")[0].realized_pnl == D("-2") + (D("98") - D("101"))


def test_event_ids_are_per_order_and_per_account_counters() -> None:
    clock = Clock()
    epoch = clock.now  # the venue's creation time: a fresh venue never reuses an account event id
    ex = exchange(clock=clock)
    events = ex.execute(place("c1", Side.BUY, "1.5"))
    assert [e.event_id for e in events] == [
        "paper.a.c1.1",
        "paper.a.c1.2",
        f"paper.a:account.{epoch}.1",
        f"paper.a:account.{epoch}.2",
        "paper.a.c1.3",
        f"paper.a:account.{epoch}.3",
        f"paper.a:account.{epoch}.4",
    ]
    again = place("c1", Side.BUY, "1")
    assert ex.execute(again)[0].event_id == f"{command_dedupe_id(again)}.rejected.duplicate_client_order_id"
    assert {e.trade_id for e in (f.fill for f in fills(events))} == {"T1", "T2"}


def test_queries() -> None:
    ex = exchange()
    assert ex.balances("nobody") == [] and ex.positions("nobody") == [] and ex.open_orders("nobody") == []
    assert ex.positions("a") == []
    ex.execute(place("c1", Side.BUY, "1", "100"))
    assert ex.knows("a", "c1") and not ex.knows("b", "c1")
    with pytest.raises(KeyError):
        ex.on_market("DOGE/USDT", bids=[], asks=[])


def test_state_is_plain_data_that_round_trips() -> None:
    ex = exchange()
    ex.execute(place("c1", Side.BUY, "2", "101"))
    ex.execute(place("c2", Side.SELL, "1", "110"))
    state = ex._state
    assert msgspec.json.decode(msgspec.json.encode(state), type=type(state)) == state


# ---------------------------------------------------------------------------------------
# Journal: restore, re-delivered commands, reconcile


def restored(journal: list[Any], clock: Clock | None = None) -> tuple[SimulatedExchange, list[Any]]:
    """A fresh venue like `exchange()`'s, rebuilt from `journal`, and what it still owes."""
    venue = exchange(book=False, clock=clock or Clock(T0 + NS))
    return venue, venue.restore(journal)


def test_restore_rebuilds_the_venue_and_continues_every_counter() -> None:
    clock = Clock()
    ex = exchange(clock=clock)
    journal = ex.execute(place("filled", Side.BUY, "1.5"))  # 1 @ 101, 0.5 @ 102
    journal += ex.execute(place("resting", Side.BUY, "1", "100"))
    journal += ex.execute(modify("resting", price="99.5"))
    journal += ex.execute(place("refused", Side.BUY, "1", "100.001"))
    journal += ex.execute(place("day", Side.SELL, "1", "110", time_in_force=TimeInForce.DAY))
    clock.now += 3600 * NS  # the restarted venue is younger than the journal's epoch
    copy, owed = restored(journal, clock)
    assert owed == []
    for account in ("a", "b"):
        assert copy.open_orders(account) == ex.open_orders(account)
        assert copy.balances(account) == ex.balances(account)
        assert copy.positions(account) == ex.positions(account)
    assert command_rejected(copy, place("refused", Side.BUY, "1", "100")) is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    ex.on_market(BTC, **BOOK)
    copy.on_market(BTC, **BOOK)
    events = copy.execute(place("next", Side.SELL, "1"))
    assert events == ex.execute(place("next", Side.SELL, "1"))
    assert (events[0].venue_order_id, fills(events)[0].fill.trade_id) == ("P4", "T3")
    assert [e.event_id for e in events[2:4]] == [f"paper.a:account.{T0}.5", f"paper.a:account.{T0}.6"]
    clock.now = MIDNIGHT  # the DAY order still expires at the first midnight after its acceptance
    assert [e.client_order_id for e in copy.execute(cancel("nope")) if isinstance(e, OrderExpired)] == ["day"]


def test_restore_ignores_other_producers_and_republished_events() -> None:
    ex = exchange()
    journal = ex.execute(place("c1", Side.BUY, "1.5")) + ex.execute(place("c2", Side.BUY, "1", "100"))
    by_risk = OrderRejected(
        event_id="risk:paper.a.c3.place",
        client_order_id="c3",
        venue="paper",
        account="a",
        symbol=BTC,
        reason=RejectReason.MAX_NOTIONAL,
        ts_event=T0,
        ts_recv=T0,
    )
    republished, _ = ex.reconcile("a", ["c1", "c2"])
    copy, owed = restored([*journal, by_risk, *republished])
    reference, _ = restored(journal)
    assert owed == [] and copy._state == reference._state
    assert not copy.knows("a", "c3")


def test_restore_drops_the_orders_of_accounts_and_instruments_no_longer_configured() -> None:
    ex = exchange()
    journal = ex.execute(place("btc", Side.BUY, "1", "100"))
    journal += ex.execute(place("eth", Side.BUY, "1", "100", symbol=ETH))
    journal += ex.execute(place("b", Side.BUY, "1", "100", account="b"))
    copy = SimulatedExchange(
        venue="paper", instruments=[spec()], accounts={"a": {"USDT": D("1000000")}}, fees=FEES, clock=Clock()
    )
    assert copy.restore(journal) == []
    assert [o.client_order_id for o in copy.open_orders("a")] == ["btc"] and copy.open_orders("b") == []


def test_what_a_crash_cut_off_the_journal_is_owed_by_the_restored_venue() -> None:
    ex = exchange()
    journal = ex.execute(place("c1", Side.BUY, "1.5"))
    assert kinds(journal[:3]) == [OrderAccepted, OrderPartiallyFilled, BalanceUpdate]
    copy, owed = restored(journal[:3])  # the first fill's PositionUpdate and the rest are lost
    assert kinds(owed) == [PositionUpdate, OrderCancelled]
    position, cancelled = owed
    assert (position.event_id, position.quantity, position.avg_price) == (f"paper.a:account.{T0}.2", D("1"), D("101"))
    assert (cancelled.event_id, cancelled.reason, cancelled.cum_quantity) == (
        "paper.a.c1.3",
        CancelReason.VENUE,
        D("1"),
    )
    assert copy.balances("a")[0].total == journal[2].balances[0].total
    assert copy.open_orders("a") == []
    again, nothing = restored(journal[:3] + owed)
    assert nothing == [] and again._state == copy._state


def test_executed_tells_a_redelivered_command_from_a_new_one() -> None:
    ex = exchange()
    journal = ex.execute(place("open", Side.BUY, "1", "100"))
    journal += ex.execute(place("refused", Side.BUY, "1", "100.001"))
    journal += ex.execute(place("done", Side.BUY, "1", "100"))
    journal += ex.execute(modify("open", "m1", price="99"))
    journal += ex.execute(modify("open", "m2", price="99.001"))  # refused: tick size
    journal += ex.execute(cancel("done"))
    copy, _ = restored(journal)
    answers = [
        (place("open", Side.BUY, "1", "100"), True),
        (place("refused", Side.BUY, "1", "100"), True),
        (place("new", Side.BUY, "1", "100"), False),
        (place("new", Side.BUY, "1", "100", account="nobody"), False),
        (modify("open", "m1", price="99"), True),
        (modify("open", "m2", price="99"), True),
        (modify("open", "m3", price="99"), False),
        (cancel("open"), False),
        (cancel("done"), True),
        (cancel("refused"), True),
        (cancel("new"), False),
        (CancelAllOrders(request_id="r1", venue="paper", account="a"), False),
    ]
    for command, answer in answers:
        assert ex.executed(command) is answer and copy.executed(command) is answer, command
    # Asking changes nothing: a place with other terms still meets the used client order id.
    assert command_rejected(copy, place("open", Side.BUY, "2", "100")) is RejectReason.DUPLICATE_CLIENT_ORDER_ID


def test_reconcile_gives_the_latest_event_of_each_known_order() -> None:
    ex = exchange()
    filled = ex.execute(place("filled", Side.BUY, "1.5"))
    refused = ex.execute(place("refused", Side.BUY, "1", "100.001"))
    resting = ex.execute(place("resting", Side.BUY, "1", "100"))
    [last_fill] = [e for e in filled if isinstance(e, OrderFilled)]
    events, unknown = ex.reconcile("a", ["resting", "nope", "filled", "refused"])
    assert events == [resting[0], last_fill, refused[0]] and unknown == ["nope"]
    assert ex.reconcile("b", ["filled"]) == ([], ["filled"])
    assert ex.reconcile("nobody", ["filled"]) == ([], ["filled"])
    copy, _ = restored(filled + refused + resting)
    assert copy.reconcile("a", ["resting", "nope", "filled", "refused"]) == (events, unknown)


# ---------------------------------------------------------------------------------------
# Rules


def test_instrument_spec_loads_strictly_from_config() -> None:
    raw = (
        b'{"symbol": "AAPL", "base": "AAPL", "quote": "USD", "tick_size": "0.01", "lot_size": "1",'
        b' "min_quantity": "1", "min_notional": "0", "initial_price": "190.12", "asset_class": "equity"}'
    )
    loaded = msgspec.json.decode(raw, type=InstrumentSpec)
    assert (loaded.tick_size, loaded.asset_class) == (D("0.01"), "equity")
    with pytest.raises(msgspec.ValidationError, match="tick_sise"):
        msgspec.json.decode(raw.replace(b"tick_size", b"tick_sise"), type=InstrumentSpec)
    with pytest.raises(msgspec.ValidationError, match="lot_size"):
        msgspec.json.decode(raw.replace(b'"lot_size": "1"', b'"lot_size": "0"'), type=InstrumentSpec)
    assert msgspec.json.decode(b'{"taker_bps": "7.5"}', type=FeeSchedule) == FeeSchedule(taker_bps=D("7.5"))


def test_rule_helpers() -> None:
    assert is_multiple(D("1e15"), D("1e-18")) and not is_multiple(D("0.015"), D("0.01"))
    assert floor_to(D("0.259"), D("0.1")) == D("0.2") and ceil_to(D("0.201"), D("0.1")) == D("0.3")
    assert ceil_to(D("0.2"), D("0.1")) == D("0.2")
    violation = check_order(spec(), quantity=D("0.04"), prices=[D("100"), None], notional_price=D("100"))
    assert violation is not None and violation.reason is RejectReason.MIN_NOTIONAL
    assert check_order(spec(), quantity=D("0.05"), prices=[D("100")], notional_price=D("100")) is None
    assert FEES.fee(D("12345.678"), LiquiditySide.TAKER) == D("6.172839")


# ---------------------------------------------------------------------------------------
# Properties over random sessions

TICK = D("0.5")
LOT = D("0.1")
SESSION_SPEC = spec(tick_size=TICK, lot_size=LOT, min_quantity=LOT, min_notional=D("1"))
SESSION_CASH = {"a": {"USDT": D("1000000")}, "b": {"USDT": D("2000")}}
prices = st.integers(180, 220).map(lambda n: n * TICK)  # 90 .. 110
quantities = st.integers(1, 40).map(lambda n: n * LOT)
sizes = st.integers(1, 300).map(lambda n: D(n) / 100)  # not always a lot multiple
levels = st.lists(st.tuples(st.integers(1, 10), sizes), min_size=1, max_size=4)


@st.composite
def books(draw: st.DrawFn) -> dict[str, Any]:
    mid = draw(st.integers(190, 210)) * TICK
    bids = [(mid - k * TICK, size) for k, size in draw(levels)]
    asks = [(mid + k * TICK, size) for k, size in draw(levels)]
    trade = draw(st.none() | st.tuples(prices, sizes))
    return {"bids": bids, "asks": asks, "trade": trade}


trails = st.integers(1, 12).map(lambda n: n * TICK / 2)  # not always a tick multiple
trail_percents = st.integers(1, 40).map(lambda n: D(n) / 8)


@st.composite
def placements(draw: st.DrawFn, order_types: list[OrderType] | None = None, side: Side | None = None) -> dict[str, Any]:
    # Weighted towards resting limit orders, the ones later books fill as maker.
    order_type = draw(st.sampled_from(order_types or [OrderType.LIMIT, OrderType.LIMIT, *OrderType]))
    tif = draw(st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY]))
    trailing = order_type is OrderType.TRAILING_STOP
    by_amount = draw(st.booleans())
    return {
        "account": draw(st.sampled_from(["a", "b"])),
        "side": side or draw(st.sampled_from(Side)),
        "order_type": order_type,
        "quantity": draw(quantities),
        "price": draw(prices) if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        "stop_price": draw(prices) if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        "trail_amount": draw(trails) if trailing and by_amount else None,
        "trail_percent": draw(trail_percents) if trailing and not by_amount else None,
        "time_in_force": tif,
        "reduce_only": draw(st.booleans()) and draw(st.booleans()),
    }


@st.composite
def group_placements(draw: st.DrawFn) -> tuple[GroupKind, list[dict[str, Any]]]:
    """A group's kind and its orders' terms, mostly within the rules between them (a bracket's
    exits on the right side of a priced entry), sometimes not."""
    kind = draw(st.sampled_from(GroupKind))
    first = draw(placements([OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET, OrderType.STOP]))
    if kind is GroupKind.OCO:
        return kind, [first, {**draw(placements(side=first["side"])), "account": first["account"]}]
    if kind is GroupKind.OTO:
        return kind, [first, {**draw(placements()), "account": first["account"]}]
    exit_side = Side.SELL if first["side"] is Side.BUY else Side.BUY
    reference = first["price"] or first["stop_price"] or draw(prices)
    away = draw(st.integers(1, 20)) * TICK
    up, down = reference + away, max(reference - away, TICK)
    take_profit = {**draw(placements([OrderType.LIMIT], side=exit_side)), "price": up if exit_side is Side.SELL else down}
    stop_loss = draw(placements([OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP], side=exit_side))
    if stop_loss["stop_price"] is not None:
        stop_loss["stop_price"] = down if exit_side is Side.SELL else up
    exits = draw(st.sampled_from([[take_profit], [stop_loss], [take_profit, stop_loss]]))
    return kind, [first, *({**leg, "quantity": first["quantity"], "account": first["account"]} for leg in exits)]


def commands() -> st.SearchStrategy[tuple[str, Any]]:
    # Placements twice: they are what makes the rest happen.
    place = st.tuples(st.just("place"), placements())
    return st.one_of(
        place,
        place,
        st.tuples(st.just("group"), group_placements()),
        st.tuples(st.just("duplicate"), st.integers(0, 3)),
        st.tuples(st.just("cancel"), st.integers(0, 3)),
        st.tuples(st.just("modify"), st.tuples(st.integers(0, 3), st.none() | quantities, st.none() | prices)),
    )


@dataclass
class Session:
    fees: FeeSchedule
    ex: SimulatedExchange
    clock: Clock
    config: dict[str, Any]  # the exchange's settings but its clock: to build a replica
    commands: dict[str, PlaceOrder] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    duplicates: list[list[Any]] = field(default_factory=list)  # what each retried placement returned
    groups: list[PlaceOrderGroup] = field(default_factory=list)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    fees = FeeSchedule(
        maker_bps=draw(st.sampled_from([D("-1"), D("0"), D("2")])),
        taker_bps=draw(st.sampled_from([D("0"), D("5"), D("7.5")])),
    )
    clock = Clock(MIDNIGHT - 3600 * NS)
    config = {
        "venue": "paper",
        "instruments": [SESSION_SPEC],
        "accounts": SESSION_CASH,
        "fees": fees,
        "slippage_bps": draw(st.sampled_from([D("0"), D("3"), D("25")])),
        "allow_short": draw(st.booleans()),
    }
    ex = SimulatedExchange(**config, clock=clock)
    session = Session(fees, ex, clock, config)
    session.events += ex.on_market(BTC, **draw(books()))
    # Each step: a command, then (mostly) a new book that may fill what rests.
    steps = st.tuples(commands(), st.none() | books(), st.integers(0, 900))
    for step, ((kind, arg), book, seconds) in enumerate(draw(st.lists(steps, min_size=8, max_size=20))):
        clock.now += seconds * NS
        coids = list(session.commands)
        # Modify and cancel mostly target open orders, where there is something to change.
        targets = [o.client_order_id for account in ("a", "b") for o in ex.open_orders(account)] or coids
        if kind == "place":
            command = PlaceOrder(client_order_id=f"o{step}", venue="paper", symbol=BTC, **arg)
            session.commands[command.client_order_id] = command
            session.events += ex.execute(command)
        elif kind == "group":
            group_kind, legs = arg
            group = PlaceOrderGroup(
                group_id=f"g{step}", venue="paper", account=legs[0]["account"], kind=group_kind,
                orders=[PlaceOrder(client_order_id=f"o{step}x{n}", venue="paper", symbol=BTC, **leg)
                        for n, leg in enumerate(legs)],
            )
            session.commands.update((leg.client_order_id, leg) for leg in group.placed_orders())
            session.groups.append(group)
            session.events += ex.execute(group)
        elif coids and kind == "duplicate":
            original = session.commands[coids[arg % len(coids)]]
            retry = msgspec.structs.replace(original, quantity=original.quantity + LOT)
            result = ex.execute(retry)
            session.duplicates.append(result)
            session.events += result
        elif targets and kind == "cancel":
            original = session.commands[targets[arg % len(targets)]]
            command = CancelOrder(client_order_id=original.client_order_id, venue="paper", account=original.account)
            session.events += ex.execute(command)
        elif targets and kind == "modify":
            index, quantity, price = arg
            original = session.commands[targets[index % len(targets)]]
            price = price if original.price is not None else None
            if quantity is not None or price is not None:
                command = ModifyOrder(
                    client_order_id=original.client_order_id,
                    modify_id=f"m{step}",
                    venue="paper",
                    account=original.account,
                    quantity=quantity,
                    price=price,
                )
                session.events += ex.execute(command)
        if book is not None:
            session.events += ex.on_market(BTC, **book)
    return session


def order_events(session: Session) -> dict[str, list[Any]]:
    return events_by_order(session.events)


def events_by_order(events: list[Any]) -> dict[str, list[Any]]:
    by_order: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        if not isinstance(event, (CommandRejected, BalanceUpdate, PositionUpdate)):
            by_order[event.client_order_id].append(event)
    return by_order


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(sessions())
def test_property_a_limit_never_fills_through_its_price(session: Session) -> None:
    for events in order_events(session).values():
        limit: D | None = None
        side = None
        for event in events:
            if isinstance(event, OrderAccepted):
                limit, side = event.price, event.side
            elif isinstance(event, OrderModified):
                limit = event.price
            elif isinstance(event, FillEventBase) and limit is not None:
                if event.fill.liquidity is LiquiditySide.MAKER:
                    assert event.fill.price == limit
                elif side is Side.BUY:
                    assert event.fill.price <= limit
                else:
                    assert event.fill.price >= limit


@PROPERTY_SETTINGS
@given(sessions())
def test_property_fill_quantities_add_up(session: Session) -> None:
    for events in order_events(session).values():
        quantity = D(0)
        filled = D(0)
        for event in events:
            if isinstance(event, (OrderAccepted, OrderModified)):
                quantity = event.quantity
            elif isinstance(event, FillEventBase):
                filled += event.fill.quantity
                assert event.cum_quantity == filled
                assert event.leaves_quantity + event.cum_quantity == quantity
                assert is_multiple(event.fill.quantity, LOT) and event.fill.quantity > 0
                if isinstance(event, OrderFilled):
                    assert filled == quantity and event.leaves_quantity == 0
            elif isinstance(event, (OrderCancelled, OrderExpired)):
                assert event.cum_quantity == filled < quantity


@PROPERTY_SETTINGS
@given(sessions())
def test_property_fees_follow_the_schedule_exactly(session: Session) -> None:
    for event in fills(session.events):
        rate = session.fees.maker_bps if event.fill.liquidity is LiquiditySide.MAKER else session.fees.taker_bps
        assert event.fill.fee == event.fill.price * event.fill.quantity * rate / 10000
        assert event.fill.fee_currency == "USDT"


@PROPERTY_SETTINGS
@given(sessions())
def test_property_cash_moves_by_signed_notional_minus_fees(session: Session) -> None:
    cash = {"a": D("1000000"), "b": D("2000")}
    expected: D | None = None
    for event in session.events:
        if isinstance(event, FillEventBase):
            notional = event.fill.price * event.fill.quantity
            cash[event.account] += (-notional if event.fill.side is Side.BUY else notional) - event.fill.fee
            expected = cash[event.account]
        elif isinstance(event, BalanceUpdate):
            [balance] = event.balances
            assert balance.total == expected
    for account, total in cash.items():
        assert session.ex.balances(account)[0].total == total


@PROPERTY_SETTINGS
@given(sessions())
def test_property_fok_fills_fully_or_not_at_all_in_sessions(session: Session) -> None:
    for coid, events in order_events(session).items():
        command = session.commands[coid]
        if command.time_in_force is TimeInForce.FOK and command.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            filled = sum((e.fill.quantity for e in fills(events)), D(0))
            # a resting FOK stop-limit may be modified before it triggers: the quantity in force counts
            modified = [e.quantity for e in events if isinstance(e, OrderModified)]
            assert filled in (0, modified[-1] if modified else command.quantity)


@PROPERTY_SETTINGS
@given(st.sampled_from(Side), prices, quantities, books())
def test_property_fok_fills_fully_exactly_when_the_crossable_size_allows(
    side: Side, price: D, quantity: D, book: dict[str, Any]
) -> None:
    ex = SimulatedExchange(
        venue="paper", instruments=[SESSION_SPEC], accounts={"a": {"USDT": D("1000000")}}, fees=FEES, clock=Clock()
    )
    ex.on_market(BTC, **book)
    opposite = book["asks"] if side is Side.BUY else book["bids"]
    crossable = sum(
        (floor_to(size, LOT) for at, size in opposite if (at <= price if side is Side.BUY else at >= price)), D(0)
    )
    fok = PlaceOrder(
        client_order_id="c1",
        venue="paper",
        account="a",
        symbol=BTC,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        price=price,
        time_in_force=TimeInForce.FOK,
    )
    events = ex.execute(fok)
    filled = sum((e.fill.quantity for e in fills(events)), D(0))
    assert filled == (quantity if crossable >= quantity else 0)
    assert isinstance(events[-1], PositionUpdate if filled else OrderCancelled)


@PROPERTY_SETTINGS
@given(sessions())
def test_property_a_duplicate_client_order_id_never_creates_a_second_order(session: Session) -> None:
    for result in session.duplicates:
        expiries = [e for e in result if isinstance(e, OrderExpired)]
        refusal = result[len(expiries) :]
        assert kinds(refusal) == [CommandRejected]
        assert refusal[0].reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    latest_quantity = {}
    for coid, events in order_events(session).items():
        assert sum(isinstance(e, (OrderAccepted, OrderRejected)) for e in events) == 1
        for event in events:
            if isinstance(event, (OrderAccepted, OrderModified)):
                latest_quantity[coid] = event.quantity
    for account in ("a", "b"):
        for order in session.ex.open_orders(account):
            assert order.quantity == latest_quantity[order.client_order_id]


@PROPERTY_SETTINGS
@given(sessions())
def test_property_groups_hold_their_orders_and_peers_never_both_fill(session: Session) -> None:
    by_order = order_events(session)
    position = {id(event): n for n, event in enumerate(session.events)}
    for group in session.groups:
        filled = {leg.client_order_id for leg in group.orders if fills(by_order[leg.client_order_id])}
        if group.kind is GroupKind.OCO:
            assert len(filled) <= 1
        else:
            assert len(filled & {leg.client_order_id for leg in group.contingent}) <= 1  # a bracket's exits
        first = by_order[group.first.client_order_id]
        ends = [position[id(e)] for e in first if isinstance(e, TERMINAL_EVENTS)]
        for leg in group.contingent:  # works only once the first is done with a fill
            leg_fills = fills(by_order[leg.client_order_id])
            if leg_fills:
                assert ends and fills(first) and position[id(leg_fills[0])] > ends[0]


@PROPERTY_SETTINGS
@given(sessions())
def test_property_a_trailing_stop_only_moves_in_its_favour_and_triggers_once(session: Session) -> None:
    for coid, events in order_events(session).items():
        command = session.commands[coid]
        if command.order_type is not OrderType.TRAILING_STOP:
            continue
        stops = [e.stop_price for e in events if isinstance(e, OrderModified) and e.stop_price is not None]
        assert stops == sorted(stops, reverse=command.side is Side.BUY)
        assert all(is_multiple(stop, TICK) for stop in stops)
        assert sum(isinstance(e, OrderTriggered) for e in events) <= 1


@PROPERTY_SETTINGS
@given(sessions())
def test_property_event_ids_are_unique(session: Session) -> None:
    ids = [e.event_id for e in session.events if not isinstance(e, CommandRejected)]
    assert len(ids) == len(set(ids))


@PROPERTY_SETTINGS
@given(st.sampled_from(Side), prices, quantities, st.lists(books(), min_size=1, max_size=10))
def test_property_a_resting_limit_fills_as_maker_at_its_price_within_what_crossed(
    side: Side, price: D, quantity: D, later_books: list[dict[str, Any]]
) -> None:
    ex = SimulatedExchange(
        venue="paper", instruments=[SESSION_SPEC], accounts={"a": {"USDT": D("1000000")}}, fees=FEES, clock=Clock()
    )
    ex.execute(
        PlaceOrder(
            client_order_id="c1",
            venue="paper",
            account="a",
            symbol=BTC,
            side=side,
            order_type=OrderType.LIMIT,
            quantity=quantity,
            price=price,
        )
    )
    filled = D(0)
    for book in later_books:
        opposite = book["asks"] if side is Side.BUY else book["bids"]
        crossing = sum((size for at, size in opposite if (at <= price if side is Side.BUY else at >= price)), D(0))
        trade = book["trade"]
        if trade is not None and (trade[0] < price if side is Side.BUY else trade[0] > price):
            crossing += trade[1]
        events = fills(ex.on_market(BTC, **book))
        assert all(e.fill.liquidity is LiquiditySide.MAKER and e.fill.price == price for e in events)
        got = sum((e.fill.quantity for e in events), D(0))
        assert got == min(quantity - filled, floor_to(crossing, LOT))
        filled += got


RESTING = (TimeInForce.GTC, TimeInForce.DAY, TimeInForce.GTD)
STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)


def replica(session: Session) -> SimulatedExchange:
    """A fresh venue with the session's settings, created when the session's was, its clock
    now where the session's is."""
    clock = Clock(session.ex._state.epoch)
    venue = SimulatedExchange(**session.config, clock=clock)
    clock.now = session.clock.now
    return venue


def without_books(venue: SimulatedExchange) -> Any:
    """The venue's state but its books, which the market, not the journal, brings back."""
    return msgspec.structs.replace(venue._state, books={})


@PROPERTY_SETTINGS
@given(sessions(), books(), placements())
def test_property_a_venue_restored_from_its_events_is_the_same_venue(
    session: Session, book: dict[str, Any], placement: dict[str, Any]
) -> None:
    live = session.ex
    republished = [e for account in ("a", "b") for e in live.reconcile(account, list(session.commands))[0]]
    for journal in (session.events, session.events + republished):
        copy = replica(session)
        assert copy.restore(journal) == []
        assert without_books(copy) == without_books(live)
    for account in ("a", "b"):
        assert copy.open_orders(account) == live.open_orders(account)
        assert copy.balances(account) == live.balances(account)
        assert copy.positions(account) == live.positions(account)
    assert copy.on_market(BTC, **book) == live.on_market(BTC, **book)
    command = PlaceOrder(client_order_id="next", venue="paper", symbol=BTC, **placement)
    assert copy.execute(command) == live.execute(command)


@PROPERTY_SETTINGS
@given(sessions(), st.data())
def test_property_a_journal_cut_anywhere_restores_a_consistent_venue(session: Session, data: st.DataObject) -> None:
    prefix = session.events[: data.draw(st.integers(0, len(session.events)), label="cut")]
    copy = replica(session)
    owed = copy.restore(prefix)
    published = prefix + owed
    assert not {e.event_id for e in owed} & {e.event_id for e in prefix}
    for events in events_by_order(published).values():
        ends = [i for i, event in enumerate(events) if isinstance(event, TERMINAL_EVENTS)]
        assert ends in ([], [len(events) - 1])  # at most one end, and nothing after it
    cash = {account: balances["USDT"] for account, balances in SESSION_CASH.items()}
    for event in fills(prefix):
        notional = event.fill.price * event.fill.quantity
        cash[event.account] += (-notional if event.fill.side is Side.BUY else notional) - event.fill.fee
    for account in ("a", "b"):
        for order in copy.open_orders(account):  # nothing left working that may not rest
            pending_stop = order.order_type in STOP_TYPES and not order.triggered
            market_like = order.order_type in (OrderType.STOP, OrderType.TRAILING_STOP)
            assert order.held or pending_stop or (not market_like and order.time_in_force in RESTING)
        # What is published says what the venue holds.
        assert copy.balances(account)[0].total == cash[account]
        reported = [e for e in published if isinstance(e, BalanceUpdate) and e.account == account]
        assert not reported or reported[-1].balances[0].total == cash[account]
        positions = {e.symbol: e for e in published if isinstance(e, PositionUpdate) and e.account == account}
        assert {p.symbol: p for p in copy.positions(account)} == positions
    again = replica(session)
    assert again.restore(published) == [] and without_books(again) == without_books(copy)
