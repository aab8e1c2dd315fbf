"""Alpaca's advanced order classes: bracket, oco and oto (POST /v2/orders with `order_class`
and the nested `take_profit` / `stop_loss` objects), held by the emulator over the engine.

From Alpaca's documentation (alpacahq/alpaca-docs content/trading/orders.md, "Bracket
Orders", "OCO Orders", "OTO Orders", "Threshold on stop price of stop-loss orders"):
- bracket: an entry plus a take-profit (limit) and a stop-loss (stop, or stop-limit when
  `stop_loss.limit_price` is given), both on the other side for the entry's qty. "The second
  and third orders won't be active until the first order is completely filled" (they are
  `held` until then). Both exits are required; time_in_force day or gtc; no extended hours.
- oto: an entry plus ONE of take_profit / stop_loss, "the rest of requirements are the same
  as the bracket orders".
- oco: exit only, two orders on one side: the request is the take-profit (`type` must be
  limit) and its `stop_loss` is the child; both work at once.
- "If any one of the orders is canceled, any remaining open order in the group is
  canceled." "Once one of the exit orders is filled, the other is canceled." "If the
  take-profit order is partially filled, the stop-loss order will be adjusted to the
  remaining quantity."
- take_profit.limit_price above stop_loss.stop_price for a buy bracket (below for a sell);
  the stop-loss's stop at least 0.01 on the losing side of the base price (the take-profit's
  limit for oco, a limit entry's limit price) and of the market price.
- The legs have ids and client order ids of Alpaca's making; GET /v2/orders lists each
  order on its own, and with nested=true rolls the children up under the parent's `legs`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ..venue import EmulatedOrder, EmulatedVenue, Refused

CLASSES = ("bracket", "oco", "oto")
CENT = Decimal("0.01")
Publish = Callable[[EmulatedOrder, str], None]  # (order, trade_updates event)


@dataclass
class Group:
    order_class: str
    parent: EmulatedOrder
    legs: list[EmulatedOrder] = field(default_factory=list)  # held (not in the engine) until released
    held: bool = False  # the legs wait for the parent's complete fill

    @property
    def members(self) -> list[EmulatedOrder]:
        return [self.parent, *self.legs]


class OrderClasses:
    def __init__(self, venue: EmulatedVenue, publish: Publish) -> None:
        self.venue = venue
        self.publish = publish
        self._groups: dict[tuple[str, str], Group] = {}  # (account, any member's client order id) -> group
        self.leg_ids: dict[tuple[str, str], str] = {}  # (account, leg client order id) -> the id Alpaca gave it

    # --- submission -------------------------------------------------------------------------
    def check(self, order_class: str, body: dict[str, Any], *, account: str, symbol: str, entry: OrderType,
              side: Side, quantity: Decimal, tif: str, limit: Decimal | None,
              read: Callable[[dict[str, Any], str], Decimal | None]) -> list[tuple[str, dict[str, Any]]]:
        """The exits a request asks for, as (role, object), after Alpaca's rules (Refused otherwise)."""
        if order_class not in CLASSES:
            raise Refused(RejectReason.MALFORMED, f"invalid order_class {order_class}")
        if order_class == "oco" and self._held_for_exit(account, symbol, side) < quantity:
            # "currently only exit order is supported": it closes (part of) a position
            raise Refused(RejectReason.INSUFFICIENT_FUNDS, "insufficient qty available for order")
        if tif not in ("day", "gtc"):
            raise Refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, f"invalid time_in_force for {order_class} order")
        exits = [(role, body[role]) for role in ("take_profit", "stop_loss") if isinstance(body.get(role), dict)]
        roles = [role for role, _ in exits]
        if order_class in ("bracket", "oco") and roles != ["take_profit", "stop_loss"]:
            raise Refused(RejectReason.MALFORMED, f"{order_class} orders require take_profit and stop_loss")
        if order_class == "oto" and len(roles) != 1:
            raise Refused(RejectReason.MALFORMED, "oto orders require either take_profit or stop_loss")
        if order_class == "oco" and entry is not OrderType.LIMIT:
            raise Refused(RejectReason.UNSUPPORTED_ORDER_TYPE, "oco orders must be limit orders")
        terms = {role: obj for role, obj in exits}
        take_profit = read(terms["take_profit"], "limit_price") if "take_profit" in terms else None
        stop = read(terms["stop_loss"], "stop_price") if "stop_loss" in terms else None
        if "take_profit" in terms and take_profit is None:
            raise Refused(RejectReason.MALFORMED, "take_profit.limit_price is required")
        if "stop_loss" in terms and stop is None:
            raise Refused(RejectReason.MALFORMED, "stop_loss.stop_price is required")
        # the exits sell a buy entry's position (buy back a sell's); an oco's are on its own side
        exit_side = side if order_class == "oco" else (Side.SELL if side is Side.BUY else Side.BUY)
        if take_profit is not None and stop is not None and (
                take_profit <= stop if exit_side is Side.SELL else take_profit >= stop):
            raise Refused(RejectReason.MALFORMED, "take_profit.limit_price must be beyond stop_loss.stop_price")
        base = take_profit if order_class == "oco" else limit
        if stop is not None and base is not None and (
                stop > base - CENT if exit_side is Side.SELL else stop < base + CENT):
            raise Refused(RejectReason.MALFORMED, f"stop_loss.stop_price must be at least 0.01 from the base price {base}")
        return exits

    def hold(self, order_class: str, parent: EmulatedOrder, exits: list[tuple[str, dict[str, Any]]],
             read: Callable[[dict[str, Any], str], Decimal | None]) -> Group:
        """The legs of a placed parent: held (bracket, oto) or working at once (oco)."""
        group = Group(order_class=order_class, parent=parent, held=order_class != "oco")
        exit_side = parent.side if order_class == "oco" else (Side.SELL if parent.side is Side.BUY else Side.BUY)
        for role, terms in exits:
            if order_class == "oco" and role == "take_profit":
                continue  # the parent itself
            stop_limit = read(terms, "limit_price") if role == "stop_loss" else None
            order_type = OrderType.LIMIT if role == "take_profit" else (
                OrderType.STOP_LIMIT if stop_limit is not None else OrderType.STOP)
            leg = EmulatedOrder(
                order_id=0, client_order_id=str(uuid.uuid4()), account=parent.account, symbol=parent.symbol,
                side=exit_side, order_type=order_type, time_in_force=parent.time_in_force, quantity=parent.quantity,
                price=read(terms, "limit_price") if role == "take_profit" else stop_limit,
                stop_price=read(terms, "stop_price") if role == "stop_loss" else None,
                created_ns=parent.created_ns, updated_ns=parent.updated_ns,
            )
            self.leg_ids[parent.account, leg.client_order_id] = str(uuid.uuid4())
            group.legs.append(leg)
        for member in group.members:
            self._groups[parent.account, member.client_order_id] = group
        if not group.held:
            group.legs = [self._release(leg) for leg in group.legs]
        return group

    def _held_for_exit(self, account: str, symbol: str, side: Side) -> Decimal:
        """The position an exit on `side` would close: long for a sell, short for a buy."""
        position = next((p.quantity for p in self.venue.positions(account) if p.symbol == symbol), Decimal(0))
        return position if side is Side.SELL else -position

    # --- queries ------------------------------------------------------------------------------
    def group_of(self, record: EmulatedOrder) -> Group | None:
        return self._groups.get((record.account, record.client_order_id))

    def held(self, account: str) -> list[EmulatedOrder]:
        """The legs of the account still held (not in the engine)."""
        groups = {id(g): g for (acc, _), g in self._groups.items() if acc == account}.values()
        return [leg for group in groups if group.held for leg in group.legs]

    def find_leg(self, account: str, *, order_id: str | None = None, client_order_id: str | None = None) -> EmulatedOrder | None:
        for (acc, coid), leg_id in self.leg_ids.items():
            if acc == account and (leg_id == order_id or coid == client_order_id):
                group = self._groups[acc, coid]
                return next(leg for leg in group.legs if leg.client_order_id == coid)
        return None

    # --- the group at work ----------------------------------------------------------------------
    def changed(self, record: EmulatedOrder) -> None:
        """Called after every reported change of an order: the group's reaction follows on the
        loop, as Alpaca's own does (not inside the change)."""
        group = self.group_of(record)
        if group is not None:
            asyncio.get_running_loop().call_soon(self._react, group, record)

    def cancel_held(self, leg: EmulatedOrder) -> None:
        """DELETE of a held leg: the group is cancelled (every remaining order of it)."""
        group = self.group_of(leg)
        if group is not None and group.parent.is_open:
            self.venue.cancel(group.parent)

    def _react(self, group: Group, record: EmulatedOrder) -> None:
        if record is group.parent and group.held:
            if record.status is OrderStatus.FILLED:
                group.held = False
                group.legs = [self._release(leg) for leg in group.legs]
            elif not record.is_open:  # ended before it was completely filled: the held legs go with it
                group.held = False
                for leg in group.legs:
                    leg.status, leg.updated_ns = OrderStatus.CANCELLED, record.updated_ns
                    self.publish(leg, "canceled")
            return
        exits = [o for o in group.members if o is not record and (group.order_class == "oco" or o is not group.parent)]
        if record is group.parent and group.order_class != "oco":
            return
        for other in exits:
            if not other.is_open:
                continue
            if record.status is OrderStatus.PARTIALLY_FILLED:
                remaining = record.quantity - record.filled
                if other.quantity != remaining:
                    self.venue.modify(other, quantity=remaining)
            elif not record.is_open:  # filled, or cancelled: "any remaining open order in the group is canceled"
                self.venue.cancel(other)

    def _release(self, leg: EmulatedOrder) -> EmulatedOrder:
        """Put a held leg to work in the engine, under the same ids."""
        placed = self.venue.place(
            leg.account, client_order_id=leg.client_order_id, symbol=leg.symbol, side=leg.side,
            order_type=leg.order_type, quantity=leg.quantity, price=leg.price, stop_price=leg.stop_price,
            time_in_force=leg.time_in_force if leg.time_in_force is not TimeInForce.IOC else TimeInForce.GTC,
        )
        placed.created_ns = leg.created_ns
        return placed
