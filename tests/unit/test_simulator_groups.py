"""The simulated exchange's order groups (bracket, OCO, OTO) and trailing stops: examples
for each rule (the random sessions of test_simulator_exchange.py cover them as properties)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from tradebus.schemas.commands import CancelOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import (
    CommandAction,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
)
from tradebus.schemas.values import CancelReason, GroupKind, OrderType, RejectReason, Side

from .test_simulator_exchange import (
    BOOK,
    BTC,
    Clock,
    cancel,
    command_rejected,
    exchange,
    fill_terms,
    kinds,
    modify,
    place,
    restored,
)

BUY, SELL = Side.BUY, Side.SELL


def group(kind: GroupKind, *orders: PlaceOrder, group_id: str = "g1") -> PlaceOrderGroup:
    return PlaceOrderGroup(group_id=group_id, venue="paper", account="a", kind=kind, orders=list(orders))


def bracket(entry_price: str | None = "100", quantity: str = "1", stop_loss: PlaceOrder | None = None) -> PlaceOrderGroup:
    return group(
        GroupKind.BRACKET,
        place("entry", BUY, quantity, entry_price),
        place("tp", SELL, quantity, "110"),
        stop_loss or place("sl", SELL, quantity, order_type=OrderType.STOP, stop="95"),
    )


def trailing(coid: str, side: Side, quantity: str = "1", **trail: str) -> PlaceOrder:
    return place(coid, side, quantity, order_type=OrderType.TRAILING_STOP, **{k: D(v) for k, v in trail.items()})


def book(bid: str, ask: str, size: str = "5", trade: tuple[str, str] | None = None) -> dict[str, Any]:
    return {
        "bids": [(D(bid), D(size))],
        "asks": [(D(ask), D(size))],
        "trade": None if trade is None else (D(trade[0]), D(trade[1])),
    }


def about(events: list[Any], coid: str) -> list[type]:
    return [type(e) for e in events if getattr(e, "client_order_id", None) == coid]


def working(ex: Any) -> dict[str, bool]:
    """Open orders of account a: client order id -> held."""
    return {o.client_order_id: o.held for o in ex.open_orders("a")}


# ---------------------------------------------------------------------------------------
# Brackets


def test_a_bracket_is_accepted_at_once_and_its_exits_wait_for_the_entry() -> None:
    ex = exchange()
    events = ex.execute(bracket())
    assert kinds(events) == [OrderAccepted] * 3
    assert [(e.client_order_id, e.group_id, e.contingent_on) for e in events] == [
        ("entry", "g1", None), ("tp", "g1", "entry"), ("sl", "g1", "entry"),
    ]
    assert working(ex) == {"entry": False, "tp": True, "sl": True}
    # A held exit neither fills nor triggers: a bid through the take-profit, then one under the stop.
    assert ex.on_market(BTC, **book("111", "112")) == [] and ex.on_market(BTC, **book("94", "120")) == []
    assert working(ex) == {"entry": False, "tp": True, "sl": True}


def test_the_entry_filled_releases_the_exits_and_a_take_profit_fill_cancels_the_stop_loss() -> None:
    ex = exchange()
    ex.execute(bracket())
    events = ex.on_market(BTC, **book("99", "100"))  # the entry fills as maker at 100
    assert about(events, "entry") == [OrderFilled] and working(ex) == {"tp": False, "sl": False}
    events = ex.on_market(BTC, **book("110.5", "111"))
    assert about(events, "tp") == [OrderFilled] and about(events, "sl") == [OrderCancelled]
    cancelled = events[-1]
    assert (cancelled.client_order_id, cancelled.reason) == ("sl", CancelReason.CONTINGENT)
    assert working(ex) == {}


def test_a_stop_loss_trigger_cancels_the_take_profit() -> None:
    ex = exchange()
    ex.execute(bracket())
    ex.on_market(BTC, **book("99", "100"))
    events = ex.on_market(BTC, **book("94", "96"))
    assert about(events, "sl") == [OrderTriggered, OrderFilled]
    assert fill_terms(events)[0][:2] == (D("94"), D("1"))
    assert about(events, "tp") == [OrderCancelled] and events[-1].reason is CancelReason.CONTINGENT


def test_an_entry_filled_at_once_releases_exits_that_work_on_the_same_book() -> None:
    ex = exchange()
    events = ex.execute(group(
        GroupKind.BRACKET, place("entry", BUY, "1"), place("tp", SELL, "1", "98"),  # a take-profit below the bid
        place("sl", SELL, "1", order_type=OrderType.STOP, stop="90"),
    ))
    assert kinds(events)[:3] == [OrderAccepted] * 3
    assert about(events, "entry")[1:] == [OrderFilled] and about(events, "tp")[1:] == [OrderFilled]
    assert about(events, "sl")[1:] == [OrderCancelled]


def test_an_entry_cancelled_after_a_partial_fill_leaves_exits_for_the_filled_quantity() -> None:
    ex = exchange()
    ex.execute(bracket())
    ex.on_market(BTC, bids=[(D("99"), D("1"))], asks=[(D("100"), D("0.4"))])
    events = ex.execute(cancel("entry"))
    assert kinds(events) == [OrderCancelled, OrderModified, OrderModified]
    assert events[0].reason is CancelReason.REQUESTED
    assert [(e.client_order_id, e.modify_id, e.quantity) for e in events[1:]] == [
        ("tp", "contingent", D("0.4")), ("sl", "contingent", D("0.4")),
    ]
    assert {o.client_order_id: o.quantity for o in ex.open_orders("a")} == {"tp": D("0.4"), "sl": D("0.4")}
    events = ex.on_market(BTC, **book("94", "96"))
    assert [terms[:2] for terms in fill_terms(events)] == [(D("94"), D("0.4"))]


def test_an_entry_ending_without_a_fill_cancels_the_exits() -> None:
    ex = exchange()
    ex.execute(bracket())
    events = ex.execute(cancel("entry"))
    assert [(e.client_order_id, e.reason) for e in events] == [
        ("entry", CancelReason.REQUESTED), ("tp", CancelReason.CONTINGENT), ("sl", CancelReason.CONTINGENT),
    ]


def test_cancelling_a_held_exit_cancels_only_that_exit() -> None:
    ex = exchange()
    ex.execute(bracket())
    assert [e.client_order_id for e in ex.execute(cancel("sl"))] == ["sl"]
    events = ex.on_market(BTC, **book("99", "100"))
    assert about(events, "entry") == [OrderFilled] and working(ex) == {"tp": False}


# ---------------------------------------------------------------------------------------
# OCO and OTO


def test_oco_orders_work_at_once_and_the_first_fill_cancels_the_other() -> None:
    ex = exchange()
    events = ex.execute(group(GroupKind.OCO, place("dip", BUY, "1", "98"),
                              place("breakout", BUY, "1", order_type=OrderType.STOP, stop="105")))
    assert [e.contingent_on for e in events] == [None, None] and working(ex) == {"dip": False, "breakout": False}
    # One update that would do both: the stop triggers first, and its fill cancels the limit
    # before the book reaches it.
    events = ex.on_market(BTC, bids=[(D("97"), D("5"))], asks=[(D("97.5"), D("5"))], trade=(D("106"), D("1")))
    assert about(events, "breakout") == [OrderTriggered, OrderFilled]
    assert about(events, "dip") == [OrderCancelled] and events[-1].reason is CancelReason.CONTINGENT


def test_an_oco_partial_fill_cancels_the_other_at_once() -> None:
    ex = exchange()
    ex.execute(group(GroupKind.OCO, place("low", SELL, "2", "103"), place("high", SELL, "2", "105")))
    events = ex.on_market(BTC, bids=[(D("103"), D("0.5"))], asks=[(D("104"), D("1"))])
    assert about(events, "low") == [OrderPartiallyFilled] and about(events, "high") == [OrderCancelled]
    assert working(ex) == {"low": False}


def test_oto_second_works_once_the_first_fills_in_full_quantity_on_its_side() -> None:
    ex = exchange()
    ex.execute(group(GroupKind.OTO, place("first", BUY, "1", "100"), place("second", BUY, "2", "95")))
    assert working(ex) == {"first": False, "second": True}
    events = ex.on_market(BTC, **book("99", "100"))
    assert about(events, "first") == [OrderFilled] and about(events, "second") == []  # same side: not cut
    assert working(ex) == {"second": False}
    assert about(ex.on_market(BTC, **book("94", "95")), "second") == [OrderFilled]


def test_oto_first_expiring_unfilled_cancels_the_second() -> None:
    ex = exchange()
    ex.execute(group(GroupKind.OTO, place("first", BUY, "1", "100"), place("second", SELL, "1", "110")))
    events = ex.execute(cancel("first"))
    assert [(e.client_order_id, e.reason) for e in events] == [
        ("first", CancelReason.REQUESTED), ("second", CancelReason.CONTINGENT),
    ]


def test_a_released_order_the_account_cannot_carry_then_is_cancelled() -> None:
    ex = exchange(cash="200")
    ex.execute(group(GroupKind.OTO, place("first", BUY, "1", "100"), place("second", BUY, "1.5", "99")))
    events = ex.on_market(BTC, **book("99", "100"))  # the first spends 100 of 200: 1.5 at 99 is too much
    assert about(events, "first") == [OrderFilled]
    assert about(events, "second") == [OrderCancelled] and events[-1].reason is CancelReason.VENUE
    events = ex.execute(group(GroupKind.OTO, place("f2", BUY, "0.5", "100"),  # takes the ask at 100 at once
                              place("s2", BUY, "0.1", "100.5", post_only=True), group_id="g2"))
    assert about(events, "f2") == [OrderAccepted, OrderFilled]  # s2 released with the ask under its price
    assert about(events, "s2") == [OrderAccepted, OrderCancelled] and events[-1].reason is CancelReason.POST_ONLY_WOULD_TAKE


# ---------------------------------------------------------------------------------------
# Trailing stops


def test_a_trailing_stop_follows_the_best_price_and_triggers_once() -> None:
    ex = exchange()
    events = ex.execute(trailing("ts", SELL, trail_amount="2"))
    assert kinds(events) == [OrderAccepted, OrderModified]
    assert (events[0].trail_amount, events[0].stop_price) == (D("2"), None)
    assert (events[1].modify_id, events[1].stop_price) == ("trail", D("97"))  # best bid 99 - 2
    moved = ex.on_market(BTC, **book("103", "104"))
    assert [e.stop_price for e in moved] == [D("101")]
    assert ex.on_market(BTC, **book("102", "103")) == []  # never back
    assert [e.stop_price for e in ex.on_market(BTC, **book("102", "103", trade=("104.5", "1")))] == [D("102.5")]
    events = ex.on_market(BTC, **book("102.4", "103"))
    assert kinds(events)[:2] == [OrderTriggered, OrderFilled]
    assert fill_terms(events)[0][:2] == (D("102.4"), D("1"))  # a market order from there
    assert ex.on_market(BTC, **book("90", "91")) == [] and working(ex) == {}


def test_a_trailing_stop_checks_its_stop_before_moving_it() -> None:
    ex = exchange()
    ex.execute(trailing("ts", SELL, trail_amount="2"))  # stop 97
    events = ex.on_market(BTC, **book("110", "111", trade=("96.5", "1")))
    assert kinds(events)[:2] == [OrderTriggered, OrderFilled]


def test_a_trailing_percent_rounds_its_stop_away_from_the_market() -> None:
    ex = exchange()
    buy = ex.execute(trailing("buy", BUY, trail_percent="1"))
    assert buy[-1].stop_price == D("102.01")  # best ask 101 x 1.01
    assert ex.on_market(BTC, **book("99", "100.33"))[-1].stop_price == D("101.34")  # 101.3333 up
    sell = ex.execute(trailing("sell", SELL, trail_amount="0.005"))
    assert sell[-1].stop_price == D("98.99")  # 99 - 0.005 down


def test_a_trailing_stop_needs_a_price_to_follow_and_refuses_a_new_stop_price() -> None:
    ex = exchange(book=False)
    rejected = ex.execute(trailing("ts", SELL, trail_amount="1"))
    assert kinds(rejected) == [OrderRejected] and rejected[0].reason is RejectReason.NO_LIQUIDITY
    ex.on_market(BTC, **BOOK)
    ex.execute(trailing("ts2", SELL, trail_amount="1"))
    assert command_rejected(ex, modify("ts2", stop_price="90")) is RejectReason.MALFORMED
    assert [e.quantity for e in ex.execute(modify("ts2", "m2", quantity="0.5"))] == [D("0.5")]


def test_a_trailing_stop_loss_starts_following_when_its_entry_fills() -> None:
    ex = exchange()
    ex.execute(bracket(stop_loss=trailing("sl", SELL, trail_amount="3")))
    ex.on_market(BTC, **book("120", "121"))  # held: does not follow
    events = ex.on_market(BTC, **book("99.5", "100"))
    [released] = [e for e in events if isinstance(e, OrderModified)]
    assert (released.client_order_id, released.modify_id, released.stop_price) == ("sl", "contingent", D("96.5"))


# ---------------------------------------------------------------------------------------
# Refusals and duplicates


def test_a_group_with_one_order_the_venue_would_refuse_is_refused_whole() -> None:
    ex = exchange()
    refused = bracket(stop_loss=place("sl", SELL, "1", order_type=OrderType.STOP, stop="95.001"))
    events = ex.execute(refused)
    assert kinds(events) == [OrderRejected] * 3
    assert {e.reason for e in events} == {RejectReason.TICK_SIZE} and "sl: price 95.001" in events[0].message
    assert working(ex) == {} and ex.executed(refused)
    # Its orders are refused placements now: the same group again is a duplicate, nothing placed.
    [again] = ex.execute(refused)
    assert (again.action, again.request_id, again.reason) == (
        CommandAction.PLACE_GROUP, "g1", RejectReason.DUPLICATE_CLIENT_ORDER_ID,
    )


def test_groups_breaking_the_rules_between_their_orders_are_refused() -> None:
    ex = exchange()
    same_side = group(GroupKind.BRACKET, place("e", BUY, "1", "100"), place("x", BUY, "1", "110"))
    assert {e.reason for e in ex.execute(same_side)} == {RejectReason.INVALID_ORDER_GROUP}
    ex.execute(bracket())
    reused = group(GroupKind.OCO, place("o1", BUY, "1", "90"), place("o2", BUY, "1", "91"))
    assert [e.message for e in ex.execute(reused)] == ["group id g1 already used"] * 2
    alone = place("lone", BUY, "1", "90", group_id="g9")
    assert ex.execute(alone)[0].reason is RejectReason.INVALID_ORDER_GROUP


def test_a_group_placed_again_places_nothing_twice() -> None:
    ex = exchange()
    first = ex.execute(bracket())
    ex.on_market(BTC, bids=[(D("99"), D("1"))], asks=[(D("100"), D("0.4"))])
    latest, _ = ex.reconcile("a", ["entry", "tp", "sl"])
    assert ex.executed(bracket()) and ex.execute(bracket()) == latest
    assert len(ex.open_orders("a")) == 3 and latest[1:] == first[1:]
    other = group(GroupKind.BRACKET, place("entry", BUY, "1", "100"), place("tp2", SELL, "1", "111"), group_id="g2")
    [refused] = ex.execute(other)
    assert refused.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID and "entry" in refused.message
    assert not ex.knows("a", "tp2")


# ---------------------------------------------------------------------------------------
# Restart


def test_a_restored_venue_holds_the_same_groups_and_trailing_stops() -> None:
    clock = Clock()
    ex = exchange(clock=clock)
    journal = ex.execute(bracket(stop_loss=trailing("sl", SELL, trail_amount="3")))
    journal += ex.execute(trailing("ts", BUY, trail_percent="1"))
    journal += ex.on_market(BTC, **book("99", "97.5"))  # the trailing buy follows the ask down
    copy, owed = restored(journal, clock)
    assert owed == [] and copy.open_orders("a") == ex.open_orders("a")
    market = book("99.5", "100")  # the entry fills: both release the same exits
    assert copy.on_market(BTC, **market) == ex.on_market(BTC, **market)


def test_a_journal_cut_before_the_exits_were_released_owes_the_release() -> None:
    ex = exchange()
    journal = ex.execute(bracket(stop_loss=trailing("sl", SELL, trail_amount="3")))
    journal += ex.on_market(BTC, **book("99.5", "100"))
    released = [e for e in journal if isinstance(e, OrderModified)]
    assert [e.client_order_id for e in released] == ["sl"]
    cut = journal[: journal.index(released[0])]
    copy, owed = restored(cut)
    # No market at restore: the trailing stop-loss starts from the entry's average price.
    assert [(e.client_order_id, e.modify_id, e.stop_price) for e in owed] == [("sl", "contingent", D("97"))]
    assert working(copy) == {"tp": False, "sl": False}


def test_a_journal_cut_before_a_peer_was_cancelled_owes_the_cancel() -> None:
    ex = exchange()
    journal = ex.execute(group(GroupKind.OCO, place("low", SELL, "1", "103"), place("high", SELL, "1", "105")))
    journal += ex.on_market(BTC, **book("103", "104"))
    assert isinstance(journal[-1], OrderCancelled)
    copy, owed = restored(journal[:-1])
    assert [(e.event_id, e.reason) for e in owed] == [(journal[-1].event_id, CancelReason.CONTINGENT)]


def test_a_cancel_of_an_order_its_group_ended_counts_as_executed() -> None:
    ex = exchange()
    ex.execute(bracket())
    command = CancelOrder(client_order_id="entry", venue="paper", account="a")
    assert ex.executed(command) is False
    ex.execute(command)
    assert ex.executed(command) and ex.executed(cancel("tp"))
