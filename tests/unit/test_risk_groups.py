"""How risk decides an order group: the checks, the ledger and the exposure, without a bus."""

from __future__ import annotations

from decimal import Decimal as D

from tradebus.schemas.commands import PlaceOrder, PlaceOrderGroup, command_dedupe_id
from tradebus.schemas.events import CommandAction, Fill, OrderCancelled, OrderPartiallyFilled, group_refused
from tradebus.schemas.values import CancelReason, GroupKind, LiquiditySide, OrderType, RejectReason, Side, TradingState
from tradebus.services.risk.checks import check
from tradebus.services.risk.exposure import RISK_EVENT_PREFIX
from tradebus.services.risk.ledger import CommandLedger, decided_id

from .test_risk_checks import LATER, NOW, gate, place, position


def bracket(entry: PlaceOrder | None = None, **exit_terms: object) -> PlaceOrderGroup:
    """A long bracket: a market entry, a take-profit at 110 and a stop-loss at 90."""
    exits = dict(side=Side.SELL, **exit_terms)
    return PlaceOrderGroup(group_id="g1", venue="paper", account="demo", kind=GroupKind.BRACKET, orders=[
        entry or place(client_order_id="g1-e"),
        place(client_order_id="g1-tp", order_type=OrderType.LIMIT, price=D("110"), **exits),
        place(client_order_id="g1-sl", order_type=OrderType.STOP, stop_price=D("90"), **exits),
    ])


def decide(group: PlaceOrderGroup, **limits: object):  # noqa: ANN201 - a Rejection or None
    return check(group, gate(**limits), now=NOW, deadline=LATER, clock=0)


def test_a_group_breaking_a_rule_between_its_orders_or_of_a_kind_the_venue_does_not_hold_is_refused() -> None:
    wrong_side = bracket(place(client_order_id="g1-e", order_type=OrderType.LIMIT, price=D("120")))
    assert decide(wrong_side).reason is RejectReason.INVALID_ORDER_GROUP
    held_nowhere = gate()
    held_nowhere.groups_held = lambda venue: frozenset({GroupKind.OCO})
    refusal = check(bracket(), held_nowhere, now=NOW, deadline=LATER, clock=0)
    assert refusal.reason is RejectReason.UNSUPPORTED_ORDER_GROUP and "holds no bracket groups natively" in refusal.message
    assert decide(bracket()) is None  # the paper venue holds brackets


def test_the_first_order_gets_every_check_and_the_exits_only_those_of_their_own_terms() -> None:
    # A position limit the entry would break refuses the group, naming the entry.
    refusal = decide(bracket(place(client_order_id="g1-e", quantity=D("3")), quantity=D("3")), max_position="2")
    assert refusal.reason is RejectReason.MAX_POSITION and refusal.message.startswith("g1-e: ")
    # The exits sell what the entry buys: against today's short of 0.5 they would make it
    # 1.5, beyond the limit, yet they are not held to the position limit, nor to reducing-only.
    limited = gate(max_position="1")
    position(limited.exposure, "-0.5")
    assert check(bracket(), limited, now=NOW, deadline=LATER, clock=0) is None
    assert check(place(client_order_id="alone", side=Side.SELL), limited, now=NOW, deadline=LATER,
                 clock=0).reason is RejectReason.MAX_POSITION  # as a place of its own it would be refused
    reducing = gate()
    reducing.fleet_state = TradingState.REDUCING_ONLY
    position(reducing.exposure, "-5")  # the entry buys back part of a short: it reduces
    assert check(bracket(), reducing, now=NOW, deadline=LATER, clock=0) is None
    # Their own terms are checked: quantity and the price collar (mid 100).
    assert decide(bracket(quantity=D("2"), entry=place(client_order_id="g1-e", quantity=D("2"))),
                  max_quantity="1").reason is RejectReason.MAX_QUANTITY
    refusal = decide(bracket(), price_collar_bps="500")
    assert refusal.reason is RejectReason.PRICE_COLLAR and refusal.message.startswith("g1-tp: ")


