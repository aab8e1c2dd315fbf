"""OrderTracker: venue snapshots in any order and any number of times -> each fact published once."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.schemas.commands import ModifyOrder, PlaceOrder
from tradebus.schemas.events import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
)
from tradebus.schemas.values import CancelReason, LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.connector.tracking import OrderSnapshot, OrderTracker, TradeReport

D = Decimal
NOW = 1_700_000_000_000_000_000


def snapshot(**changes: object) -> OrderSnapshot:
    base = OrderSnapshot(
        client_order_id="c1", venue_order_id="v1", symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.LIMIT,
        quantity=D("2"), price=D("100"), status=OrderStatus.ACCEPTED, ts=NOW,
    )
    return msgspec.structs.replace(base, **changes)


def tracker() -> OrderTracker:
    return OrderTracker(venue="binance", account="main")


def test_accepted_then_fills_then_filled_with_ids_from_content() -> None:
    orders = tracker()
    accepted = orders.update(snapshot(), NOW)
    assert [type(e) for e in accepted] == [OrderAccepted]
    assert accepted[0].event_id == "binance.main.c1.accepted"
    trade = TradeReport(trade_id="t1", price=D("99.5"), quantity=D("0.5"), fee=D("0.01"), fee_currency="USDT",
                        liquidity=LiquiditySide.MAKER)
    partial = orders.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("0.5"), last_trade=trade), NOW)
    assert [type(e) for e in partial] == [OrderPartiallyFilled]
    assert partial[0].event_id == "binance.main.c1.fill.0_5"
    assert partial[0].fill.trade_id == "t1" and partial[0].fill.fee == D("0.01")
    assert partial[0].leaves_quantity == D("1.5")
    done = orders.update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("99.875")), NOW)
    assert [type(e) for e in done] == [OrderFilled]
    # The 1.5 not reported trade by trade is priced from the change of average price.
    assert done[0].fill.price == D("100") and done[0].fill.quantity == D("1.5")
    assert done[0].avg_price == D("99.875") and done[0].cum_quantity == D("2")
    assert not orders.is_open("c1")


def test_a_repeated_or_stale_snapshot_adds_nothing() -> None:
    orders = tracker()
    orders.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("1"), average_price=D("100")), NOW)
    assert orders.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("1"), average_price=D("100")), NOW) == []
    assert orders.update(snapshot(), NOW) == []  # older than what was published: nothing goes back
    orders.update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("100")), NOW)
    assert orders.update(snapshot(status=OrderStatus.CANCELLED, filled=D("2")), NOW) == []


def test_first_snapshot_already_filled_gives_accepted_and_filled() -> None:
    events = tracker().update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("101")), NOW)
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    assert events[1].fill.price == D("101")


def test_cancel_reasons() -> None:
    orders = tracker()
    orders.update(snapshot(), NOW)
    orders.cancelling("c1")
    (cancelled,) = orders.update(snapshot(status=OrderStatus.CANCELLED), NOW)
    assert isinstance(cancelled, OrderCancelled) and cancelled.reason is CancelReason.REQUESTED
    ioc = tracker().update(snapshot(time_in_force=TimeInForce.IOC, status=OrderStatus.CANCELLED), NOW)
    assert ioc[-1].reason is CancelReason.IOC_REMAINDER
    by_venue = tracker().update(snapshot(status=OrderStatus.CANCELLED), NOW)
    assert by_venue[-1].reason is CancelReason.VENUE


def test_rejection_and_trigger_and_modify() -> None:
    orders = tracker()
    place = PlaceOrder(client_order_id="c2", venue="binance", account="main", symbol="BTC/USDT", side=Side.SELL,
                       order_type=OrderType.LIMIT, quantity=D("1"), price=D("100"))
    (rejected,) = orders.rejected(place, RejectReason.INSUFFICIENT_FUNDS, "no money", NOW)
    assert isinstance(rejected, OrderRejected) and orders.knows("c2") and not orders.is_open("c2")
    stop = snapshot(order_type=OrderType.STOP_LIMIT, stop_price=D("101"))
    orders.update(stop, NOW)
    (triggered,) = orders.update(msgspec.structs.replace(stop, status=OrderStatus.TRIGGERED), NOW)
    assert isinstance(triggered, OrderTriggered)
    modify = ModifyOrder(client_order_id="c1", modify_id="m1", venue="binance", account="main", price=D("102"))
    events = orders.modify_applied(modify, msgspec.structs.replace(stop, status=OrderStatus.TRIGGERED, price=D("102")), NOW)
    assert [type(e) for e in events] == [OrderModified] and events[0].event_id == "binance.main.c1.modified.m1"
    assert orders.modified("c1", "m1")


def test_restored_from_the_journal_publishes_only_what_is_new() -> None:
    live = tracker()
    journal = live.update(snapshot(), NOW)
    journal += live.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("1"), average_price=D("100")), NOW)
    restored = tracker()
    restored.restore([*journal, OrderRejected(
        event_id="risk:binance.main.c9.place", client_order_id="c9", venue="binance", account="main",
        symbol="BTC/USDT", ts_event=NOW, ts_recv=NOW, reason=RejectReason.MAX_QUANTITY,
    )])
    assert not restored.knows("c9")  # risk's rejection never reached the venue
    assert restored.open_orders() == ["c1"]
    assert restored.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("1"), average_price=D("100")), NOW) == []
    (filled,) = restored.update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("100")), NOW)
    assert filled.event_id == "binance.main.c1.fill.2" and filled.cum_quantity == D("2")
    assert filled.avg_price == D("100")


def test_a_fill_without_its_trade_takes_the_change_of_the_venues_cumulative_fee() -> None:
    """Bybit's order stream reports the order's fees so far, never one trade's: each derived
    fill's fee is what the cumulative fee grew by, also after a restart from the journal."""
    orders = tracker()
    first = orders.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("0.5"), average_price=D("100"),
                                   cum_fee=D("0.05"), fee_currency="USDT"), NOW)
    assert (first[-1].fill.fee, first[-1].fill.fee_currency) == (D("0.05"), "USDT")
    restarted = tracker()
    restarted.restore(first)
    second = restarted.update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("100"),
                                       cum_fee=D("0.2"), fee_currency="USDT"), NOW)
    assert (second[-1].fill.fee, second[-1].fill.fee_currency) == (D("0.15"), "USDT")


