"""Normalized market data, published by connectors on `tradebus.md.<venue>.<kind>.<symbol>`.

Every stream (venue, kind, symbol) numbers its messages with `seq`, starting at 1 when the
connector starts and increasing by one per message, markers included. A subscriber that
sees `seq` jump lost messages on the bus; a `StreamGap` says the connector itself lost data
upstream (e.g. the venue feed dropped), and `StreamReconnected` that the upstream feed is
back. After either, a book consumer must wait for the next `BookSnapshot`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Union

import msgspec

from .values import Aggressor, MarketDataKind, Message, Nanos, Side, Symbol, Text, VenueName


class MarketDataBase(Message, frozen=True, kw_only=True):
    venue: VenueName
    symbol: Symbol
    seq: int
    ts_event: Nanos
    ts_recv: Nanos


# Quotes and trades are the firehose and hold only scalars, so they can never be part of a
# reference cycle: gc=False keeps the collector from counting and tracking each of them.
class Quote(MarketDataBase, frozen=True, kw_only=True, tag="quote", gc=False):
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal


class Trade(MarketDataBase, frozen=True, kw_only=True, tag="trade", gc=False):
    price: Decimal
    size: Decimal
    aggressor: Aggressor
    trade_id: str


class Bar(MarketDataBase, frozen=True, kw_only=True, tag="bar"):
    """An OHLCV bar over [`start`, `ts_event`); `interval` in seconds."""

    interval: int
    start: Nanos
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int


class BookLevel(Message, frozen=True, kw_only=True, tag="level"):
    price: Decimal
    size: Decimal


class BookSnapshot(MarketDataBase, frozen=True, kw_only=True, tag="book_snapshot"):
    """The top `depth` levels each side; bids best-first (descending), asks ascending."""

    bids: list[BookLevel]
    asks: list[BookLevel]


class BookChange(Message, frozen=True, kw_only=True, tag="change"):
    """A level's new size; size 0 removes the level."""

    side: Side  # buy = bid side, sell = ask side
    price: Decimal
    size: Decimal


class BookDelta(MarketDataBase, frozen=True, kw_only=True, tag="book_delta"):
    changes: list[BookChange]


class Instrument(MarketDataBase, frozen=True, kw_only=True, tag="instrument"):
    """Trading rules of an instrument: prices are multiples of `tick_size`, quantities of
    `lot_size`, and price x quantity must reach `min_notional`."""

    venue_symbol: str
    asset_class: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    # Derivatives (futures, options): the expiry date (exchange calendar, YYYY-MM-DD) and
    # an option's strike; None for spot instruments and where the venue does not say.
    expiry: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")] | None = None
    strike: Decimal | None = None


class StreamGap(MarketDataBase, frozen=True, kw_only=True, tag="gap"):
    """The connector lost upstream data of this stream between `gap_start` and `ts_event`."""

    kind: MarketDataKind
    gap_start: Nanos
    reason: Text


class StreamReconnected(MarketDataBase, frozen=True, kw_only=True, tag="reconnected"):
    """The upstream feed of this stream is live again; state-based streams (books) resend a
    snapshot next."""

    kind: MarketDataKind
    reason: Text


MarketData = Union[Quote, Trade, Bar, BookSnapshot, BookDelta, Instrument, StreamGap, StreamReconnected]
