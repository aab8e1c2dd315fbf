"""Matching: how orders take and rest against the displayed book.

Market data
    Each market update and each command first expires DAY and GTD orders whose time has
    come, so an expired order never fills on a later book. A market update then triggers
    stops, then fills resting limit orders.

Liquidity
    Orders fill only against the displayed book, never against each other. Every fill, taker
    or maker, consumes the displayed size it used until the next market update replaces the
    book, so two orders cannot take the same liquidity. Fill quantities are rounded down to
    the lot size.

Taking and resting
    Market orders (any time in force behaves as IOC) take the book level by level, each
    fill price moved `slippage_bps` against the order and rounded to the tick adversely;
    the remainder is cancelled (IOC_REMAINDER). Limit orders take crossing levels at the
    level price, never through the limit; the rest rests (GTC, DAY, GTD) or is cancelled
    (IOC_REMAINDER). FOK cancels with FOK_UNFILLABLE, no fill, unless the crossable size
    covers the whole quantity. A resting buy at P fills as maker at P against asks at or
    below P and a trade print strictly below P (up to its size); sells symmetrically.
    Resting orders fill in price-time priority; a price change or a quantity increase
    loses time priority.

Stops
    A buy stop triggers when the best ask or a trade print reaches the stop price (>=), a
    sell stop when the best bid or a print does (<=), including at placement or modify.
    OrderTriggered, then a stop works as a market order (cancelled with NO_LIQUIDITY if
    the opposite side is empty) and a stop-limit as a limit order at its price.
    A trailing stop triggers the same way, then works as a market order; its stop follows
    those same prices (trailing.py). Each market update first checks the stop in force,
    then moves it: a stop never triggers on the update that moved it. Every move is an
    OrderModified (modify id `trail`), the first at placement from the current book.

Groups
    Orders held for their group (groups.py) neither fill nor trigger. A fill cancels the
    filled order's peers at once; an order done (filled, cancelled, expired) releases or
    cancels the orders waiting for it at the end of the call, after everything else the
    call did.

Reduce-only
    A reduce-only order never fills beyond the current position; when, at a fill, there is
    nothing left to reduce, it is cancelled (reason VENUE).
"""

from __future__ import annotations

from decimal import Decimal

from tradebus.schemas.events import OrderTriggered
from tradebus.schemas.values import CancelReason, LiquiditySide, OrderType, Side, TimeInForce

from .book import OrderBook
from .events import EventBuilder
from .groups import Groups
from .ledger import Ledger
from .rules import floor_to
from .state import ZERO, Book, Core, Event, Level, Order, exact
from .trailing import followed_price, improves, trailing_stop

TRAIL_MODIFY_ID = "trail"  # OrderModified.modify_id of a trailing stop's move


