"""Service heartbeats and control requests (request/reply on core NATS)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Union

import msgspec

from .lifecycle import OrderRecord
from .values import (
    TICK_KINDS,
    AccountName,
    ClientOrderId,
    MarketDataKind,
    Message,
    Nanos,
    ServiceState,
    StrictMessage,
    Symbol,
    Text,
    TradingState,
    VenueName,
)


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


class Subscribe(StrictMessage, frozen=True, kw_only=True, tag="subscribe"):
    """Ask a connector to publish these streams. `["*"]` means every instrument it lists."""

    symbols: list[Symbol]
    kinds: list[MarketDataKind] = msgspec.field(default_factory=lambda: list(TICK_KINDS))


class Unsubscribe(StrictMessage, frozen=True, kw_only=True, tag="unsubscribe"):
    symbols: list[Symbol]
    kinds: list[MarketDataKind] = msgspec.field(default_factory=lambda: list(TICK_KINDS))


class ListInstruments(StrictMessage, frozen=True, kw_only=True, tag="list_instruments"):
    pass


SubscriptionRequest = Union[Subscribe, Unsubscribe, ListInstruments]


class StreamSubscription(Message, frozen=True, kw_only=True, tag="stream"):
    symbol: Symbol
    kinds: list[MarketDataKind]


class SubscriptionReply(Message, frozen=True, kw_only=True, tag="subscription"):
    """The connector's subscriptions after the request; `unknown_symbols` were refused."""

    ok: bool
    subscriptions: list[StreamSubscription]
    instruments: list[Symbol] = []
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


class GetPositions(StrictMessage, frozen=True, kw_only=True, tag="get_positions"):
    account: AccountName | None = None


OmsRequest = Union[GetOrder, ListOrders, GetPositions]


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


class OmsReply(Message, frozen=True, kw_only=True, tag="oms_reply"):
    ok: bool
    orders: list[OrderRecord] = []
    positions: list[AggregatePosition] = []
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


RiskRequest = Union[SetTradingState, GetTradingState]


class TradingStateReply(Message, frozen=True, kw_only=True, tag="trading_state"):
    ok: bool
    fleet: TradingState
    accounts: dict[str, TradingState] = {}
    error: Text = ""
