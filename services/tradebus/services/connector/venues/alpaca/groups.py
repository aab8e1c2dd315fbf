"""Our order groups in Alpaca's form: one POST /v2/orders with `order_class` bracket, oco or
oto and the exits as its nested `take_profit` / `stop_loss` objects (alpacahq/alpaca-docs
content/trading/orders.md, "Bracket Orders", "OCO Orders", "OTO Orders").

Mapped exactly, or not at all (`Unexpressible`, answered `unsupported_order_group`):
- BRACKET with both exits -> Alpaca `bracket`; with one exit -> Alpaca `oto` (an entry with
  ONE exit is what Alpaca calls oto).
- OTO whose second order is a take-profit (limit) or stop-loss (stop / stop-limit) on the
  other side for the first's quantity -> Alpaca `oto`. Any other second order (same side,
  another quantity, a market order) has no Alpaca form.
- OCO of a limit and a stop / stop-limit, one side, one quantity -> Alpaca `oco` (the limit
  is the order posted, the stop its child). Two limits, two stops or two quantities: none.
  Alpaca takes an oco as an exit only (it closes a position the account holds).
- Alpaca's legs take no terms of their own beyond prices: every order of the group has the
  entry's time in force (day or gtc), no post-only / reduce-only; a trailing stop is taken
  only as a single order, never as a leg; crypto takes no order classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradebus.schemas.commands import PlaceOrder, PlaceOrderGroup
from tradebus.schemas.values import GroupKind, OrderType, TimeInForce

STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)
GROUP_TIME_IN_FORCE = (TimeInForce.DAY, TimeInForce.GTC)


class Unexpressible(Exception):
    """A group Alpaca has no exact form for; the text says why."""


@dataclass(frozen=True)
class AlpacaGroup:
    order_class: str  # bracket | oco | oto
    parent: PlaceOrder  # the order posted (its client_order_id is ours)
    take_profit: PlaceOrder | None
    stop_loss: PlaceOrder | None

    def exits(self, parent_body: dict[str, Any]) -> dict[str, Any]:
        """The POST body: the parent's, with `order_class` and the exits' objects."""
        body = {**parent_body, "order_class": self.order_class}
        if self.take_profit is not None:
            body["take_profit"] = {"limit_price": str(self.take_profit.price)}
        if self.stop_loss is not None:
            stop: dict[str, str] = {"stop_price": str(self.stop_loss.stop_price)}
            if self.stop_loss.price is not None:
                stop["limit_price"] = str(self.stop_loss.price)
            body["stop_loss"] = stop
        return body

    def leg(self, alpaca_type: str) -> PlaceOrder | None:
        """Our order behind one of Alpaca's legs, known by its type: the take-profit is the
        limit, the stop-loss a stop or stop-limit (for an oco the parent is the limit)."""
        return self.take_profit if alpaca_type == OrderType.LIMIT.value else self.stop_loss


def alpaca_form(group: PlaceOrderGroup, asset_class: str | None) -> AlpacaGroup:
    orders = group.placed_orders()
    if asset_class != "us_equity":
        raise Unexpressible(f"Alpaca takes no order classes for {asset_class or 'an unlisted'} symbols")
    first = orders[0]
    if first.time_in_force not in GROUP_TIME_IN_FORCE:
        raise Unexpressible("Alpaca's order classes take time in force day or gtc only")
    for order in orders:
        if order.time_in_force is not first.time_in_force:
            raise Unexpressible("Alpaca's legs have their parent's time in force: every order of the group needs it")
        if order.post_only or order.reduce_only:
            raise Unexpressible("Alpaca's order classes take no post-only or reduce-only orders")
        if order.order_type is OrderType.TRAILING_STOP:
            raise Unexpressible("Alpaca takes trailing stops only as single orders, not in an order class")
    if group.kind is GroupKind.OCO:
        return _oco(orders)
    exits = orders[1:]
    for order in exits:
        if order.side is first.side or order.quantity != first.quantity:
            raise Unexpressible("Alpaca's exits are on the other side of the entry, for its quantity")
    take_profit = [o for o in exits if o.order_type is OrderType.LIMIT]
    stop_loss = [o for o in exits if o.order_type in STOPS]
    if len(take_profit) > 1 or len(stop_loss) > 1 or len(take_profit) + len(stop_loss) != len(exits):
        raise Unexpressible("Alpaca's exits are at most one take-profit limit and one stop-loss stop or stop-limit")
    if first.order_type not in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT):
        raise Unexpressible(f"Alpaca takes no {first.order_type.value} entry in an order class")
    order_class = "bracket" if len(exits) == 2 else "oto"
    return AlpacaGroup(order_class=order_class, parent=first, take_profit=next(iter(take_profit), None),
                       stop_loss=next(iter(stop_loss), None))


def _oco(orders: list[PlaceOrder]) -> AlpacaGroup:
    limits = [o for o in orders if o.order_type is OrderType.LIMIT]
    stops = [o for o in orders if o.order_type in STOPS]
    if len(limits) != 1 or len(stops) != 1:
        raise Unexpressible("Alpaca's oco is one take-profit limit and one stop-loss stop or stop-limit")
    if limits[0].quantity != stops[0].quantity:
        raise Unexpressible("Alpaca's oco has one quantity for both orders")
    # the take-profit is the order posted itself: its limit is sent as `take_profit.limit_price` too
    return AlpacaGroup(order_class="oco", parent=limits[0], take_profit=limits[0], stop_loss=stops[0])