class Matcher:
    def __init__(self, core: Core, events: EventBuilder, book: OrderBook, ledger: Ledger, groups: Groups) -> None:
        self._core = core
        self._events = events
        self._book = book
        self._ledger = ledger
        self._groups = groups

    @exact
    def work_open_orders(self, symbol: str, trade: Level | None) -> list[Event]:
        """What a new displayed book of `symbol` (and trade print) does to the open orders."""
        self._core.now = self._core.clock()
        events = self._book.expire_due()
        book = self._book.book(symbol)
        # Taken before triggering: a stop-limit triggered by this update was not resting
        # when it happened, so it does not also fill as maker against it.
        resting = [o for o in self._book.open(symbol=symbol) if not o.is_pending_stop and not o.held]
        for order in self._book.open(symbol=symbol):
            if not order.is_pending_stop or order.held or not order.is_open:  # a peer's fill may have closed it
                continue
            if self._stop_reached(order, trade):
                events += self._trigger(order)
            elif order.order_type is OrderType.TRAILING_STOP:
                events += self._follow(order, trade)
        events += self._fill_resting(resting, book, trade)
        return events + self.follow_groups()

    def work(self, order: Order) -> list[Event]:
        """Make a just accepted, modified, released or triggered order act on the current book."""
        if order.held:
            return []
        if order.is_pending_stop:
            if self._stop_reached(order, None):
                return self._trigger(order)
            return self._follow(order, None) if order.order_type is OrderType.TRAILING_STOP else []
        if order.is_market_like:
            if not self._book.opposite_levels(order):
                return [self._book.cancel(order, CancelReason.NO_LIQUIDITY)]
            events = self._take(order, limit=None)
        else:
            assert order.price is not None
            if order.time_in_force is TimeInForce.FOK and self._fillable(order, order.price) < order.leaves:
                return [self._book.cancel(order, CancelReason.FOK_UNFILLABLE)]
            events = self._take(order, limit=order.price)
        if order.is_open and order.cannot_rest:
            events.append(self._book.cancel(order, CancelReason.IOC_REMAINDER))
        return events

    def follow_groups(self) -> list[Event]:
        """What the grouped orders closed during this call do to the orders waiting for them."""
        events: list[Event] = []
        ended = self._core.ended
        while ended:
            first = ended.pop(0)
            for order in self._groups.waiting_for(first):
                if not (order.is_open and order.held):
                    continue
                if first.cum_quantity == 0:
                    events.append(self._book.cancel(order, CancelReason.CONTINGENT))
                else:
                    events += self._release(order, first)
        return events

    def _release(self, order: Order, first: Order) -> list[Event]:
        events = self._groups.release(order, first)
        if order.order_type is not OrderType.MARKET or self._book.opposite_levels(order):  # else: no liquidity
            peers = [order, *self._groups.peers(order)]
            if self._ledger.afford(order, order.leaves, order.price, order.stop_price, peers) is not None:
                return [*events, self._book.cancel(order, CancelReason.VENUE)]
        if order.post_only and order.price is not None and self._book.crossing_levels(order, order.price):
            return [*events, self._book.cancel(order, CancelReason.POST_ONLY_WOULD_TAKE)]
        return [*events, *self.work(order)]

    def _follow(self, order: Order, trade: Level | None) -> list[Event]:
        """Move a trailing stop after the best price this update shows (trailing.py)."""
        best = followed_price(order, self._book.book(order.symbol), trade)
        if best is None:
            return []
        stop = trailing_stop(order, best, self._core.instruments[order.symbol].tick_size)
        if stop is None or not improves(order, stop):
            return []
        return [self._book.amend(order, TRAIL_MODIFY_ID, order.quantity, stop)]

    def _trigger(self, order: Order) -> list[Event]:
        order.triggered = True
        return [self._events.order_event(OrderTriggered, order), *self.work(order)]

    def _take(self, order: Order, *, limit: Decimal | None) -> list[Event]:
        """Fill as taker level by level, at the level price (limit orders) or the slipped
        level price (market-like orders, `limit` None)."""
        spec = self._core.instruments[order.symbol]
        levels = self._book.opposite_levels(order)
        events: list[Event] = []
        for level in levels if limit is None else self._book.crossing_levels(order, limit):
            room = self._ledger.room(order)
            if room == 0:
                break
            quantity = min(room, floor_to(level.size, spec.lot_size))
            if quantity == 0:
                continue
            level.size -= quantity
            price = level.price if limit is not None else self._book.slipped(spec, order.side, level.price)
            events += self._ledger.fill(order, price, quantity, LiquiditySide.TAKER)
        levels[:] = [level for level in levels if level.size > 0]
        return events

    def _fillable(self, order: Order, limit: Decimal) -> Decimal:
        """What `_take` would fill at most: the same per-level lot rounding."""
        lot = self._core.instruments[order.symbol].lot_size
        crossing = self._book.crossing_levels(order, limit)
        return min(self._ledger.room(order), sum((floor_to(lv.size, lot) for lv in crossing), ZERO))

    def _fill_resting(self, resting: list[Order], book: Book, trade: Level | None) -> list[Event]:
        """Maker fills of resting limit orders against a new book and trade print."""
        # A print of size s had a seller and a buyer of s: resting buys share the seller's
        # side of it, resting sells the buyer's.
        trade_left = {Side.BUY: trade[1], Side.SELL: trade[1]} if trade is not None else {}
        events: list[Event] = []
        for order in sorted(resting, key=_price_time):
            if not order.is_open:  # cancelled by a peer's fill in this update
                continue
            assert order.price is not None
            crossing = self._book.crossing_levels(order, order.price)
            from_trade = trade_left[order.side] if trade is not None and _through(order, trade[0]) else ZERO
            lot = self._core.instruments[order.symbol].lot_size
            available = floor_to(sum((lv.size for lv in crossing), from_trade), lot)
            if available == 0:
                continue
            room = self._ledger.room(order)
            if room == 0:  # a reduce-only order with nothing left to reduce
                events.append(self._book.cancel(order, CancelReason.VENUE))
                continue
            quantity = min(room, available)
            left = quantity
            for level in crossing:
                used = min(left, level.size)
                level.size -= used
                left -= used
            if left:
                trade_left[order.side] -= left
            events += self._ledger.fill(order, order.price, quantity, LiquiditySide.MAKER)
        book.bids = [lv for lv in book.bids if lv.size > 0]
        book.asks = [lv for lv in book.asks if lv.size > 0]
        return events

    def _stop_reached(self, order: Order, trade: Level | None) -> bool:
        if order.stop_price is None:  # a trailing stop without a stop yet
            return False
        book = self._book.book(order.symbol)
        prices = [lv.price for lv in (book.asks if order.side is Side.BUY else book.bids)[:1]]
        if trade is not None:
            prices.append(trade[0])
        if order.side is Side.BUY:
            return any(p >= order.stop_price for p in prices)
        return any(p <= order.stop_price for p in prices)


def _price_time(order: Order) -> tuple[Decimal, int]:
    """Best price first (highest buy, lowest sell), then earliest."""
    assert order.price is not None
    return (-order.price if order.side is Side.BUY else order.price, order.priority)


def _through(order: Order, trade_price: Decimal) -> bool:
    """Whether a print traded strictly better than a resting order's price, so the order,
    quoting better, would have been the one filled."""
    assert order.price is not None
    return trade_price < order.price if order.side is Side.BUY else trade_price > order.price
