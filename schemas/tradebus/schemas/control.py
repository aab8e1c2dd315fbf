"""Service heartbeats and control requests (request/reply on core NATS)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Union

import msgspec

from .lifecycle import OrderRecord
from .market import Instrument
from .values import (
    TICK_KINDS,
    AccountName,
    ClientOrderId,
    MarketDataKind,
    Message,
    Nanos,
    RequestId,
    ServiceState,
    SessionState,
    StrictMessage,
    Symbol,
    Text,
    TradingState,
    VenueName,
)


class VenueSession(Message, frozen=True, kw_only=True, tag="venue_session"):
    """The session of a venue that trades with an access token lasting a day, as its
    connector sees it (a part of that connector's ServiceStatus, published at once when it
    changes). `expires_at`: when the token stops working as the venue documents it (None:
    not known before the venue says so). `action`: what an operator does now, in plain words."""

    venue: VenueName
    account: AccountName
    state: SessionState
    since: Nanos  # when it entered this state
    expires_at: Nanos | None = None
    detail: Text = ""
    action: Text = ""


class ServiceStatus(Message, frozen=True, kw_only=True, tag="status"):
    """Published on `tradebus.status.<service>.<instance>` every heartbeat interval, and in
    reply to a ping on `tradebus.ctl.ping`. `counters` are totals since start; a watcher
    derives rates from two heartbeats."""

    service: str
    instance: str
    state: ServiceState
    version: str
    pid: int
    started_at: Nanos
    ts_event: Nanos
    heartbeat_ms: int  # a watcher may call a service lost after missing a few
    counters: dict[str, int] = {}
    detail: Text = ""
    http_port: int | None = None  # its /metrics, /healthz and /readyz on its host; None: not serving yet
    session: VenueSession | None = None  # a connector of a venue with daily access tokens: its session


# A market-data subscriber names itself so that its interest is counted apart from every
# other subscriber's: a stream stops only when nobody holds it. Anyone who knows the id can
# release its interest, so a client picks an unguessable one (a random UUID).
SubscriberId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_.:-]{0,64}$",
        description="Who holds the interest (0-64 of `A-Z a-z 0-9 _ . : -`; a random UUID is a good choice). "
        "Empty: the anonymous subscriber, one holder shared by everyone who names none.",
    ),
]


class Subscribe(StrictMessage, frozen=True, kw_only=True, tag="subscribe"):
    """Ask a connector to publish these streams. `["*"]` means every instrument it lists.

    The interest is a lease held by `subscriber` for the connector's lease time (the reply's
    `lease_ms`): send the same request again well within it (every third of it) to renew,
    or the interest expires. A stream stops once no subscriber holds it. Naming the
    `instrument` kind publishes the current definitions of the symbols at once, on their
    instrument streams (on a first subscribe; a renewal sends nothing new)."""

    symbols: list[Symbol]
    kinds: list[MarketDataKind] = msgspec.field(default_factory=lambda: list(TICK_KINDS))
    subscriber: SubscriberId = ""


class Unsubscribe(StrictMessage, frozen=True, kw_only=True, tag="unsubscribe"):
    """Release `subscriber`'s interest in these streams; other subscribers keep theirs."""

    symbols: list[Symbol]
    kinds: list[MarketDataKind] = msgspec.field(default_factory=lambda: list(TICK_KINDS))
    subscriber: SubscriberId = ""


class ListInstruments(StrictMessage, frozen=True, kw_only=True, tag="list_instruments"):
    pass


SubscriptionRequest = Union[Subscribe, Unsubscribe, ListInstruments]


class StreamSubscription(Message, frozen=True, kw_only=True, tag="stream"):
    symbol: Symbol
    kinds: list[MarketDataKind]


class SubscriptionReply(Message, frozen=True, kw_only=True, tag="subscription"):
    """The connector's subscriptions after the request; `unknown_symbols` were refused.
    `lease_ms`: how long an interest lasts without renewal (0 from connectors older than
    leases)."""

    ok: bool
    subscriptions: list[StreamSubscription]
    instruments: list[Symbol] = []
    unknown_symbols: list[str] = []
    error: Text = ""
    lease_ms: int = 0


# --- reference data (tradebus.ctl.instruments.<venue>) ------------------------------------
class GetInstruments(StrictMessage, frozen=True, kw_only=True, tag="get_instruments"):
    """Ask a connector for its instrument definitions: those of `symbols`, or every
    instrument it lists when `symbols` is empty."""

    symbols: Annotated[list[Symbol], msgspec.Meta(max_length=10_000)] = []


class InstrumentsReply(Message, frozen=True, kw_only=True, tag="instruments"):
    """The definitions as the connector holds them now (`seq` 0: not a stream message;
    `ts_event` is when the reply was made). `unknown_symbols` the venue does not list."""

    ok: bool
    instruments: list[Instrument] = []
    unknown_symbols: list[str] = []
    error: Text = ""


# --- order manager queries (tradebus.ctl.oms) ---------------------------------------------
class GetOrder(StrictMessage, frozen=True, kw_only=True, tag="get_order"):
    venue: VenueName
    account: AccountName
    client_order_id: ClientOrderId


OrderCursor = Annotated[str, msgspec.Meta(
    pattern=r"^[0-9]{1,20}\.[a-z0-9_]{1,32}\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{1,36}$",
    description="Where a listing of orders goes on: the `next_cursor` of the previous page.")]


