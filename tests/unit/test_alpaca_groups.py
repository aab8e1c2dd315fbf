"""Our order groups in Alpaca's form (venues/alpaca/groups.py): mapped exactly, or refused
with the reason, never approximated."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradebus.schemas.commands import PlaceOrder, PlaceOrderGroup
from tradebus.schemas.values import GroupKind, OrderType, Side, TimeInForce
from tradebus.services.connector.venues.alpaca.groups import Unexpressible, alpaca_form


def order(coid: str, side: Side, order_type: OrderType, quantity: int = 5, **terms: Any) -> PlaceOrder:
    terms.setdefault("time_in_force", TimeInForce.GTC)
    return PlaceOrder(client_order_id=coid, venue="alpaca", account="main", symbol="AAPL", side=side,
                      order_type=order_type, quantity=Decimal(quantity), **terms)


def group(kind: GroupKind, *orders: PlaceOrder) -> PlaceOrderGroup:
    return PlaceOrderGroup(group_id="g", venue="alpaca", account="main", kind=kind, orders=list(orders))


ENTRY = order("in", Side.BUY, OrderType.LIMIT, price=Decimal(100))
TAKE_PROFIT = order("tp", Side.SELL, OrderType.LIMIT, price=Decimal(110))
STOP_LOSS = order("sl", Side.SELL, OrderType.STOP_LIMIT, stop_price=Decimal(95), price=Decimal(94))


def test_a_bracket_is_alpacas_bracket_and_one_with_a_single_exit_its_oto() -> None:
    full = alpaca_form(group(GroupKind.BRACKET, ENTRY, TAKE_PROFIT, STOP_LOSS), "us_equity")
    body = full.exits({"type": "limit"})
    assert (full.order_class, body["take_profit"], body["stop_loss"]) == (
        "bracket", {"limit_price": "110"}, {"stop_price": "95", "limit_price": "94"})
    assert [full.leg(kind).client_order_id for kind in ("limit", "stop_limit")] == ["tp", "sl"]
    single = alpaca_form(group(GroupKind.BRACKET, ENTRY, STOP_LOSS), "us_equity")
    assert (single.order_class, single.take_profit, "take_profit" in single.exits({})) == ("oto", None, False)


def test_an_oco_of_a_limit_and_a_stop_posts_the_limit_with_the_stop_as_its_child() -> None:
    stop = order("sl", Side.SELL, OrderType.STOP, stop_price=Decimal(95))
    oco = alpaca_form(group(GroupKind.OCO, stop, TAKE_PROFIT), "us_equity")
    assert (oco.order_class, oco.parent.client_order_id, oco.leg("stop").client_order_id) == ("oco", "tp", "sl")
    assert oco.exits({})["take_profit"] == {"limit_price": "110"}


@pytest.mark.parametrize(("kind", "orders", "why"), [
    (GroupKind.OCO, (TAKE_PROFIT, order("tp2", Side.SELL, OrderType.LIMIT, price=Decimal(120))), "one take-profit limit"),
    (GroupKind.OTO, (ENTRY, order("more", Side.BUY, OrderType.LIMIT, price=Decimal(90))), "other side of the entry"),
    (GroupKind.OTO, (ENTRY, order("half", Side.SELL, OrderType.LIMIT, 2, price=Decimal(110))), "for its quantity"),
    (GroupKind.BRACKET, (ENTRY, TAKE_PROFIT, order("trail", Side.SELL, OrderType.TRAILING_STOP,
                                                   trail_percent=Decimal(2))), "only as single orders"),
    (GroupKind.BRACKET, (ENTRY, order("tp", Side.SELL, OrderType.LIMIT, price=Decimal(110),
                                      time_in_force=TimeInForce.DAY)), "parent's time in force"),
    (GroupKind.BRACKET, (order("ioc", Side.BUY, OrderType.LIMIT, price=Decimal(100), time_in_force=TimeInForce.IOC),
                         order("tp", Side.SELL, OrderType.LIMIT, price=Decimal(110), time_in_force=TimeInForce.IOC)),
     "day or gtc"),
])
def test_groups_alpaca_cannot_hold_exactly_are_refused_with_the_reason(
        kind: GroupKind, orders: tuple[PlaceOrder, ...], why: str) -> None:
    with pytest.raises(Unexpressible, match=why):
        alpaca_form(group(kind, *orders), "us_equity")


def test_crypto_takes_no_order_classes() -> None:
    with pytest.raises(Unexpressible, match="no order classes for crypto"):
        alpaca_form(group(GroupKind.BRACKET, ENTRY, TAKE_PROFIT, STOP_LOSS), "crypto")
