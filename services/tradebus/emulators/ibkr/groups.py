"""Orders that wait for other orders, as TWS keeps them (TWS API docs, "Bracket Orders" and
"One Cancels All (OCA)"):

- `transmit=False`: TWS keeps the order untransmitted until an order of its bracket is sent
  with `transmit=True` (a bracket's last child); nothing is reported of it before.
- `parentId`: a child works only once its parent has filled; until then TWS shows it
  PreSubmitted. A parent cancelled takes its waiting children with it.
- A parent ending without its complete fill (cancelled, expired, rejected) takes its waiting
  children with it: IB activates a bracket's children once the parent has filled (this
  emulator: completely; a partial fill does not release them).
- Orders sharing an `ocaGroup` are one OCA group ("One Cancels All"), as are the children of one
  parent. A fill of one acts on the others by the group's `ocaType`: 1 cancels them (even at a
  partial fill); 2 and 3 (TWS's default, as openOrder reports it) reduce them proportionately,
  which cancels them when the order completes. The "block" of types 1 and 2 (overfill
  protection: one order at a time at the exchange) is not modelled; the engine fills one
  order at a time anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ..venue import EmulatedFill, EmulatedOrder, Refused
from .render import IbOrder

if TYPE_CHECKING:
    from .app import IbkrEmulator

CANCEL_WITH_BLOCK = 1  # ocaType 1; 2 and 3 reduce the others


@dataclass(frozen=True)
class Terms:
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce


class Groups:
    def __init__(self, emulator: IbkrEmulator) -> None:
        self.emulator = emulator
        self.waiting: dict[str, tuple[Terms, EmulatedOrder]] = {}  # engine id -> terms, the record TWS shows
        self.untransmitted: set[str] = set()
        self.ended: dict[str, EmulatedOrder] = {}  # cancelled while waiting: never at the engine


    def record(self, engine_id: str) -> EmulatedOrder | None:
        held = self.waiting.get(engine_id)
        return held[1] if held is not None else self.ended.get(engine_id)

    def resize(self, engine_id: str, quantity: Decimal) -> None:
        terms, _ = self.waiting[engine_id]
        self.amend(engine_id, quantity, terms.price, terms.stop_price)

    def amend(self, engine_id: str, quantity: Decimal, price: Decimal | None, stop_price: Decimal | None) -> None:
        """A waiting order's new terms (a modify, or its OCA group reducing it)."""
        terms, record = self.waiting[engine_id]
        record.quantity, record.price, record.stop_price = quantity, price, stop_price
        self.waiting[engine_id] = (replace(terms, quantity=quantity, price=price, stop_price=stop_price), record)

    def submit(self, engine_id: str, ib: IbOrder, terms: Terms) -> None:
        """Place, hold or release an order; Refused when the engine refuses one placed now."""
        parent = self._parent(ib) if ib.parent_id else None
        if parent is not None:
            ib.parent_perm_id = self.emulator.orders[parent].perm_id
        if not ib.transmit:
            self._hold(engine_id, ib, terms)
            self.untransmitted.add(engine_id)
            return
        for key in self._bracket(ib):
            if key in self.untransmitted:  # (a refused parent cancels its children as it goes)
                self.untransmitted.discard(key)
                self._release(key)
        if ib.parent_id and self._parent(ib) is None:
            raise Refused(RejectReason.VENUE_REJECTED, "its parent order is not open")
        if ib.parent_id and not self._parent_filled(ib):
            self._hold(engine_id, ib, terms)
            self._report(engine_id)
        else:
            self._start(engine_id, terms)

    def cancel(self, engine_id: str) -> None:
        """A waiting order cancelled: by its client, its parent's cancel, or its OCA group."""
        terms, record = self.waiting.pop(engine_id)
        self.untransmitted.discard(engine_id)
        self.ended[engine_id] = record
        record.status = OrderStatus.CANCELLED
        self.emulator.orders[engine_id].held = False
        self.emulator.report(record)

    def changed(self, order: EmulatedOrder, fill: EmulatedFill | None) -> None:
        """An order changed: a filled parent starts its children, one that ended otherwise
        takes them with it; a fill acts on its OCA group."""
        ib = self.emulator.orders.get(order.client_order_id)
        if ib is None:
            return
        if not order.is_open:
            children = [key for key in self.waiting if self._is_child(key, ib) and key not in self.untransmitted]
            for key in children:
                if order.status is OrderStatus.FILLED:
                    terms, _ = self.waiting.pop(key)
                    self.emulator.orders[key].held = False
                    self._start(key, terms)
                else:
                    self.cancel(key)
        if fill is not None:
            self._one_cancels_all(order, ib, fill)

    def _one_cancels_all(self, order: EmulatedOrder, ib: IbOrder, fill: EmulatedFill) -> None:
        peers = [key for key, peer in list(self.emulator.orders.items())
                 if key != order.client_order_id and self._same_group(ib, peer)]
        for key in peers:
            peer = self.emulator.record(key)
            if not peer.is_open:
                continue
            if ib.oca_type == CANCEL_WITH_BLOCK or order.status is OrderStatus.FILLED:
                self.emulator.cancel(key)
            else:
                self.emulator.resize(key, peer.quantity - fill.quantity * peer.quantity / order.quantity)

    # --- helpers ---------------------------------------------------------------------------------
    def _hold(self, engine_id: str, ib: IbOrder, terms: Terms) -> None:
        ib.held = True
        self.waiting[engine_id] = (terms, EmulatedOrder(
            order_id=0, client_order_id=engine_id, account=ib.account, symbol=terms.symbol, side=terms.side,
            order_type=terms.order_type, time_in_force=terms.time_in_force, quantity=terms.quantity,
            price=terms.price, stop_price=terms.stop_price))

    def _release(self, engine_id: str) -> None:
        ib = self.emulator.orders[engine_id]
        if ib.parent_id and not self._parent_filled(ib):
            self._report(engine_id)
            return
        terms, _ = self.waiting.pop(engine_id)
        ib.held = False
        try:
            self._start(engine_id, terms)
        except Refused as exc:
            self.emulator.refuse(ib, exc)
            del self.emulator.orders[engine_id]
            for child in [key for key in self.waiting if self._is_child(key, ib)]:
                self.untransmitted.discard(child)
                self.cancel(child)

    def _start(self, engine_id: str, terms: Terms) -> None:
        """The order works: at the engine, or as a TRAIL this emulator follows (trailing.py)."""
        if terms.order_type is OrderType.TRAILING_STOP:
            self.emulator.trailing.start(engine_id, terms)
            return
        ib = self.emulator.orders[engine_id]
        self.emulator.venue.place(ib.account, client_order_id=engine_id, symbol=terms.symbol, side=terms.side,
                                  order_type=terms.order_type, quantity=terms.quantity, price=terms.price,
                                  stop_price=terms.stop_price, time_in_force=terms.time_in_force)

    def _report(self, engine_id: str) -> None:
        self.emulator.report(self.waiting[engine_id][1])

    def _parent(self, ib: IbOrder) -> str | None:
        return next((key for key, other in self.emulator.orders.items()
                     if other.client_id == ib.client_id and other.order_id == ib.parent_id), None)

    def _parent_filled(self, ib: IbOrder) -> bool:
        parent = self._parent(ib)
        return parent is not None and parent not in self.waiting and \
            self.emulator.record(parent).status is OrderStatus.FILLED

    def _bracket(self, ib: IbOrder) -> list[str]:
        """The untransmitted orders this one sends: its parent first, then the parent's children."""
        root = self._parent(ib) if ib.parent_id else None
        head = [root] if root is not None else []
        parent = self.emulator.orders[root] if root is not None else ib
        return head + [key for key in self.waiting if self._is_child(key, parent)]

    def _is_child(self, key: str, parent: IbOrder) -> bool:
        other = self.emulator.orders[key]
        return other.parent_id == parent.order_id and other.client_id == parent.client_id and parent.order_id != 0

    @staticmethod
    def _same_group(ib: IbOrder, other: IbOrder) -> bool:
        if ib.oca_group and other.oca_group == ib.oca_group and other.account == ib.account:
            return True
        return bool(ib.parent_id) and (other.parent_id, other.client_id) == (ib.parent_id, ib.client_id)