def test_a_fill_whose_fee_the_venue_does_not_state_has_no_fee_currency() -> None:
    events = tracker().update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("100")), NOW)
    assert (events[-1].fill.fee, events[-1].fill.fee_currency) == (D(0), "")


def test_a_snapshot_with_the_orders_trades_gives_one_fill_per_unpublished_trade() -> None:
    orders = tracker()
    first = TradeReport(trade_id="t1", price=D("100"), quantity=D("0.5"), fee=D("0.05"), fee_currency="USDT", ts=1)
    second = TradeReport(trade_id="t2", price=D("101"), quantity=D("1.5"), fee=D("0.15"), fee_currency="USDT", ts=2)
    orders.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("0.5"), last_trade=first), NOW)
    listed = snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("100.75"), trades=(second, first))
    assert orders.lacks_trade(msgspec.structs.replace(listed, trades=())) and not orders.lacks_trade(listed)
    (done,) = orders.update(listed, NOW)
    assert isinstance(done, OrderFilled) and (done.fill.trade_id, done.fill.fee, done.cum_quantity) == ("t2", D("0.15"), D(2))
    assert not orders.lacks_trade(listed)


def test_a_listing_that_does_not_continue_the_published_fills_is_not_used() -> None:
    orders = tracker()
    orders.update(snapshot(status=OrderStatus.PARTIALLY_FILLED, filled=D("0.4"), average_price=D("100")), NOW)
    whole = TradeReport(trade_id="t1", price=D("100"), quantity=D("2"), fee=D("0.2"), fee_currency="USDT", ts=1)
    events = orders.update(snapshot(status=OrderStatus.FILLED, filled=D("2"), average_price=D("100"), trades=(whole,)), NOW)
    assert events[-1].fill.trade_id == "derived:v1:2" and events[-1].fill.quantity == D("1.6")
