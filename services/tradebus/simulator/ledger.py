"""The simulated exchange's ledger: cash, positions and fees.

Margin-account style: one cash balance per currency and a signed position per instrument,
no base-currency balance. A buy debits price x quantity + fee from the quote currency, a
sell credits price x quantity - fee. Fees come from the venue's schedule (rules.FillFees:
price x quantity x bps / 10000 exactly at the maker or taker rate, or an itemized schedule
such as India's), charged in the quote currency and never in the pnl. Realized pnl accrues on
reductions against the average entry price. Average prices are rounded to at most 12
decimal places. Each fill emits the fill event, a BalanceUpdate of the quote currency and a
PositionUpdate. `available` moves with placements and cancels too, which emit no
BalanceUpdate: `balance` is always current.
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

from tradebus.schemas.events import Balance, BalanceUpdate, Fill, OrderFilled, OrderPartiallyFilled, PositionUpdate
from tradebus.schemas.values import LiquiditySide, OrderType, RejectReason, Side
from tradebus.services.connector.accounts import apply_fill, round_price

from .book import OrderBook
from .events import EventBuilder
from .groups import Groups
from .rules import FillTerms, Violation
from .state import ZERO, Core, Event, Order, Position


class Ledger:
    def __init__(self, core: Core, events: EventBuilder, book: OrderBook, groups: Groups) -> None:
        self._core = core
        self._events = events
        self._book = book
        self._groups = groups

    def fill(self, order: Order, price: Decimal, quantity: Decimal, liquidity: LiquiditySide) -> list[Event]:
        core = self._core
        spec = core.instruments[order.symbol]
        core.state.trade_count += 1
        fee, detail = core.fees.charge(
            FillTerms(spec, order.side, price, quantity, liquidity, order_notional=order.cum_notional, now=core.now)
        )
        fill = Fill(
            trade_id=f"T{core.state.trade_count}",
            side=order.side,
            price=price,
            quantity=quantity,
            fee=fee,
            fee_currency=spec.quote,
            liquidity=liquidity,
            fee_detail=detail,
        )
        self.settle(order, fill)
        fill_event = self._events.order_event(
            OrderPartiallyFilled if order.is_open else OrderFilled,
            order,
            fill=fill,
            cum_quantity=order.cum_quantity,
            leaves_quantity=order.leaves,
            avg_price=round_price(order.cum_notional / order.cum_quantity),
        )
        return [
            fill_event,
            self.balance_update(order.account, spec.quote),
            self.report_position(order.account, order.symbol),
            *self._groups.cancel_peers(order),
        ]

    def settle(self, order: Order, fill: Fill) -> None:
        """What a fill changes: the order's cumulative terms (it closes once nothing is left),
        the quote currency's cash and the position."""
        account = self._core.state.accounts[order.account]
        quote = self._core.instruments[order.symbol].quote
        notional = fill.price * fill.quantity
        order.cum_quantity += fill.quantity
        order.cum_notional += notional
        if order.leaves == 0:
            self._book.close(order)
        buy = order.side is Side.BUY
        account.cash[quote] = account.cash.get(quote, ZERO) + (-(notional + fill.fee) if buy else notional - fill.fee)
        position = account.positions.setdefault(order.symbol, Position())
        apply_fill(position, fill.quantity if buy else -fill.quantity, fill.price)

    def balance_update(self, account: str, currency: str) -> BalanceUpdate:
        now = self._core.now
        return BalanceUpdate(
            event_id=self._events.account_event_id(account),
            venue=self._core.venue,
            account=account,
            balances=[self.balance(account, currency)],
            ts_event=now,
            ts_recv=now,
        )

    def report_position(self, account: str, symbol: str) -> PositionUpdate:
        """A PositionUpdate of the position as it is now, under a new event id."""
        position = self._core.state.accounts[account].positions[symbol]
        position.event_id = self._events.account_event_id(account)
        position.ts = self._core.now
        return self._events.position_event(account, symbol, position)

    def balance(self, account: str, currency: str) -> Balance:
        total = self._core.state.accounts[account].cash.get(currency, ZERO)
        return Balance(currency=currency, total=total, available=self.available(account, currency))

    def available(self, account: str, currency: str, excluding: Collection[Order] = ()) -> Decimal:
        """Cash minus what the account's open buys in `currency` may spend. A market order is
        open only while it takes, and has spent what it fills by then: it locks nothing; nor
        does an order held for its group (it is not working)."""
        instruments = self._core.instruments
        locked = sum(
            (
                self.locked_by(o, o.leaves, o.price, o.stop_price)
                for o in self._book.open(account=account, side=Side.BUY, excluding=excluding)
                if o.order_type is not OrderType.MARKET and not o.held and instruments[o.symbol].quote == currency
            ),
            ZERO,
        )
        return self._core.state.accounts[account].cash.get(currency, ZERO) - locked

    def locked_by(self, order: Order, leaves: Decimal, price: Decimal | None, stop_price: Decimal | None) -> Decimal:
        """The most a buy of `leaves` may cost as a taker, at the limit price if it has one,
        else at the slipped stop price or best ask."""
        spec = self._core.instruments[order.symbol]
        if price is None:
            reference = self._book.reference_price(order, price, stop_price)
            price = self._book.slipped(spec, order.side, reference)
        notional = leaves * price
        return notional + self._core.fees.most(spec, notional, self._core.now)

    def afford(
        self,
        order: Order,
        leaves: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        excluding: Collection[Order],
    ) -> Violation | None:
        """Whether the account can carry `leaves` more of `order` besides its other open orders
        but `excluding` (the order itself, and its group peers, which can never fill both):
        a buy its cost, a sell, without short selling, its quantity."""
        quote = self._core.instruments[order.symbol].quote
        if order.side is Side.BUY:
            cost = self.locked_by(order, leaves, price, stop_price)
            available = self.available(order.account, quote, excluding=excluding)
            if cost > available:
                return Violation(RejectReason.INSUFFICIENT_FUNDS, f"costs up to {cost} {quote}, {available} available")
        elif not self._core.allow_short:
            other_sells = self._book.open(account=order.account, symbol=order.symbol, side=Side.SELL, excluding=excluding)
            pending = sum((o.leaves for o in other_sells if not o.held), ZERO)
            sellable = self.position_quantity(order) - pending
            if leaves > sellable:
                return Violation(RejectReason.INSUFFICIENT_FUNDS, f"only {sellable} can be sold, short selling is off")
        return None

    def position_quantity(self, order: Order) -> Decimal:
        """The signed position of the order's account in its instrument."""
        position = self._core.state.accounts[order.account].positions.get(order.symbol)
        return ZERO if position is None else position.quantity

    def reducible(self, order: Order) -> Decimal:
        """How much of the position an order on its side would reduce without flipping it."""
        position = self.position_quantity(order)
        return max(-position if order.side is Side.BUY else position, ZERO)

    def room(self, order: Order) -> Decimal:
        """How much the order may fill now."""
        return min(order.leaves, self.reducible(order)) if order.reduce_only else order.leaves
