"""The order state machine."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import (
    CommandAction,
    CommandRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
)
from tradebus.schemas.lifecycle import TERMINAL_STATUSES, apply_event, new_record
from tradebus.schemas.values import (
    CancelReason,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

T = 1_700_000_000_000_000_000
PLACE = PlaceOrder(client_order_id="c1", venue="paper", account="demo", symbol="AAPL", side=Side.BUY,
                   order_type=OrderType.LIMIT, quantity=D("3"), price=D("190"))
BASE = dict(client_order_id="c1", venue="paper", account="demo", symbol="AAPL", ts_event=T, ts_recv=T)


def fill(n: int, quantity: str, cum: str, *, last: bool = False, fee: str = "0", fee_currency: str = "USD"):
    kind = OrderFilled if last else OrderPartiallyFilled
    return kind(**BASE, event_id=f"e{n}", fill=Fill(trade_id=f"t{n}", side=Side.BUY, price=D("190"),
                quantity=D(quantity), fee=D(fee), fee_currency=fee_currency, liquidity=LiquiditySide.MAKER),
                cum_quantity=D(cum), leaves_quantity=D("3") - D(cum), avg_price=D("190"))


ACCEPTED = OrderAccepted(**BASE, event_id="e1", venue_order_id="P1", side=Side.BUY, order_type=OrderType.LIMIT,
                         quantity=D("3"), price=D("190"), time_in_force=TimeInForce.GTC)


def test_place_accept_partial_fill_fill() -> None:
    record = new_record(PLACE, T)
    assert record.status is OrderStatus.PENDING_NEW and record.is_open
    for event in (ACCEPTED, fill(2, "1", "1"), fill(3, "2", "3", last=True)):
        record = apply_event(record, event, T)
    assert record.status is OrderStatus.FILLED and not record.is_open
    assert (record.cum_quantity, record.leaves_quantity, record.venue_order_id) == (D("3"), D("0"), "P1")
    assert record.anomalies == []


def test_the_record_sums_the_fills_fees_by_currency() -> None:
    record = new_record(PLACE, T)
    for event in (ACCEPTED, fill(2, "1", "1", fee="0.001", fee_currency="BTC"),
                  fill(3, "1", "2", fee="0.002", fee_currency="BTC"), fill(4, "1", "3", last=True, fee="0.5")):
        record = apply_event(record, event, T)
    assert record.fees == {"BTC": D("0.003"), "USD": D("0.5")}
    assert apply_event(record, fill(4, "1", "3", last=True, fee="0.5"), T).fees == record.fees  # once per event


def test_a_redelivered_event_is_applied_once() -> None:
    record = apply_event(new_record(PLACE, T), ACCEPTED, T)
    record = apply_event(record, fill(2, "1", "1"), T)
    assert apply_event(record, fill(2, "1", "1"), T) == record


def test_an_illegal_transition_is_recorded_never_applied() -> None:
    record = apply_event(new_record(PLACE, T), ACCEPTED, T)
    record = apply_event(record, OrderCancelled(**BASE, event_id="e2", reason=CancelReason.REQUESTED, cum_quantity=D(0)), T)
    after = apply_event(record, fill(3, "1", "1"), T)
    assert after.status is OrderStatus.CANCELLED and after.cum_quantity == 0
    assert after.anomalies == ["e3: cancelled -> partially_filled refused"]


def test_a_rejection_is_the_first_news_of_an_order_rejected_by_risk() -> None:
    rejected = OrderRejected(**BASE, event_id="r1", reason=RejectReason.MAX_NOTIONAL, message="too big")
    record = apply_event(None, rejected, T)
    assert record.status is OrderStatus.REJECTED and record.reject_reason is RejectReason.MAX_NOTIONAL
    assert record.quantity is None


def test_modify_changes_terms_and_command_rejections_keep_the_status() -> None:
    record = apply_event(new_record(PLACE, T), ACCEPTED, T)
    record = apply_event(record, OrderModified(**BASE, event_id="e2", modify_id="m1", quantity=D("5"), price=D("191")), T)
    assert (record.status, record.quantity, record.price) == (OrderStatus.ACCEPTED, D("5"), D("191"))
    refused = CommandRejected(event_id="x", action=CommandAction.CANCEL, venue="paper", account="demo",
                              client_order_id="c1", reason=RejectReason.ORDER_NOT_OPEN, ts_event=T, ts_recv=T)
    assert apply_event(record, refused, T).status is OrderStatus.ACCEPTED


EVENTS = [
    ACCEPTED,
    OrderTriggered(**BASE, event_id="e5"),
    fill(2, "1", "1"),
    fill(3, "2", "3", last=True),
    OrderCancelled(**BASE, event_id="e4", reason=CancelReason.REQUESTED, cum_quantity=D(0)),
    OrderExpired(**BASE, event_id="e6", cum_quantity=D(0)),
    OrderRejected(**BASE, event_id="e7", reason=RejectReason.VENUE_REJECTED),
]


@given(st.lists(st.sampled_from(EVENTS), max_size=12))
def test_terminal_is_final_and_duplicates_change_nothing(events) -> None:
    once = new_record(PLACE, T)
    twice = new_record(PLACE, T)
    for event in events:
        before = once.status
        once = apply_event(once, event, T)
        twice = apply_event(apply_event(twice, event, T), event, T)
        if before in TERMINAL_STATUSES:
            assert once.status is before
    assert msgspec.structs.asdict(once) == msgspec.structs.asdict(twice)
