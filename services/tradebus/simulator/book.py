"""The order book: each instrument's displayed book, and the venue's open orders on it.

`display` replaces a symbol's displayed book (bids best first, descending; asks ascending).
Orders fill only against the displayed book, never against each other (matching.py).
An order is open from its acceptance until its terminal event; DAY orders expire at the
first UTC midnight after acceptance, GTD orders at `expire_time`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from tradebus.schemas.events import OrderCancelled, OrderExpired, OrderModified
from tradebus.schemas.values import CancelReason, Side, TimeInForce

from .events import EventBuilder
from .rules import BPS, InstrumentSpec, ceil_to, floor_to
from .state import Book, BookLevel, Core, Event, Level, Order

NS_PER_DAY = 86_400 * 1_000_000_000


class OrderBook:
    def __init__(self, core: Core, events: EventBuilder) -> None:
        self._core = core
        self._events = events

    # -----------------------------------------------------------------------------------
    # Displayed books

    def display(self, symbol: str, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Replace the displayed book of `symbol` (KeyError if not an instrument of this venue)."""
        self._core.state.books[symbol].pending = (bids, asks)  # the book is only built when an order meets it

    def book(self, symbol: str) -> Book:
        """The displayed book of `symbol`, built from the latest levels if needed."""
        book = self._core.state.books[symbol]
        if book.pending is not None:
            bids, asks = book.pending
            book.pending = None
            book.bids = sorted((BookLevel(p, s) for p, s in bids if s > 0), key=lambda lv: lv.price, reverse=True)
            book.asks = sorted((BookLevel(p, s) for p, s in asks if s > 0), key=lambda lv: lv.price)
        return book

    def opposite_levels(self, order: Order) -> list[BookLevel]:
        book = self.book(order.symbol)
        return book.asks if order.side is Side.BUY else book.bids

    def crossing_levels(self, order: Order, limit: Decimal) -> list[BookLevel]:
        """The opposite levels an order at `limit` could take, best first."""
        if order.side is Side.BUY:
            return [level for level in self.opposite_levels(order) if level.price <= limit]
        return [level for level in self.opposite_levels(order) if level.price >= limit]

    def reference_price(self, order: Order, price: Decimal | None, stop_price: Decimal | None) -> Decimal:
        """The price an order is valued at: its limit, else its stop, else the best opposite
        price (callers have checked a market order's book is not empty)."""
        if price is not None:
            return price
        if stop_price is not None:
            return stop_price
        return self.opposite_levels(order)[0].price

    def slipped(self, spec: InstrumentSpec, side: Side, price: Decimal) -> Decimal:
        """`price` moved by the slippage against the taker, rounded to the tick against it
        (a sell never below one tick)."""
        slippage_bps = self._core.slippage_bps
        if side is Side.BUY:
            return ceil_to(price * (BPS + slippage_bps) / BPS, spec.tick_size)
        return max(floor_to(price * (BPS - slippage_bps) / BPS, spec.tick_size), spec.tick_size)

    # -----------------------------------------------------------------------------------
    # Open orders

    def any_open(self) -> bool:
        return any(self._core.state.open_orders.values())

    def open(
        self,
        *,
        account: str | None = None,
        symbol: str | None = None,
        side: Side | None = None,
        excluding: Collection[Order] = (),
    ) -> list[Order]:
        """Open orders, filtered by whatever is given, by symbol in acceptance order.
        A list, so callers may close orders while iterating."""
        state = self._core.state
        accounts = state.accounts
        symbols = [symbol] if symbol is not None else list(state.open_orders)
        orders = (
            accounts[owner].orders[client_order_id]
            for sym in symbols
            for owner, client_order_id in state.open_orders.get(sym, [])
            if account is None or owner == account
        )
        if not excluding:
            return [o for o in orders if side is None or o.side is side]
        excluded = {id(o) for o in excluding}  # by identity: equal terms are not the same order
        return [o for o in orders if (side is None or o.side is side) and id(o) not in excluded]

    def open_order(self, order: Order, venue_order_id: str) -> None:
        """Put an order accepted at `now` on the book."""
        now = self._core.now
        order.venue_order_id = venue_order_id
        order.is_open = True
        order.priority = self._next_priority()
        if order.time_in_force is TimeInForce.DAY:
            order.expires_at = (now // NS_PER_DAY + 1) * NS_PER_DAY
        elif order.time_in_force is TimeInForce.GTD:
            order.expires_at = order.expire_time
        self._core.state.open_orders[order.symbol].append((order.account, order.client_order_id))

    def change_terms(self, order: Order, quantity: Decimal, price: Decimal | None, stop_price: Decimal | None) -> None:
        # As on real venues, only a change that makes the order more aggressive or bigger
        # sends it to the back of its price level.
        if price != order.price or quantity > order.quantity:
            order.priority = self._next_priority()
        order.quantity, order.price, order.stop_price = quantity, price, stop_price

    def amend(self, order: Order, modify_id: str, quantity: Decimal, stop_price: Decimal | None) -> OrderModified:
        """The venue's own change of an order's terms (a trailing stop moving, an exit cut to
        what its entry filled), reported as an OrderModified under `modify_id`."""
        self.change_terms(order, quantity, order.price, stop_price)
        self._core.state.accounts[order.account].remember_modify(order.client_order_id, modify_id)
        modified: OrderModified = self._events.order_event(
            OrderModified, order, modify_id=modify_id, quantity=quantity, price=order.price, stop_price=stop_price
        )
        return modified

    def _next_priority(self) -> int:
        self._core.state.priority_count += 1
        return self._core.state.priority_count

    def expire_due(self) -> list[Event]:
        return [
            self.close_with(OrderExpired, order, cum_quantity=order.cum_quantity)
            for order in self.open()
            if order.expires_at is not None and self._core.now >= order.expires_at
        ]

    def close_with(self, event_type: type[Any], order: Order, **fields: Any) -> Any:
        """Take the order off the book, and emit its terminal event."""
        self.close(order)
        return self._events.order_event(event_type, order, **fields)

    def close(self, order: Order) -> None:
        order.is_open = False
        order.held = False  # only an open order waits
        self._core.state.open_orders[order.symbol].remove((order.account, order.client_order_id))
        if order.group_id is not None:  # its group may have to follow (groups.py)
            self._core.ended.append(order)

    def cancel(self, order: Order, reason: CancelReason) -> OrderCancelled:
        cancelled: OrderCancelled = self.close_with(
            OrderCancelled, order, reason=reason, cum_quantity=order.cum_quantity
        )
        return cancelled
