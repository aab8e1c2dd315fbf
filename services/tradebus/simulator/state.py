"""The simulated exchange's state, and what every part of it shares.

All state lives in one `State`, plain msgspec Structs, so it can be snapshotted and compared.
`Core` holds it together with the venue's terms (instruments, fees, slippage, shorting) and
the clock reading of the call in progress; the book, ledger, matcher, command handler and
journal replay each work on the same `Core`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import Any, TypeVar

import msgspec

from tradebus.schemas.events import AccountEvent, OrderAccepted, OrderEvent, OrderRejected
from tradebus.schemas.values import OrderType, Side, TimeInForce

from .rules import BPS, DECIMAL_CONTEXT, FillFees, InstrumentSpec, OrderRules

Level = tuple[Decimal, Decimal]
"""(price, size) of a displayed book level, or of a trade print."""

Event = OrderEvent | AccountEvent

ZERO = Decimal(0)
STOPS = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
MARKET_LIKE = (OrderType.MARKET, OrderType.STOP, OrderType.TRAILING_STOP)  # once working
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
    trail_amount: Decimal | None
    trail_percent: Decimal | None
    group_id: str | None
    contingent_on: str | None
    held: bool  # waiting for `contingent_on` to be done with a fill: accepted, not working


# ---------------------------------------------------------------------------------------
# State: mutable plain data


class Order(msgspec.Struct, kw_only=True):
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
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    group_id: str | None = None
    contingent_on: str | None = None  # the order of its group it waits for (groups.py)
    held: bool = False  # open but not working until `contingent_on` is done with a fill
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
        return self.order_type in MARKET_LIKE

    @property
    def cannot_rest(self) -> bool:
        """Once working, cancels whatever it did not take at once."""
        return self.is_market_like or self.time_in_force in _NEVER_REST

    @property
    def is_pending_stop(self) -> bool:
        return self.order_type in STOPS and not self.triggered


class Position(msgspec.Struct, kw_only=True):
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    # Of the last PositionUpdate: `positions()` re-issues that event, so re-publishing an
    # unchanged position is de-duplicated on the bus.
    event_id: str = ""
    ts: int = 0


class Account(msgspec.Struct, kw_only=True):
    cash: dict[str, Decimal]
    positions: dict[str, Position] = msgspec.field(default_factory=dict)
    orders: dict[str, Order] = msgspec.field(default_factory=dict)  # every order ever accepted
    rejected: dict[str, OrderRejected] = msgspec.field(default_factory=dict)  # refused placements
    groups: dict[str, list[str]] = msgspec.field(default_factory=dict)  # group id -> its client order ids
    event_count: int = 0

    def used(self, client_order_id: str) -> bool:
        """Whether the account placed this client order id, accepted or rejected."""
        return client_order_id in self.orders or client_order_id in self.rejected

    def latest_event(self, client_order_id: str) -> OrderEvent | None:
        order = self.orders.get(client_order_id)
        return order.last_event if order is not None else self.rejected.get(client_order_id)

    def remember_modify(self, client_order_id: str, modify_id: str) -> None:
        """Record that the venue answered this modify of a known order (see `executed`)."""
        order = self.orders.get(client_order_id)
        if order is not None and modify_id not in order.modify_ids:
            order.modify_ids.append(modify_id)


class BookLevel(msgspec.Struct):
    price: Decimal
    size: Decimal


class Book(msgspec.Struct, kw_only=True):
    bids: list[BookLevel] = msgspec.field(default_factory=list)
    asks: list[BookLevel] = msgspec.field(default_factory=list)
    # The latest levels as given, not yet turned into `bids`/`asks`: building the book is
    # most of the cost of a market update and is only needed when an order meets it.
    pending: tuple[Sequence[Level], Sequence[Level]] | None = None


class State(msgspec.Struct, kw_only=True):
    # When this venue's books were first opened: part of account event ids, so that a fresh
    # venue (one without a journal) never reuses an id JetStream still remembers.
    epoch: int
    accounts: dict[str, Account]
    books: dict[str, Book]
    open_orders: dict[str, list[tuple[str, str]]]  # symbol -> (account, client order id)
    order_count: int = 0
    priority_count: int = 0
    trade_count: int = 0


class Core:
    """The venue's terms, its state, and `now`: the clock reading of the call in progress
    (one per call, every event of the call carries it)."""

    def __init__(
        self,
        *,
        venue: str,
        instruments: Sequence[InstrumentSpec],
        accounts: Mapping[str, Mapping[str, Decimal]],
        fees: FillFees,
        slippage_bps: Decimal,
        allow_short: bool,
        clock: Callable[[], int],
        rules: OrderRules | None = None,
    ) -> None:
        if slippage_bps < 0 or slippage_bps >= BPS:
            raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps}")
        self.venue = venue
        self.instruments = {spec.symbol: spec for spec in instruments}
        if len(self.instruments) != len(instruments):
            raise ValueError("instrument symbols must be unique")
        self.fees = fees
        self.rules = rules
        self.slippage_bps = slippage_bps
        self.allow_short = allow_short
        self.clock = clock
        self.now = 0
        # Grouped orders closed during the call in progress, whose group may have to follow
        # (groups.py): transient, empty between calls.
        self.ended: list[Order] = []
        self.state = State(
            epoch=clock(),
            accounts={name: Account(cash=dict(cash)) for name, cash in accounts.items()},
            books={symbol: Book() for symbol in self.instruments},
            open_orders={symbol: [] for symbol in self.instruments},
        )


F = TypeVar("F", bound=Callable[..., Any])


def exact(method: F) -> F:
    """Run `method` in the wide decimal context, so ledger arithmetic is never rounded."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with localcontext(DECIMAL_CONTEXT):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
