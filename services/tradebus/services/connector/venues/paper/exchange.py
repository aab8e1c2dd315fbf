"""The paper venue's simulated exchange: a matching engine against a displayed book, and an
account ledger. Pure Python, no I/O: the connector feeds it commands and market data and
publishes the wire events it returns, in order.

Market data
    `on_market` replaces a symbol's displayed book (bids best first, descending; asks
    ascending). The optional trade print counts only during that call. Each `on_market`
    and each `execute` first expires DAY orders (at the first UTC midnight after acceptance)
    and GTD orders (at `expire_time`) whose time has come, so an expired order never fills
    on a later book. `on_market` then triggers stops, then fills resting limit orders.

Liquidity
    Orders fill only against the displayed book, never against each other. Every fill, taker
    or maker, consumes the displayed size it used until the next `on_market` replaces the
    book, so two orders cannot take the same liquidity. Fill quantities are rounded down to
    the lot size.

Placing
    Refused with OrderRejected, checked in this order: unknown account (or venue),
    unknown instrument, GTD already expired, market order facing an empty book, tick size,
    lot size and minimum quantity, min notional (a market order at the best opposite price,
    a stop at its stop price), post-only that would cross, reduce-only that cannot reduce
    (it may neither open nor flip a position), buy costing more than the available cash
    (quantity x limit price, or slipped best ask / stop price, x (1 + taker fee); available =
    cash minus what open buys lock the same way), and, with `allow_short=False`, a sell
    larger than the position minus pending sells. A reused client order id changes nothing:
    with the terms its order was placed with, the place is that order's own (re-delivered,
    e.g. after a bus restart) and is answered with the order's latest event under its
    original id; with other terms it gets CommandRejected(DUPLICATE_CLIENT_ORDER_ID) naming
    them. Rejected orders count as used ids too (refused the same way, their terms unknown).
    Otherwise OrderAccepted comes first, then whatever happens at once.

Matching
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

Reduce-only
    A reduce-only order never fills beyond the current position; when, at a fill, there is
    nothing left to reduce, it is cancelled (reason VENUE).

Ledger
    Margin-account style: one cash balance per currency and a signed position per
    instrument, no base-currency balance. A buy debits price x quantity + fee from the quote
    currency, a sell credits price x quantity - fee. Fees are price x quantity x bps / 10000
    exactly (maker or taker rate), charged in the quote currency and never in the pnl.
    Realized pnl accrues on reductions against the average entry price. Average prices are
    rounded to at most 12 decimal places. Each fill emits the fill event, a BalanceUpdate
    of the quote currency and a PositionUpdate. `available` moves with placements and
    cancels too, which emit no BalanceUpdate: `balances()` is always current.

Modify and cancel
    Only open orders: an unknown one gets CommandRejected(UNKNOWN_ORDER), a terminal one
    ORDER_NOT_OPEN. A modify re-runs the placement checks on the new terms (the new quantity
    must also exceed the filled quantity; a price on an order without one is MALFORMED),
    emits OrderModified, then works the order again: a price that now crosses takes.

Event ids
    Order events: `{venue}.{account}.{client_order_id}.{n}`, n counting that order's events.
    Account events: `{venue}.{account}:account.{epoch}.{n}` (`:` cannot occur in a client order
    id, so these never collide with order event ids; `epoch` is when the venue was first
    created, kept across restores). CommandRejected: the command's dedupe id (action and
    modify/request id included) + `.rejected.{reason}`. Timestamps: one clock reading per
    call, as ts_event and ts_recv.

Journal
    The events this exchange returns, stored in order by the connector, are its journal:
    `restore` rebuilds a fresh exchange from them. Orders come back from OrderAccepted (their
    terms), fills (cumulative quantity and notional), OrderModified (terms, and time
    priority exactly as a live modify moves it), OrderTriggered and terminal events;
    rejected placements from OrderRejected (their client order ids stay used); cash from
    BalanceUpdate totals, positions from PositionUpdate. Venue order ids, trade ids and event
    ids continue after the highest seen, account event ids in the journal's epoch. Events
    this venue did not give (risk's rejections on the same subjects) and order events whose
    number was already applied (re-published by `reconcile`) change nothing; orders of
    accounts or instruments no longer configured are dropped. Books are not restored: the
    next `on_market` brings them.
    A crash can cut the journal inside one call's events. `restore` then returns what the
    venue still owes: the BalanceUpdate and PositionUpdate of a fill stored without them,
    and a cancel (reason VENUE) of every order whose work was cut short and may not rest
    (market, triggered stop, IOC, FOK).

Re-delivered commands
    A command re-delivered after a crash may have been executed already. `executed` answers
    from state the journal restores: a place whose client order id is used, a modify its
    (known) order recorded, applied or refused, a cancel of an order that is no longer open
    (whatever closed it, executing the cancel again could only add an ORDER_NOT_OPEN
    rejection). A cancel-all never counts as executed: running it again cancels only what is
    still open. `execute` itself never consults it: a place arriving as a new delivery is
    recognized by its terms (see Placing).

All state lives in `self._state`, plain msgspec Structs, so it can be snapshotted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import Any, TypeVar

import msgspec

from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    command_dedupe_id,
    terms_differences,
)
from tradebus.schemas.events import (
    AccountEvent,
    Balance,
    BalanceUpdate,
    CommandAction,
    CommandRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderEventBase,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
    PositionUpdate,
    cancel_all_done,
)
from tradebus.schemas.values import CancelReason, LiquiditySide, OrderType, RejectReason, Side, TimeInForce

from ...accounts import apply_fill, round_price
from .rules import BPS, DECIMAL_CONTEXT, FeeSchedule, InstrumentSpec, Violation, ceil_to, check_order, floor_to

Level = tuple[Decimal, Decimal]
"""(price, size) of a displayed book level, or of a trade print."""

Event = OrderEvent | AccountEvent

NS_PER_DAY = 86_400 * 1_000_000_000
ZERO = Decimal(0)
_STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)
_NEVER_REST = (TimeInForce.IOC, TimeInForce.FOK)


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A read-only view of an open order."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce
    expire_time: int | None
    post_only: bool
    reduce_only: bool
    triggered: bool
    cum_quantity: Decimal
    leaves_quantity: Decimal


# ---------------------------------------------------------------------------------------
# State: mutable plain data


class _Order(msgspec.Struct, kw_only=True):
    account: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce
    expire_time: int | None
    post_only: bool
    reduce_only: bool
    venue_order_id: str | None = None  # None until accepted; a rejected order keeps None
    is_open: bool = False
    triggered: bool = False
    expires_at: int | None = None
    priority: int = 0  # lower fills first among equal prices
    cum_quantity: Decimal = ZERO
    cum_notional: Decimal = ZERO
    event_count: int = 0
    last_event: OrderEvent | None = None  # what `reconcile` re-publishes
    accepted: OrderAccepted | None = None  # the terms it was placed with (a modify changes the ones above)
    modify_ids: list[str] = msgspec.field(default_factory=list)  # modifies answered, applied or refused

    @property
    def leaves(self) -> Decimal:
        return self.quantity - self.cum_quantity

    @property
    def is_market_like(self) -> bool:
        """Takes without a price limit once working: a market order, or a triggered stop."""
        return self.order_type is OrderType.MARKET or self.order_type is OrderType.STOP

    @property
    def cannot_rest(self) -> bool:
        """Once working, cancels whatever it did not take at once."""
        return self.is_market_like or self.time_in_force in _NEVER_REST


class _Position(msgspec.Struct, kw_only=True):
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    # Of the last PositionUpdate: `positions()` re-issues that event, so re-publishing an
    # unchanged position is de-duplicated on the bus.
    event_id: str = ""
    ts: int = 0


class _Account(msgspec.Struct, kw_only=True):
    cash: dict[str, Decimal]
    positions: dict[str, _Position] = msgspec.field(default_factory=dict)
    orders: dict[str, _Order] = msgspec.field(default_factory=dict)  # every order ever accepted
    rejected: dict[str, OrderRejected] = msgspec.field(default_factory=dict)  # refused placements
    event_count: int = 0


class _BookLevel(msgspec.Struct):
    price: Decimal
    size: Decimal


class _Book(msgspec.Struct, kw_only=True):
    bids: list[_BookLevel] = msgspec.field(default_factory=list)
    asks: list[_BookLevel] = msgspec.field(default_factory=list)
    # The latest levels as given, not yet turned into `bids`/`asks`: building the book is
    # most of the cost of a market update and is only needed when an order meets it.
    pending: tuple[Sequence[Level], Sequence[Level]] | None = None


class _State(msgspec.Struct, kw_only=True):
    # When this venue's books were first opened: part of account event ids, so that a fresh
    # venue (one without a journal) never reuses an id JetStream still remembers.
    epoch: int
    accounts: dict[str, _Account]
    books: dict[str, _Book]
    open_orders: dict[str, list[tuple[str, str]]]  # symbol -> (account, client order id)
    order_count: int = 0
    priority_count: int = 0
    trade_count: int = 0


class _Replay(msgspec.Struct):
    """What `restore` tracks while it reads the journal, besides the state itself."""

    account_ids: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)  # highest (epoch, n) seen
    # Fills whose BalanceUpdate / PositionUpdate are not in the journal (dicts: ordered sets).
    unreported_cash: dict[tuple[str, str], None] = msgspec.field(default_factory=dict)  # (account, currency)
    unreported_positions: dict[tuple[str, str], None] = msgspec.field(default_factory=dict)  # (account, symbol)


F = TypeVar("F", bound=Callable[..., Any])


def _exact(method: F) -> F:
    """Run `method` in the wide decimal context, so ledger arithmetic is never rounded."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with localcontext(DECIMAL_CONTEXT):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class PaperExchange:
    def __init__(
        self,
        *,
        venue: str,
        instruments: Sequence[InstrumentSpec],
        accounts: Mapping[str, Mapping[str, Decimal]],
        fees: FeeSchedule,
        slippage_bps: Decimal = Decimal(0),
        allow_short: bool = True,
        clock: Callable[[], int],
    ) -> None:
        if slippage_bps < 0 or slippage_bps >= BPS:
            raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps}")
        self.venue = venue
        self._instruments = {spec.symbol: spec for spec in instruments}
        if len(self._instruments) != len(instruments):
            raise ValueError("instrument symbols must be unique")
        self._fees = fees
        self._slippage_bps = slippage_bps
        self._allow_short = allow_short
        self._clock = clock
        self._now = 0  # the clock reading of the call in progress
        self._state = _State(
            epoch=clock(),
            accounts={name: _Account(cash=dict(cash)) for name, cash in accounts.items()},
            books={symbol: _Book() for symbol in self._instruments},
            open_orders={symbol: [] for symbol in self._instruments},
        )

    # -----------------------------------------------------------------------------------
    # Public interface

    @_exact
    def execute(self, command: OrderCommand) -> list[Event]:
        self._now = self._clock()
        events = self._expire_due()
        if isinstance(command, PlaceOrder):
            events += self._place(command)
        elif isinstance(command, ModifyOrder):
            events += self._modify(command)
        elif isinstance(command, CancelOrder):
            events += self._cancel_one(command)
        else:
            events += self._cancel_all(command)
        return events

    def on_market(
        self, symbol: str, *, bids: Sequence[Level], asks: Sequence[Level], trade: Level | None = None
    ) -> list[Event]:
        """Replace the displayed book of `symbol` (KeyError if not an instrument of this venue).

        The exchange keeps the given sequences until the next update: don't mutate them.
        """
        book = self._state.books[symbol]
        book.pending = (bids, asks)  # the book is only built when an order meets it
        if not any(self._state.open_orders.values()):  # nothing can fill, trigger or expire
            return []
        return self._work_open_orders(symbol, trade)

    @_exact
    def _work_open_orders(self, symbol: str, trade: Level | None) -> list[Event]:
        self._now = self._clock()
        events = self._expire_due()
        book = self._book(symbol)
        # Taken before triggering: a stop-limit triggered by this update was not resting
        # when it happened, so it does not also fill as maker against it.
        resting = [o for o in self._open(symbol=symbol) if not self._is_pending_stop(o)]
        for order in self._open(symbol=symbol):
            if self._is_pending_stop(order) and self._stop_reached(order, trade):
                events += self._trigger(order)
        events += self._fill_resting(resting, book, trade)
        return events

    def knows(self, account: str, client_order_id: str) -> bool:
        """Whether `account` ever placed `client_order_id` (rejected orders included)."""
        state = self._state.accounts.get(account)
        return state is not None and _used(state, client_order_id)

    def executed(self, command: OrderCommand) -> bool:
        """Whether the venue already answered `command` (see "Re-delivered commands")."""
        account = self._state.accounts.get(command.account)
        if account is None or isinstance(command, CancelAllOrders):
            return False
        order = account.orders.get(command.client_order_id)
        if isinstance(command, PlaceOrder):
            return _used(account, command.client_order_id)
        if isinstance(command, ModifyOrder):
            return order is not None and command.modify_id in order.modify_ids
        return command.client_order_id in account.rejected or (order is not None and not order.is_open)

    def reconcile(self, account: str, client_order_ids: Sequence[str]) -> tuple[list[Event], list[str]]:
        """The latest event of each order the account placed (its original event id), and the
        client order ids it never placed."""
        state = self._state.accounts.get(account)
        latest: list[Event] = []
        unknown: list[str] = []
        for client_order_id in client_order_ids:
            event = None if state is None else _latest_event(state, client_order_id)
            if event is None:
                unknown.append(client_order_id)
            else:
                latest.append(event)
        return latest, unknown

    @_exact
    def open_orders(self, account: str) -> list[OpenOrder]:
        """The account's open orders, by symbol in acceptance order (none for an unknown account)."""
        return [
            OpenOrder(
                client_order_id=o.client_order_id,
                venue_order_id=str(o.venue_order_id),
                symbol=o.symbol,
                side=o.side,
                order_type=o.order_type,
                quantity=o.quantity,
                price=o.price,
                stop_price=o.stop_price,
                time_in_force=o.time_in_force,
                expire_time=o.expire_time,
                post_only=o.post_only,
                reduce_only=o.reduce_only,
                triggered=o.triggered,
                cum_quantity=o.cum_quantity,
                leaves_quantity=o.leaves,
            )
            for o in self._open(account=account)
        ]

    @_exact
    def balances(self, account: str) -> list[Balance]:
        state = self._state.accounts.get(account)
        return [] if state is None else [self._balance(account, currency) for currency in state.cash]

    def positions(self, account: str) -> list[PositionUpdate]:
        """The last PositionUpdate of every instrument the account traded (flat ones too)."""
        state = self._state.accounts.get(account)
        if state is None:
            return []
        return [self._position_event(account, symbol, position) for symbol, position in state.positions.items()]

    # -----------------------------------------------------------------------------------
    # Journal

    @_exact
    def restore(self, journal: Iterable[Event]) -> list[Event]:
        """Rebuild this fresh exchange from the events it returned before, oldest first, and
        return the events it still owes (see "Journal")."""
        replay = _Replay()
        for event in journal:
            if isinstance(event, (BalanceUpdate, PositionUpdate)):
                self._replay_account_event(event, replay)
            elif isinstance(event, CommandRejected):
                self._replay_command_rejected(event)
            elif isinstance(event, OrderEventBase):  # not a cancel_all_done: nothing to rebuild from it
                self._replay_order_event(event, replay)
        self._continue_account_ids(replay)
        # A crash may have cut the journal inside one call: settle what that call still owed.
        self._now = self._clock()
        owed: list[Event] = [self._balance_update(account, currency) for account, currency in replay.unreported_cash]
        owed += [self._report_position(account, symbol) for account, symbol in replay.unreported_positions]
        owed += [
            self._cancel(order, CancelReason.VENUE)
            for order in self._open()
            if order.cannot_rest and not self._is_pending_stop(order)
        ]
        return owed

    def _replay_order_event(self, event: OrderEvent, replay: _Replay) -> None:
        account = self._state.accounts.get(event.account)
        number = self._order_event_number(event)
        if account is None or number is None:
            return  # another producer's event (risk's rejections), or an account no longer configured
        if isinstance(event, OrderRejected):
            account.rejected.setdefault(event.client_order_id, event)
            return
        listed = event.symbol in self._instruments  # an order of an instrument no longer listed is dropped
        if isinstance(event, OrderAccepted) and listed and event.client_order_id not in account.orders:
            account.orders[event.client_order_id] = _accepted_order(event)
        order = account.orders.get(event.client_order_id)
        if order is None or number <= order.event_count:
            return  # re-published, or its order's acceptance is no longer in the stream
        order.event_count, order.last_event = number, event
        self._now = event.ts_event
        self._replay_on_order(order, event, replay)

    def _replay_on_order(self, order: _Order, event: OrderEvent, replay: _Replay) -> None:
        """What the event did to its order, as the live path does it."""
        state = self._state
        match event:
            case OrderAccepted():
                self._open_order(order, str(event.venue_order_id))
                state.order_count = max(state.order_count, _number(str(event.venue_order_id), "P"))
            case OrderModified():
                self._remember_modify(order.account, order.client_order_id, event.modify_id)
                self._change_terms(order, event.quantity, event.price, event.stop_price)
            case OrderTriggered():
                order.triggered = True
            case OrderPartiallyFilled() | OrderFilled():
                self._settle(order, event.fill)
                state.trade_count = max(state.trade_count, _number(event.fill.trade_id, "T"))
                replay.unreported_cash[order.account, self._instruments[order.symbol].quote] = None
                replay.unreported_positions[order.account, order.symbol] = None
            case OrderCancelled() | OrderExpired():
                self._close(order)

    def _replay_command_rejected(self, event: CommandRejected) -> None:
        """A refused modify of a known order counts as answered."""
        if event.action is CommandAction.MODIFY and event.event_id.startswith(f"{self.venue}.{event.account}."):
            self._remember_modify(event.account, str(event.client_order_id), str(event.request_id))

    def _replay_account_event(self, event: BalanceUpdate | PositionUpdate, replay: _Replay) -> None:
        account = self._state.accounts.get(event.account)
        number = self._account_event_number(event)
        if account is None or number is None:
            return
        replay.account_ids[event.account] = max(number, replay.account_ids.get(event.account, number))
        if isinstance(event, BalanceUpdate):
            for balance in event.balances:
                account.cash[balance.currency] = balance.total
                replay.unreported_cash.pop((event.account, balance.currency), None)
            return
        account.positions[event.symbol] = _Position(
            quantity=event.quantity,
            avg_price=event.avg_price,
            realized_pnl=event.realized_pnl,
            event_id=event.event_id,
            ts=event.ts_event,
        )
        replay.unreported_positions.pop((event.account, event.symbol), None)

    def _continue_account_ids(self, replay: _Replay) -> None:
        """New account event ids follow the journal's: its latest epoch, numbers after the
        highest each account used in it."""
        if not replay.account_ids:
            return  # none published yet: the fresh epoch is as good
        self._state.epoch = max(epoch for epoch, _ in replay.account_ids.values())
        for name, (epoch, number) in replay.account_ids.items():
            self._state.accounts[name].event_count = number if epoch == self._state.epoch else 0

    def _order_event_number(self, event: OrderEvent) -> int | None:
        """n of an order event id this venue gave (`{venue}.{account}.{client_order_id}.{n}`)."""
        prefix = f"{self.venue}.{event.account}.{event.client_order_id}."
        number = event.event_id.removeprefix(prefix)
        return int(number) if event.event_id.startswith(prefix) and number.isdecimal() else None

    def _account_event_number(self, event: BalanceUpdate | PositionUpdate) -> tuple[int, int] | None:
        """(epoch, n) of an account event id this venue gave (`{venue}.{account}:account.{epoch}.{n}`)."""
        prefix = f"{self.venue}.{event.account}:account."
        epoch, _, number = event.event_id.removeprefix(prefix).partition(".")
        if event.event_id.startswith(prefix) and epoch.isdecimal() and number.isdecimal():
            return int(epoch), int(number)
        return None

    # -----------------------------------------------------------------------------------
    # Commands

    def _place(self, command: PlaceOrder) -> list[Event]:
        order = _Order(
            account=command.account,
            client_order_id=command.client_order_id,
            symbol=command.symbol,
            side=command.side,
            order_type=command.order_type,
            quantity=command.quantity,
            price=command.price,
            stop_price=command.stop_price,
            time_in_force=command.time_in_force,
            expire_time=command.expire_time,
            post_only=command.post_only,
            reduce_only=command.reduce_only,
        )
        violation = self._unknown_account(command)
        if violation is not None:
            # Not recorded: there is no account to record it in. Its one event has the
            # same id on every retry, so the bus stores the rejection once.
            return [self._rejected(order, violation)]
        account = self._state.accounts[command.account]
        if _used(account, command.client_order_id):
            return self._placed_again(account, command)
        violation = self._check_place(order)
        if violation is not None:
            rejected = self._rejected(order, violation)
            account.rejected[order.client_order_id] = rejected
            return [rejected]
        account.orders[order.client_order_id] = order
        return self._accept(order)

    def _placed_again(self, account: _Account, command: PlaceOrder) -> list[Event]:
        """A place under a used client order id (see Placing)."""
        order = account.orders.get(command.client_order_id)
        if order is None or order.accepted is None:  # rejected: no terms kept to recognize it by
            return [self._command_rejected(command, RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                                           "client order id already used by a rejected order")]
        differences = terms_differences(order.accepted, command)
        if differences:
            return [self._command_rejected(command, RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                                           f"client order id already used with other terms: {', '.join(differences)}")]
        return [order.last_event] if order.last_event is not None else []

    def _check_place(self, order: _Order) -> Violation | None:
        spec = self._instruments.get(order.symbol)
        if spec is None:
            return Violation(RejectReason.UNKNOWN_INSTRUMENT, f"no instrument {order.symbol}")
        if order.expire_time is not None and order.expire_time <= self._now:
            return Violation(RejectReason.EXPIRED_ON_ARRIVAL, "expire_time has passed")
        if order.order_type is OrderType.MARKET and not self._opposite_levels(order):
            return Violation(RejectReason.NO_LIQUIDITY, "the opposite side of the book is empty")
        return self._check_terms(spec, order, quantity=order.quantity, price=order.price, stop_price=order.stop_price)

    def _check_terms(
        self,
        spec: InstrumentSpec,
        order: _Order,
        *,
        quantity: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
    ) -> Violation | None:
        """The checks a placement and a modify share, on the order's proposed terms."""
        violation = check_order(
            spec,
            quantity=quantity,
            prices=(price, stop_price),
            notional_price=self._reference_price(order, price, stop_price),
        )
        if violation is not None:
            return violation
        leaves = quantity - order.cum_quantity
        if order.post_only and price is not None and self._crossing_levels(order, price):
            return Violation(RejectReason.POST_ONLY_WOULD_TAKE, f"a {order.side.value} at {price} would take")
        if order.reduce_only and leaves > self._reducible(order):
            return Violation(RejectReason.REDUCE_ONLY_VIOLATION, "the order would open or flip the position")
        if order.side is Side.BUY:
            cost = self._locked_by(order, leaves, price, stop_price)
            available = self._available(order.account, spec.quote, excluding=order)
            if cost > available:
                return Violation(
                    RejectReason.INSUFFICIENT_FUNDS, f"costs up to {cost} {spec.quote}, {available} available"
                )
        elif not self._allow_short:
            other_sells = self._open(account=order.account, symbol=order.symbol, side=Side.SELL, excluding=order)
            sellable = self._position_quantity(order) - sum((o.leaves for o in other_sells), ZERO)
            if leaves > sellable:
                return Violation(RejectReason.INSUFFICIENT_FUNDS, f"only {sellable} can be sold, short selling is off")
        return None

    def _accept(self, order: _Order) -> list[Event]:
        self._state.order_count += 1
        self._open_order(order, f"P{self._state.order_count}")
        accepted = self._order_event(
            OrderAccepted,
            order,
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            price=order.price,
            stop_price=order.stop_price,
            time_in_force=order.time_in_force,
            expire_time=order.expire_time,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
        )
        assert isinstance(accepted, OrderAccepted)
        order.accepted = accepted
        return [accepted, *self._work(order)]

    def _open_order(self, order: _Order, venue_order_id: str) -> None:
        """Put an order accepted at `self._now` on the book."""
        order.venue_order_id = venue_order_id
        order.is_open = True
        order.priority = self._next_priority()
        if order.time_in_force is TimeInForce.DAY:
            order.expires_at = (self._now // NS_PER_DAY + 1) * NS_PER_DAY
        elif order.time_in_force is TimeInForce.GTD:
            order.expires_at = order.expire_time
        self._state.open_orders[order.symbol].append((order.account, order.client_order_id))

    def _modify(self, command: ModifyOrder) -> list[Event]:
        self._remember_modify(command.account, command.client_order_id, command.modify_id)
        order = self._find_open(command)
        if isinstance(order, CommandRejected):
            return [order]
        quantity = order.quantity if command.quantity is None else command.quantity
        price = order.price if command.price is None else command.price
        stop_price = order.stop_price if command.stop_price is None else command.stop_price
        violation = self._check_modify(command, order, quantity=quantity, price=price, stop_price=stop_price)
        if violation is not None:
            return [self._command_rejected(command, *violation)]
        self._change_terms(order, quantity, price, stop_price)
        modified = self._order_event(
            OrderModified,
            order,
            modify_id=command.modify_id,
            quantity=quantity,
            price=price,
            stop_price=stop_price,
        )
        return [modified, *self._work(order)]

    def _remember_modify(self, account: str, client_order_id: str, modify_id: str) -> None:
        """Record that the venue answered this modify of a known order (see `executed`)."""
        state = self._state.accounts.get(account)
        order = None if state is None else state.orders.get(client_order_id)
        if order is not None and modify_id not in order.modify_ids:
            order.modify_ids.append(modify_id)

    def _change_terms(
        self, order: _Order, quantity: Decimal, price: Decimal | None, stop_price: Decimal | None
    ) -> None:
        # As on real venues, only a change that makes the order more aggressive or bigger
        # sends it to the back of its price level.
        if price != order.price or quantity > order.quantity:
            order.priority = self._next_priority()
        order.quantity, order.price, order.stop_price = quantity, price, stop_price

    def _check_modify(
        self,
        command: ModifyOrder,
        order: _Order,
        *,
        quantity: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
    ) -> Violation | None:
        if command.price is not None and order.price is None:
            return Violation(RejectReason.MALFORMED, f"a {order.order_type.value} order has no price")
        if command.stop_price is not None and order.stop_price is None:
            return Violation(RejectReason.MALFORMED, f"a {order.order_type.value} order has no stop price")
        if quantity <= order.cum_quantity:
            return Violation(RejectReason.LOT_SIZE, f"quantity must exceed the filled {order.cum_quantity}")
        spec = self._instruments[order.symbol]
        return self._check_terms(spec, order, quantity=quantity, price=price, stop_price=stop_price)

    def _cancel_one(self, command: CancelOrder) -> list[Event]:
        order = self._find_open(command)
        if isinstance(order, CommandRejected):
            return [order]
        return [self._cancel(order, CancelReason.REQUESTED)]

    def _cancel_all(self, command: CancelAllOrders) -> list[Event]:
        violation = self._unknown_account(command)
        if violation is not None:
            return [self._command_rejected(command, *violation)]
        cancelled = [
            self._cancel(order, CancelReason.REQUESTED)
            for order in self._open(account=command.account, symbol=command.symbol, side=command.side)
        ]
        return [*cancelled, cancel_all_done(command, len(cancelled), self._now)]

    def _find_open(self, command: ModifyOrder | CancelOrder) -> _Order | CommandRejected:
        violation = self._unknown_account(command)
        if violation is not None:
            return self._command_rejected(command, *violation)
        account = self._state.accounts[command.account]
        order = account.orders.get(command.client_order_id)
        if order is None and command.client_order_id not in account.rejected:
            return self._command_rejected(command, RejectReason.UNKNOWN_ORDER, "no such order")
        if order is None or not order.is_open:
            return self._command_rejected(command, RejectReason.ORDER_NOT_OPEN, "the order is no longer open")
        return order

    def _unknown_account(self, command: OrderCommand) -> Violation | None:
        if command.venue != self.venue:
            return Violation(RejectReason.UNKNOWN_VENUE, f"this is venue {self.venue}, not {command.venue}")
        if command.account not in self._state.accounts:
            return Violation(RejectReason.UNKNOWN_ACCOUNT, f"no account {command.account}")
        return None

    # -----------------------------------------------------------------------------------
    # Matching

    def _work(self, order: _Order) -> list[Event]:
        """Make a just accepted, modified or triggered order act on the current book."""
        if self._is_pending_stop(order):
            return self._trigger(order) if self._stop_reached(order, None) else []
        if order.is_market_like:
            if not self._opposite_levels(order):
                return [self._cancel(order, CancelReason.NO_LIQUIDITY)]
            events = self._take(order, limit=None)
        else:
            assert order.price is not None
            if order.time_in_force is TimeInForce.FOK and self._fillable(order, order.price) < order.leaves:
                return [self._cancel(order, CancelReason.FOK_UNFILLABLE)]
            events = self._take(order, limit=order.price)
        if order.is_open and order.cannot_rest:
            events.append(self._cancel(order, CancelReason.IOC_REMAINDER))
        return events

    def _trigger(self, order: _Order) -> list[Event]:
        order.triggered = True
        return [self._order_event(OrderTriggered, order), *self._work(order)]

    def _take(self, order: _Order, *, limit: Decimal | None) -> list[Event]:
        """Fill as taker level by level, at the level price (limit orders) or the slipped
        level price (market-like orders, `limit` None)."""
        spec = self._instruments[order.symbol]
        levels = self._opposite_levels(order)
        events: list[Event] = []
        for level in levels if limit is None else self._crossing_levels(order, limit):
            room = self._room(order)
            if room == 0:
                break
            quantity = min(room, floor_to(level.size, spec.lot_size))
            if quantity == 0:
                continue
            level.size -= quantity
            price = level.price if limit is not None else self._slipped(spec, order.side, level.price)
            events += self._fill(order, price, quantity, LiquiditySide.TAKER)
        levels[:] = [level for level in levels if level.size > 0]
        return events

    def _fillable(self, order: _Order, limit: Decimal) -> Decimal:
        """What `_take` would fill at most: the same per-level lot rounding."""
        lot = self._instruments[order.symbol].lot_size
        return min(self._room(order), sum((floor_to(lv.size, lot) for lv in self._crossing_levels(order, limit)), ZERO))

    def _fill_resting(self, resting: list[_Order], book: _Book, trade: Level | None) -> list[Event]:
        """Maker fills of resting limit orders against a new book and trade print."""
        # A print of size s had a seller and a buyer of s: resting buys share the seller's
        # side of it, resting sells the buyer's.
        trade_left = {Side.BUY: trade[1], Side.SELL: trade[1]} if trade is not None else {}
        events: list[Event] = []
        for order in sorted(resting, key=_price_time):
            assert order.price is not None
            crossing = self._crossing_levels(order, order.price)
            from_trade = trade_left[order.side] if trade is not None and _through(order, trade[0]) else ZERO
            lot = self._instruments[order.symbol].lot_size
            available = floor_to(sum((lv.size for lv in crossing), from_trade), lot)
            if available == 0:
                continue
            room = self._room(order)
            if room == 0:  # a reduce-only order with nothing left to reduce
                events.append(self._cancel(order, CancelReason.VENUE))
                continue
            quantity = min(room, available)
            left = quantity
            for level in crossing:
                used = min(left, level.size)
                level.size -= used
                left -= used
            if left:
                trade_left[order.side] -= left
            events += self._fill(order, order.price, quantity, LiquiditySide.MAKER)
        book.bids = [lv for lv in book.bids if lv.size > 0]
        book.asks = [lv for lv in book.asks if lv.size > 0]
        return events

    def _stop_reached(self, order: _Order, trade: Level | None) -> bool:
        assert order.stop_price is not None
        book = self._book(order.symbol)
        prices = [lv.price for lv in (book.asks if order.side is Side.BUY else book.bids)[:1]]
        if trade is not None:
            prices.append(trade[0])
        if order.side is Side.BUY:
            return any(p >= order.stop_price for p in prices)
        return any(p <= order.stop_price for p in prices)

    def _book(self, symbol: str) -> _Book:
        """The displayed book of `symbol`, built from the latest levels if needed."""
        book = self._state.books[symbol]
        if book.pending is not None:
            bids, asks = book.pending
            book.pending = None
            book.bids = sorted((_BookLevel(p, s) for p, s in bids if s > 0), key=lambda lv: lv.price, reverse=True)
            book.asks = sorted((_BookLevel(p, s) for p, s in asks if s > 0), key=lambda lv: lv.price)
        return book

    def _expire_due(self) -> list[Event]:
        return [
            self._close_with(OrderExpired, order, cum_quantity=order.cum_quantity)
            for order in self._open()
            if order.expires_at is not None and self._now >= order.expires_at
        ]

    # -----------------------------------------------------------------------------------
    # Ledger

    def _fill(self, order: _Order, price: Decimal, quantity: Decimal, liquidity: LiquiditySide) -> list[Event]:
        spec = self._instruments[order.symbol]
        self._state.trade_count += 1
        fill = Fill(
            trade_id=f"T{self._state.trade_count}",
            side=order.side,
            price=price,
            quantity=quantity,
            fee=self._fees.fee(price * quantity, liquidity),
            fee_currency=spec.quote,
            liquidity=liquidity,
        )
        self._settle(order, fill)
        fill_event = self._order_event(
            OrderPartiallyFilled if order.is_open else OrderFilled,
            order,
            fill=fill,
            cum_quantity=order.cum_quantity,
            leaves_quantity=order.leaves,
            avg_price=round_price(order.cum_notional / order.cum_quantity),
        )
        return [
            fill_event,
            self._balance_update(order.account, spec.quote),
            self._report_position(order.account, order.symbol),
        ]

    def _settle(self, order: _Order, fill: Fill) -> None:
        """What a fill changes: the order's cumulative terms (it closes once nothing is left),
        the quote currency's cash and the position."""
        account = self._state.accounts[order.account]
        quote = self._instruments[order.symbol].quote
        notional = fill.price * fill.quantity
        order.cum_quantity += fill.quantity
        order.cum_notional += notional
        if order.leaves == 0:
            self._close(order)
        buy = order.side is Side.BUY
        account.cash[quote] = account.cash.get(quote, ZERO) + (-(notional + fill.fee) if buy else notional - fill.fee)
        position = account.positions.setdefault(order.symbol, _Position())
        apply_fill(position, fill.quantity if buy else -fill.quantity, fill.price)

    def _balance_update(self, account: str, currency: str) -> BalanceUpdate:
        return BalanceUpdate(
            event_id=self._account_event_id(account),
            venue=self.venue,
            account=account,
            balances=[self._balance(account, currency)],
            ts_event=self._now,
            ts_recv=self._now,
        )

    def _report_position(self, account: str, symbol: str) -> PositionUpdate:
        """A PositionUpdate of the position as it is now, under a new event id."""
        position = self._state.accounts[account].positions[symbol]
        position.event_id = self._account_event_id(account)
        position.ts = self._now
        return self._position_event(account, symbol, position)

    def _balance(self, account: str, currency: str) -> Balance:
        total = self._state.accounts[account].cash.get(currency, ZERO)
        return Balance(currency=currency, total=total, available=self._available(account, currency))

    def _available(self, account: str, currency: str, excluding: _Order | None = None) -> Decimal:
        """Cash minus what the account's open buys in `currency` may spend. A market order is
        open only while it takes, and has spent what it fills by then: it locks nothing."""
        locked = sum(
            (
                self._locked_by(o, o.leaves, o.price, o.stop_price)
                for o in self._open(account=account, side=Side.BUY, excluding=excluding)
                if o.order_type is not OrderType.MARKET and self._instruments[o.symbol].quote == currency
            ),
            ZERO,
        )
        return self._state.accounts[account].cash.get(currency, ZERO) - locked

    def _locked_by(self, order: _Order, leaves: Decimal, price: Decimal | None, stop_price: Decimal | None) -> Decimal:
        """The most a buy of `leaves` may cost as a taker, at the limit price if it has one,
        else at the slipped stop price or best ask."""
        spec = self._instruments[order.symbol]
        if price is None:
            reference = self._reference_price(order, price, stop_price)
            price = self._slipped(spec, order.side, reference)
        return leaves * price * (BPS + self._fees.taker_bps) / BPS

    def _position_quantity(self, order: _Order) -> Decimal:
        """The signed position of the order's account in its instrument."""
        position = self._state.accounts[order.account].positions.get(order.symbol)
        return ZERO if position is None else position.quantity

    def _reducible(self, order: _Order) -> Decimal:
        """How much of the position an order on its side would reduce without flipping it."""
        position = self._position_quantity(order)
        return max(-position if order.side is Side.BUY else position, ZERO)

    def _room(self, order: _Order) -> Decimal:
        """How much the order may fill now."""
        return min(order.leaves, self._reducible(order)) if order.reduce_only else order.leaves

    # -----------------------------------------------------------------------------------
    # Helpers

    def _open(
        self,
        *,
        account: str | None = None,
        symbol: str | None = None,
        side: Side | None = None,
        excluding: _Order | None = None,
    ) -> list[_Order]:
        """Open orders, filtered by whatever is given, by symbol in acceptance order.
        A list, so callers may close orders while iterating."""
        accounts = self._state.accounts
        symbols = [symbol] if symbol is not None else list(self._state.open_orders)
        orders = (
            accounts[owner].orders[client_order_id]
            for sym in symbols
            for owner, client_order_id in self._state.open_orders.get(sym, [])
            if account is None or owner == account
        )
        return [o for o in orders if (side is None or o.side is side) and o is not excluding]

    def _is_pending_stop(self, order: _Order) -> bool:
        return order.order_type in _STOPS and not order.triggered

    def _opposite_levels(self, order: _Order) -> list[_BookLevel]:
        book = self._book(order.symbol)
        return book.asks if order.side is Side.BUY else book.bids

    def _crossing_levels(self, order: _Order, limit: Decimal) -> list[_BookLevel]:
        """The opposite levels an order at `limit` could take, best first."""
        if order.side is Side.BUY:
            return [level for level in self._opposite_levels(order) if level.price <= limit]
        return [level for level in self._opposite_levels(order) if level.price >= limit]

    def _reference_price(self, order: _Order, price: Decimal | None, stop_price: Decimal | None) -> Decimal:
        """The price an order is valued at: its limit, else its stop, else the best opposite
        price (callers have checked a market order's book is not empty)."""
        if price is not None:
            return price
        if stop_price is not None:
            return stop_price
        return self._opposite_levels(order)[0].price

    def _slipped(self, spec: InstrumentSpec, side: Side, price: Decimal) -> Decimal:
        """`price` moved by the slippage against the taker, rounded to the tick against it
        (a sell never below one tick)."""
        if side is Side.BUY:
            return ceil_to(price * (BPS + self._slippage_bps) / BPS, spec.tick_size)
        return max(floor_to(price * (BPS - self._slippage_bps) / BPS, spec.tick_size), spec.tick_size)

    def _next_priority(self) -> int:
        self._state.priority_count += 1
        return self._state.priority_count

    def _close_with(self, event_type: type[Any], order: _Order, **fields: Any) -> Any:
        """Take the order off the book, and emit its terminal event."""
        self._close(order)
        return self._order_event(event_type, order, **fields)

    def _close(self, order: _Order) -> None:
        order.is_open = False
        self._state.open_orders[order.symbol].remove((order.account, order.client_order_id))

    def _cancel(self, order: _Order, reason: CancelReason) -> OrderCancelled:
        cancelled: OrderCancelled = self._close_with(
            OrderCancelled, order, reason=reason, cum_quantity=order.cum_quantity
        )
        return cancelled

    def _rejected(self, order: _Order, violation: Violation) -> OrderRejected:
        rejected: OrderRejected = self._order_event(
            OrderRejected, order, reason=violation.reason, message=violation.message
        )
        return rejected

    def _order_event(self, event_type: type[Any], order: _Order, **fields: Any) -> Any:
        order.event_count += 1
        order.last_event = event_type(
            event_id=f"{self.venue}.{order.account}.{order.client_order_id}.{order.event_count}",
            client_order_id=order.client_order_id,
            venue=self.venue,
            account=order.account,
            symbol=order.symbol,
            venue_order_id=order.venue_order_id,
            ts_event=self._now,
            ts_recv=self._now,
            **fields,
        )
        return order.last_event

    def _command_rejected(self, command: OrderCommand, reason: RejectReason, message: str) -> CommandRejected:
        client_order_id: str | None = None
        request_id: str | None = None
        if isinstance(command, CancelAllOrders):
            action, request_id = CommandAction.CANCEL_ALL, command.request_id
        else:
            client_order_id = command.client_order_id
            if isinstance(command, ModifyOrder):
                action, request_id = CommandAction.MODIFY, command.modify_id
            else:
                action = CommandAction.PLACE if isinstance(command, PlaceOrder) else CommandAction.CANCEL
        return CommandRejected(
            # The command's own dedupe id names the action and modify/request id; the reason
            # keeps a later, different refusal of the same command distinct.
            event_id=f"{command_dedupe_id(command)}.rejected.{reason.value}",
            action=action,
            venue=self.venue,
            account=command.account,
            client_order_id=client_order_id,
            request_id=request_id,
            reason=reason,
            message=message,
            ts_event=self._now,
            ts_recv=self._now,
        )

    def _account_event_id(self, account: str) -> str:
        state = self._state.accounts[account]
        state.event_count += 1
        return f"{self.venue}.{account}:account.{self._state.epoch}.{state.event_count}"

    def _position_event(self, account: str, symbol: str, position: _Position) -> PositionUpdate:
        return PositionUpdate(
            event_id=position.event_id,
            venue=self.venue,
            account=account,
            symbol=symbol,
            quantity=position.quantity,
            avg_price=position.avg_price,
            realized_pnl=position.realized_pnl,
            ts_event=position.ts,
            ts_recv=position.ts,
        )


def _used(account: _Account, client_order_id: str) -> bool:
    """Whether the account placed this client order id, accepted or rejected."""
    return client_order_id in account.orders or client_order_id in account.rejected


def _latest_event(account: _Account, client_order_id: str) -> OrderEvent | None:
    order = account.orders.get(client_order_id)
    return order.last_event if order is not None else account.rejected.get(client_order_id)


def _accepted_order(event: OrderAccepted) -> _Order:
    """An order as its acceptance describes it, before it is put on the book."""
    return _Order(
        account=event.account,
        client_order_id=event.client_order_id,
        symbol=event.symbol,
        side=event.side,
        order_type=event.order_type,
        quantity=event.quantity,
        price=event.price,
        stop_price=event.stop_price,
        time_in_force=event.time_in_force,
        expire_time=event.expire_time,
        post_only=event.post_only,
        reduce_only=event.reduce_only,
        accepted=event,
    )


def _number(identifier: str, prefix: str) -> int:
    """The counter in a venue order id (`P{n}`) or a trade id (`T{n}`)."""
    return int(identifier.removeprefix(prefix))


def _price_time(order: _Order) -> tuple[Decimal, int]:
    """Best price first (highest buy, lowest sell), then earliest."""
    assert order.price is not None
    return (-order.price if order.side is Side.BUY else order.price, order.priority)


def _through(order: _Order, trade_price: Decimal) -> bool:
    """Whether a print traded strictly better than a resting order's price, so the order,
    quoting better, would have been the one filled."""
    assert order.price is not None
    return trade_price < order.price if order.side is Side.BUY else trade_price > order.price
