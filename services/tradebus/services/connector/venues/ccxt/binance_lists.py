"""Binance spot order lists: our OCO group as Binance's OCO (POST /api/v3/orderList/oco, the
current endpoint; /api/v3/order/oco is deprecated), and the legs Binance ended for their list.

Sources: binance/binance-spot-api-docs (commit a5e0bc3d) rest-api.md "New Order list - OCO"
and "Cancel Order list", web-socket-api.md "Place new Order list - OCO" (its buy example:
`aboveType` STOP_LOSS_LIMIT, `belowType` LIMIT_MAKER), fix-api.md's order list table (buy:
below LIMIT_MAKER, above STOP_LOSS / STOP_LOSS_LIMIT; sell: the other way round),
user-data-stream.md "Order Update" (`g` order list id, `eR` expiry reason OCO_TRIGGER:
"An order that was part of an OCO pair was canceled because the other order of the pair
started working or the entire OCO expired"), faqs/spot_glossary.md "OCO" ("if one of the
orders execute, the other is automatically expired").

Mapped exactly, or not at all (`Unexpressible`, answered `unsupported_order_group`):
- one LIMIT (sent as LIMIT_MAKER: Binance's OCO limit leg is post-only, and lies beyond the
  last price: above it for a sell, below for a buy) and one STOP (STOP_LOSS) or STOP_LIMIT
  (STOP_LOSS_LIMIT, GTC), one side, one quantity (Binance's list has one `quantity`);
- every leg GTC, no post-only on the stop, no reduce-only (spot has none), no trailing stop.
Two limits, two stops, two quantities, IOC/FOK/DAY legs: Binance has no such list.

Binance's own semantics, which differ from ours: the stop leg cancels the limit leg when it
triggers (it "started working"), not at its first fill; cancelling one leg cancels the whole
list (rest-api.md "Cancel Order list": "Canceling an individual order from an order list will
cancel the entire order list"). A leg ended by its list (expired OCO_TRIGGER, or cancelled
with the list) is reported cancelled `contingent`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradebus.schemas.commands import PlaceOrderGroup
from tradebus.schemas.values import OrderType, Side, TimeInForce

NO_LIST = -1  # orderListId / `g` of an order outside any list
STOPS = {OrderType.STOP: "STOP_LOSS", OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT"}


class Unexpressible(Exception):
    """A group Binance has no exact order list for; the text says why."""


def oco_request(group: PlaceOrderGroup, venue_symbol: str) -> dict[str, Any]:
    """The parameters of POST /api/v3/orderList/oco for an OCO group: our group id is the
    list's client id, our client order ids the legs' (FULL answer: each leg's report)."""
    orders = group.placed_orders()
    limits = [o for o in orders if o.order_type is OrderType.LIMIT]
    stops = [o for o in orders if o.order_type in STOPS]
    if len(limits) != 1 or len(stops) != 1:
        raise Unexpressible("Binance's OCO is one limit (LIMIT_MAKER) and one stop (STOP_LOSS or STOP_LOSS_LIMIT)")
    limit, stop = limits[0], stops[0]
    if limit.quantity != stop.quantity:
        raise Unexpressible("Binance's OCO has one quantity for both orders")
    for order in orders:
        if order.time_in_force is not TimeInForce.GTC:
            raise Unexpressible("Binance's OCO legs are GTC")
        if order.reduce_only:
            raise Unexpressible("Binance spot takes no reduce-only orders")
    if stop.post_only:
        raise Unexpressible("Binance's OCO stop leg cannot be post-only")
    limit_leg = {"Type": "LIMIT_MAKER", "ClientOrderId": limit.client_order_id, "Price": _text(limit.price)}
    stop_leg = {"Type": STOPS[stop.order_type], "ClientOrderId": stop.client_order_id,
                "StopPrice": _text(stop.stop_price)}
    if stop.order_type is OrderType.STOP_LIMIT:
        stop_leg.update(Price=_text(stop.price), TimeInForce="GTC")
    # a sell takes profit above the market and stops below it; a buy the other way round
    above, below = (limit_leg, stop_leg) if limit.side is Side.SELL else (stop_leg, limit_leg)
    return {
        "symbol": venue_symbol, "listClientOrderId": group.group_id, "side": limit.side.value.upper(),
        "quantity": _text(limit.quantity), "newOrderRespType": "FULL",
        **{f"above{name}": value for name, value in above.items()},
        **{f"below{name}": value for name, value in below.items()},
    }


def ended_by_list(info: dict[str, Any]) -> bool:
    """Whether a Binance order (REST `orderListId`, executionReport `g`) is a leg its list
    ended: cancelled with the list (one leg's cancel cancels the list), or expired because the
    other leg executed. The stream says why it expired (`eR` OCO_TRIGGER); a REST order does
    not: a leg that expired without a fill of its own is taken as expired by its list (the
    only other expiry of a GTC leg is a triggered stop's unfilled market remainder)."""
    if info.get("e") == "executionReport":
        list_id, status = info.get("g", NO_LIST), info.get("X")
        if status == "EXPIRED":
            return list_id != NO_LIST and info.get("eR") == "OCO_TRIGGER"
    else:
        list_id, status = info.get("orderListId", NO_LIST), info.get("status")
        if status == "EXPIRED":
            return list_id != NO_LIST and Decimal(str(info.get("executedQty") or 0)) == 0
    return list_id != NO_LIST and status == "CANCELED"


def _text(value: Decimal | None) -> str:
    assert value is not None  # the contract requires these prices of these order types
    return format(value, "f")