class ListOrders(StrictMessage, frozen=True, kw_only=True, tag="list_orders"):
    """Orders newest first (by creation time, then venue, account, client order id), a page
    at a time: at most `limit`, fewer when more would not fit in one bus message. Pass the
    reply's `next_cursor` as `after` for the next page; orders created meanwhile sort before
    it, so paging goes on where it stopped."""

    venue: VenueName | None = None
    account: AccountName | None = None
    open_only: bool = False
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    after: OrderCursor | None = None
    group_id: RequestId | None = None  # only the orders of this order group (`place_group`)


class GetPositions(StrictMessage, frozen=True, kw_only=True, tag="get_positions"):
    account: AccountName | None = None


class GetBalances(StrictMessage, frozen=True, kw_only=True, tag="get_balances"):
    """The latest balances each venue published for its accounts (account events)."""

    venue: VenueName | None = None
    account: AccountName | None = None


OmsRequest = Union[GetOrder, ListOrders, GetPositions, GetBalances]


class VenuePosition(Message, frozen=True, kw_only=True, tag="venue_position"):
    venue: VenueName
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal


class AggregatePosition(Message, frozen=True, kw_only=True, tag="aggregate_position"):
    """One account's net position in one symbol across every venue that trades it."""

    account: AccountName
    symbol: Symbol
    quantity: Decimal
    realized_pnl: Decimal
    venues: list[VenuePosition]


class VenueBalance(Message, frozen=True, kw_only=True, tag="venue_balance"):
    """One currency of one venue account, as the venue last reported it (`ts_event`)."""

    venue: VenueName
    account: AccountName
    currency: str
    total: Decimal
    available: Decimal
    ts_event: Nanos


class OmsReply(Message, frozen=True, kw_only=True, tag="oms_reply"):
    ok: bool
    orders: list[OrderRecord] = []
    positions: list[AggregatePosition] = []
    balances: list[VenueBalance] = []
    error: Text = ""
    # ListOrders: how many orders match the query (on every page), whether more follow this
    # page, and the `after` that asks for them.
    total: int | None = None
    more: bool = False
    next_cursor: OrderCursor | None = None


# --- reconciliation (tradebus.ctl.reconcile.<venue>) --------------------------------------
class Reconcile(StrictMessage, frozen=True, kw_only=True, tag="reconcile"):
    """Ask a connector for the venue's view of these orders: it re-publishes each known
    order's latest event (with its original event id, so nothing is doubled)."""

    account: AccountName
    client_order_ids: Annotated[list[ClientOrderId], msgspec.Meta(max_length=1000)]


class ReconcileReply(Message, frozen=True, kw_only=True, tag="reconcile_reply"):
    known: list[str]
    unknown: list[str]
    error: Text = ""


# --- trading state (tradebus.ctl.risk) -----------------------------------------------------
class SetTradingState(StrictMessage, frozen=True, kw_only=True, tag="set_trading_state"):
    """Halt, restrict or resume one account, or the whole fleet when `account` is None."""

    account: AccountName | None = None
    state: TradingState
    reason: Text = ""


class GetTradingState(StrictMessage, frozen=True, kw_only=True, tag="get_trading_state"):
    pass


class GetRiskLimits(StrictMessage, frozen=True, kw_only=True, tag="get_risk_limits"):
    """Ask risk for the limits it applies now (answered with a `risk_limits` reply)."""


RiskRequest = Union[SetTradingState, GetTradingState, GetRiskLimits]


class RiskLimitLevel(Message, frozen=True, kw_only=True, tag="limit_level"):
    """One level of risk limits (defaults, a venue, an account or an instrument). A null
    field inherits from the level below: instrument over account over venue over defaults."""

    max_quantity: Decimal | None = None
    max_notional: Decimal | None = None
    max_position: Decimal | None = None  # absolute net position, open orders included
    max_open_orders: int | None = None
    price_collar_bps: Decimal | None = None  # limit/stop prices within this distance of the mid
    daily_loss_limit: Decimal | None = None  # loss (positive number) since UTC midnight that halts new risk
    allowed_symbols: list[str] | None = None  # ["*"] = any


class RiskRateLimits(Message, frozen=True, kw_only=True, tag="rate_limits"):
    """Orders per second routed per account and per venue; `burst` orders may go at once."""

    per_account: Decimal = Decimal(50)
    per_venue: Decimal = Decimal(200)
    burst: int = 20


class RiskLimitsReply(Message, frozen=True, kw_only=True, tag="risk_limits"):
    """The limits risk applies: `defaults` already merged over the built-in defaults, the
    other levels as configured. `source` says where they were read from."""

    ok: bool
    source: Text = ""
    defaults: RiskLimitLevel = msgspec.field(default_factory=RiskLimitLevel)
    venues: dict[str, RiskLimitLevel] = {}
    accounts: dict[str, RiskLimitLevel] = {}
    instruments: dict[str, RiskLimitLevel] = {}  # key "venue:symbol"
    account_states: dict[str, TradingState] = {}
    rate: RiskRateLimits = msgspec.field(default_factory=RiskRateLimits)
    error: Text = ""


class TradingStateReply(Message, frozen=True, kw_only=True, tag="trading_state"):
    ok: bool
    fleet: TradingState
    accounts: dict[str, TradingState] = {}
    error: Text = ""


RiskReply = Union[TradingStateReply, RiskLimitsReply]
