"""Service heartbeats and control requests (request/reply on core NATS)."""

from __future__ import annotations

from typing import Union

import msgspec

from .values import TICK_KINDS, MarketDataKind, Message, Nanos, ServiceState, StrictMessage, Symbol, Text


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
