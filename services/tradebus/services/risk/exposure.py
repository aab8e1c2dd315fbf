"""What the risk gate knows of the world: orders it let through and not yet finished,
positions, today's pnl and the last quote of every instrument (the commands it decided are
ledger.py's). Pure state, fed from the ROUTE and EVENTS streams (replayed from their start when
the service starts, then live) and from market data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebus.schemas.commands import PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import (
    TERMINAL_EVENTS,
    CancelAllDone,
    CommandRejected,
    FillEventBase,
    OrderEvent,
    OrderModified,
    OrderRejected,
    PositionUpdate,
)
from tradebus.schemas.market import Quote
from tradebus.schemas.values import Side

NS_PER_DAY = 86_400 * 1_000_000_000
RISK_EVENT_PREFIX = "risk:"  # event ids of risk's own rejections: "risk:<command dedupe id>"
ZERO = Decimal(0)


@dataclass(slots=True)
class WorkingOrder:
    """An order risk routed that the venue has not finished: it still counts against limits."""

    symbol: str
    side: Side
    quantity: Decimal
    cum_quantity: Decimal = ZERO

    @property
    def leaves(self) -> Decimal:
        return max(ZERO, self.quantity - self.cum_quantity)


@dataclass(slots=True)
class Holding:
    quantity: Decimal
    avg_price: Decimal
    realized: Decimal
    baseline_day: int  # the UTC day `baseline` belongs to
    baseline: Decimal  # realized pnl at the start of that day


class Exposure:
    def __init__(self) -> None:
        self.orders: dict[tuple[str, str, str], WorkingOrder] = {}  # (venue, account, client order id)
        self.holdings: dict[tuple[str, str, str], Holding] = {}  # (venue, account, symbol)
        self.quotes: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}  # (venue, symbol) -> (bid, ask)
        self._open: dict[tuple[str, str], int] = {}  # (venue, account) -> how many of `orders`
        # A routed group's contingent orders, by the order they wait for (venue, account,
        # client order id): they count once it fills, and never if it ends without a fill.
        self.waiting: dict[tuple[str, str, str], list[PlaceOrder]] = {}

    # --- feeding ---------------------------------------------------------------------------
    def on_routed(self, place: PlaceOrder) -> None:
        key = (place.venue, place.account, place.client_order_id)
        if key not in self.orders:
            self.orders[key] = WorkingOrder(place.symbol, place.side, place.quantity)
            account = (place.venue, place.account)
            self._open[account] = self._open.get(account, 0) + 1

    def on_routed_group(self, group: PlaceOrderGroup) -> None:
        """The orders that work at once count now; the contingent ones wait for the first."""
        contingent = group.contingent
        for order in group.placed_orders():
            if order.client_order_id not in {leg.client_order_id for leg in contingent}:
                self.on_routed(order)
        if contingent:
            self.waiting.setdefault((group.venue, group.account, group.first.client_order_id), contingent)

    def on_order_event(self, event: OrderEvent) -> None:
        if isinstance(event, (CommandRejected, CancelAllDone)):
            return  # answers to commands; the orders they concern have events of their own
        key = (event.venue, event.account, event.client_order_id)
        if key in self.waiting:
            self._release_waiting(key, event)
        if isinstance(event, (*TERMINAL_EVENTS, OrderRejected)):
            if self.orders.pop(key, None) is not None:
                self._open[(event.venue, event.account)] -= 1
            return
        order = self.orders.get(key)
        if order is None:
            return
        if isinstance(event, FillEventBase):
            order.cum_quantity = event.cum_quantity
        elif isinstance(event, OrderModified):
            order.quantity = event.quantity

    def _release_waiting(self, key: tuple[str, str, str], event: OrderEvent) -> None:
        """The contingent orders start working with their first order's first fill, and are
        dropped when it ends without one (the venue cancels them)."""
        if isinstance(event, FillEventBase):
            for order in self.waiting.pop(key):
                self.on_routed(order)
        elif isinstance(event, (*TERMINAL_EVENTS, OrderRejected)):
            del self.waiting[key]

    def on_position(self, update: PositionUpdate) -> None:
        key = (update.venue, update.account, update.symbol)
        day = update.ts_event // NS_PER_DAY
        held = self.holdings.get(key)
        previous = held.realized if held else ZERO
        if held is not None and held.baseline_day == day:
            baseline_day, baseline = held.baseline_day, held.baseline
        else:  # first change of a new day: what was realized before it is the day's baseline
            baseline_day, baseline = day, previous
        self.holdings[key] = Holding(update.quantity, update.avg_price, update.realized_pnl, baseline_day, baseline)

    def on_quote(self, quote: Quote) -> None:
        self.quotes[(quote.venue, quote.symbol)] = (quote.bid, quote.ask)

    # --- questions -------------------------------------------------------------------------
    def mid(self, venue: str, symbol: str) -> Decimal | None:
        quote = self.quotes.get((venue, symbol))
        return None if quote is None else (quote[0] + quote[1]) / 2

    def open_orders(self, venue: str, account: str) -> int:
        return self._open.get((venue, account), 0)  # counted, not scanned: asked for every order

    def position(self, venue: str, account: str, symbol: str) -> Decimal:
        held = self.holdings.get((venue, account, symbol))
        return held.quantity if held else ZERO

    def working(self, venue: str, account: str, symbol: str, side: Side) -> Decimal:
        """What the account's open orders on one side could still add to its position."""
        return sum(
            (order.leaves for (v, a, _), order in self.orders.items()
             if v == venue and a == account and order.symbol == symbol and order.side is side),
            ZERO,
        )

    def daily_pnl(self, account: str, now: int) -> Decimal:
        """Realized pnl since UTC midnight plus unrealized pnl of open positions at the mid.
        Fees are not included (they are cash movements, see the BalanceUpdate events)."""
        today = now // NS_PER_DAY
        total = ZERO
        for (venue, held_account, symbol), held in self.holdings.items():
            if held_account != account:
                continue
            if held.baseline_day == today:
                total += held.realized - held.baseline
            mid = self.mid(venue, symbol)
            if held.quantity and mid is not None:
                total += held.quantity * (mid - held.avg_price)
        return total
