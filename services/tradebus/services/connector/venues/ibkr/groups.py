"""Order groups as TWS holds them (TWS API docs, "Bracket Orders", "Attaching Orders", "One
Cancels All"), and back:

- BRACKET: the entry, then its exits with `parentId` = the entry's order id. Every order but
  the last is sent with `transmit=False`: TWS keeps them until the last arrives and then sends
  them all, so no exit can work without its entry nor the entry without its exits. The exits
  also share an OCA group (`ocaGroup` = our group id, `ocaType` 1: cancel the others, with
  block), so a fill of one (even partial) cancels the other.
- OTO: the second order with `parentId` = the first's; it works once the first has filled.
  It carries the group id as a one-order OCA group: that is how the group is read back.
- OCO: both orders in one OCA group, `ocaType` 1, each transmitted at once.

Reading back (after a reconnect, or for a leg the journal lacks): `ocaGroup` names the group
(an entry or OTO first takes its children's), `parentId` the order a child waits for; a
cancelled order is `contingent` when an order of its OCA group has fills or its parent ended
without its complete fill.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ib_async import Order, Trade

from tradebus.schemas.commands import PlaceOrder, PlaceOrderGroup
from tradebus.schemas.values import GroupKind

from . import parsing

CANCEL_WITH_BLOCK = 1  # ocaType 1: the other orders of the group are cancelled at the first fill
# Our group ids (schemas RequestId): another program's OCA group name is not taken for one.
GROUP_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")


def ib_orders(group: PlaceOrderGroup, legs: Sequence[PlaceOrder], account: str, parent_id: int) -> list[Order]:
    """IB's orders for the `legs` of `group` still to send, in sending order; `parent_id`: the
    order id of the group's first order (sent now, or already at TWS), 0 for an OCO (ib_async
    numbers each order as it sends it)."""
    orders = []
    for leg in legs:
        order = parsing.order(leg, account)
        if group.kind is GroupKind.OCO or group.contingent_on(leg) is not None:
            order.ocaGroup, order.ocaType = group.group_id, CANCEL_WITH_BLOCK
        if leg.client_order_id == group.first.client_order_id:
            order.orderId = parent_id
        elif group.contingent_on(leg) is not None:
            order.parentId = parent_id
        orders.append(order)
    if group.kind is not GroupKind.OCO:  # the bracket is sent by its last order (TWS API "Bracket Orders")
        for order in orders[:-1]:
            order.transmit = False
    return orders


def links(trade: Trade, trades: Sequence[Trade]) -> parsing.GroupLinks:
    """The group of an order of ours, as TWS shows it."""
    order = trade.order
    if not order.orderRef:
        return parsing.NO_GROUP
    parent = _parent(order, trades) if order.parentId or order.parentPermId else None
    children = [t for t in trades if order.orderId and _same_client(t.order, order) and t.order.parentId == order.orderId]
    names = [order.ocaGroup, *(child.order.ocaGroup for child in children)]
    group_id = next((name for name in names if GROUP_ID.fullmatch(name or "")), None)
    if group_id is None:
        return parsing.NO_GROUP
    cancelled = trade.orderStatus.status in ("Cancelled", "ApiCancelled")
    peer_filled = any(_filled(t) for t in trades if t is not trade and order.ocaGroup
                      and t.order.ocaGroup == order.ocaGroup and t.order.account == order.account)
    # a parent that ended without its complete fill takes its waiting children with it
    parent_ended = parent is not None and parent.orderStatus.status in parsing.DONE - {"Filled"}
    return parsing.GroupLinks(group_id=group_id,
                              contingent_on=parsing.client_order_id(parent) if parent is not None else None,
                              cancelled_by_group=cancelled and (peer_filled or parent_ended))


def _filled(trade: Trade) -> bool:
    """Whether TWS reported any fill of the order (its executions, or its status's count)."""
    return bool(trade.fills) or trade.orderStatus.filled > 0 or trade.orderStatus.status == "Filled"


def _parent(order: Order, trades: Sequence[Trade]) -> Trade | None:
    """By order id while TWS reports them (openOrder); a finished order (completedOrder) names
    its parent by its permanent id only."""
    return next((t for t in trades if (_same_client(t.order, order) and t.order.orderId == order.parentId)
                 or (order.parentPermId and t.order.permId == order.parentPermId)), None)


def _same_client(one: Order, other: Order) -> bool:
    return one.clientId == other.clientId