def test_contingent_orders_count_as_exposure_from_the_first_fill_and_never_without_one() -> None:
    g = gate()
    group = bracket()
    g.exposure.on_routed_group(group)
    assert set(g.exposure.orders) == {("paper", "demo", "g1-e")}
    fill = Fill(trade_id="t1", side=Side.BUY, price=D("100"), quantity=D("0.5"), fee=D("0"), fee_currency="USDT",
                liquidity=LiquiditySide.TAKER)
    g.exposure.on_order_event(OrderPartiallyFilled(event_id="e1", client_order_id="g1-e", venue="paper", account="demo",
                                                   symbol="BTC/USDT", ts_event=NOW, ts_recv=NOW, fill=fill,
                                                   cum_quantity=D("0.5"), leaves_quantity=D("0.5"), avg_price=D("100")))
    assert set(g.exposure.orders) == {("paper", "demo", cid) for cid in ("g1-e", "g1-tp", "g1-sl")}
    assert g.exposure.working("paper", "demo", "BTC/USDT", Side.SELL) == D("2")

    unfilled = gate()
    unfilled.exposure.on_routed_group(group)
    unfilled.exposure.on_order_event(OrderCancelled(event_id="e2", client_order_id="g1-e", venue="paper", account="demo",
                                                    symbol="BTC/USDT", ts_event=NOW, ts_recv=NOW,
                                                    reason=CancelReason.REQUESTED, cum_quantity=D("0")))
    assert not unfilled.exposure.orders and not unfilled.exposure.waiting


def test_the_ledger_spends_every_id_of_a_group_and_reads_its_refusals_back() -> None:
    group = bracket()
    dedupe_id = command_dedupe_id(group)
    refusals = group_refused(group, event_id=f"{RISK_EVENT_PREFIX}{dedupe_id}", reason=RejectReason.MAX_NOTIONAL,
                             message="too big", now=NOW)
    assert {decided_id(event.event_id) for event in refusals} == {dedupe_id}
    assert decided_id(f"{RISK_EVENT_PREFIX}paper.demo.c1.place.0123456789abcdef") == "paper.demo.c1.place.0123456789abcdef"
    rebuilt = CommandLedger()  # from risk's own refusals on EVENTS, as after a restart
    for event in refusals:
        rebuilt.on_order_event(event, 7)
    assert rebuilt.is_decided(dedupe_id, 7)

    ledger = CommandLedger()
    ledger.decide_group(dedupe_id, 3, group)
    reuse = ledger.answer_repeat(place(client_order_id="g1-sl"), "other", 4, NOW)
    assert reuse is not None and reuse.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    again = PlaceOrderGroup(group_id="g2", venue="paper", account="demo", kind=GroupKind.OTO,
                            orders=[place(client_order_id="n1"), place(client_order_id="g1-e")])
    refusal = ledger.answer_repeat(again, command_dedupe_id(again), 5, NOW)
    assert refusal is not None and (refusal.action, refusal.request_id) == (CommandAction.PLACE_GROUP, "g2")
    assert "g1-e is already used" in refusal.message
    same_id = PlaceOrderGroup(group_id="g1", venue="paper", account="demo", kind=GroupKind.OTO,
                              orders=[place(client_order_id="n2"), place(client_order_id="n3")])
    assert "group id g1 is already used" in ledger.answer_repeat(same_id, command_dedupe_id(same_id), 6, NOW).message
    ledger.forget([dedupe_id])  # its route was never stored: its ids are free again
    fresh = PlaceOrderGroup(group_id="g1", venue="paper", account="demo", kind=GroupKind.OTO,
                            orders=[place(client_order_id="g1-e"), place(client_order_id="g1-sl")])
    assert ledger.answer_repeat(fresh, command_dedupe_id(fresh), 8, NOW) is None
