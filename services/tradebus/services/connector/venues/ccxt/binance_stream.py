"""Binance spot market streams, read natively: the frames of the streams ccxt's
watchBidsAsks, watchTrades and watchOrderBook subscribe (`<symbol>@bookTicker`,
`<symbol>@trade`, `<symbol>@depth@100ms`, on the raw-stream endpoint `/ws`) as typed
structs, and the wire messages they give.

Sources (binance/binance-spot-api-docs web-socket-streams.md, and
https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams):
"Live Subscribing/Unsubscribing to streams" (`{"method": "SUBSCRIBE", "params": [...],
"id": 1}`, answered `{"result": null, "id": 1}`, refused with `{"error": {"code", "msg"},
"id"}`; "WebSocket connections have a limit of 5 incoming messages per second"), "Trade
Streams", "Individual Symbol Book Ticker Streams", "Diff. Depth Stream" and "How to manage
a local order book correctly"; rest-api.md "Order book" (`GET /api/v3/depth`). The
`serverShutdown` event ends market streams too (see stream_ends.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec

from tradebus.schemas.market import BookLevel, BookSnapshot, Quote, Trade
from tradebus.schemas.values import Aggressor, MarketDataKind
from tradebus.schemas.wireform import canonical_decimals, plain_decimals, wire_form

from ...errors import VenueBusy
from .native_stream import Channel, LocalBook, StreamEnded, refusing_malformed
from .stream_ends import STREAM_ENDING_EVENTS

MS = 1_000_000
DEPTH_SNAPSHOT_LIMIT = 1000  # levels a side of the REST snapshot (ccxt's watchOrderBookLimit default)


# Frame structs are gc=False: they hold only scalars and lists of levels, never a cycle, and
# untracked structs are cheaper to allocate, which counts per frame. A ticker's and a trade's
# decimals stay text: they go on the wire as the venue wrote them, once proven decimals of the
# contract (schemas/wireform.py); fields no wire message takes are left out, which the decoder
# skips for less than it would take to build them.
class Level(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """`["0.0024", "10"]`: price and quantity."""

    price: Decimal
    size: Decimal


class BookTicker(msgspec.Struct, frozen=True, gc=False):
    """`<symbol>@bookTicker`: the best bid and ask, on every change (also `u`, the order book
    update id)."""

    s: str  # symbol (venue id)
    b: str  # best bid price
    B: str  # best bid quantity
    a: str  # best ask price
    A: str  # best ask quantity


class TradeEvent(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="trade"):
    """`<symbol>@trade`: one trade (also `E`, the event time)."""

    s: str
    t: int  # trade id
    p: str  # price
    q: str  # quantity
    T: int  # trade time, ms
    m: bool  # the buyer was the maker: the seller took


class DepthUpdate(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="depthUpdate"):
    """`<symbol>@depth@100ms`: the levels that changed (quantity 0: removed) between the
    update ids U and u."""

    E: int
    s: str
    U: int  # first update id in the event
    u: int  # final update id in the event
    b: list[Level]
    a: list[Level]


class DepthSnapshot(msgspec.Struct, frozen=True):
    """`GET /api/v3/depth`."""

    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]


class RequestError(msgspec.Struct, frozen=True):
    code: int
    msg: str


class Control(msgspec.Struct, frozen=True):
    """Whatever else the raw-stream endpoint sends: answers to requests, events."""

    e: str | None = None
    id: int | str | None = None
    error: RequestError | None = None


class StreamProtocol:
    keepalive = None  # the server pings; aiohttp answers with pongs

    def __init__(self) -> None:
        self._control = msgspec.json.Decoder(Control)

    def subscribe(self, topics: list[str], request_id: int) -> str:
        return msgspec.json.encode({"method": "SUBSCRIBE", "params": topics, "id": request_id}).decode()

    def unsubscribe(self, topics: list[str], request_id: int) -> str:
        return msgspec.json.encode({"method": "UNSUBSCRIBE", "params": topics, "id": request_id}).decode()

    def control(self, data: str | bytes) -> None:
        frame = self._control.decode(data)
        if frame.e in STREAM_ENDING_EVENTS["binance"]:
            raise StreamEnded(f"binance {frame.e}: the venue ended this stream")
        if frame.error is not None:
            raise StreamEnded(f"binance refused the subscription: {frame.error.code} {frame.error.msg}")


CHANNELS: dict[MarketDataKind, Channel[Any]] = {
    MarketDataKind.QUOTE: Channel(BookTicker, lambda venue_id: f"{venue_id.lower()}@bookTicker", key="s"),
    MarketDataKind.TRADE: Channel(TradeEvent, lambda venue_id: f"{venue_id.lower()}@trade", key="s"),
    MarketDataKind.BOOK: Channel(DepthUpdate, lambda venue_id: f"{venue_id.lower()}@depth@100ms", key="s"),
}


def stream_url(urls: dict[str, Any]) -> str:
    """The raw-stream endpoint ccxt uses for spot (it appends a connection number)."""
    return str(urls["ws"]["spot"])


# --- frames into wire messages ------------------------------------------------------------------
# Tickers and trades are published in their wire form: the venue's decimal text as it came when
# it is what str(Decimal) would write (plain_decimals), no Decimal made.
WireQuote, WireTrade = wire_form(Quote), wire_form(Trade)


def quote(venue: str, symbol: str, frame: BookTicker, now: int) -> msgspec.Struct:
    """A book ticker carries no time: the moment it arrived stands for it."""
    bid, bid_size, ask, ask_size = frame.b, frame.B, frame.a, frame.A
    if not plain_decimals(f'["{bid}","{bid_size}","{ask}","{ask_size}"]', 4):
        bid, bid_size, ask, ask_size = canonical_decimals(bid, bid_size, ask, ask_size)
    return WireQuote(venue=venue, symbol=symbol, seq=0, ts_event=now, ts_recv=now,
                     bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size)


AGGRESSOR_BY_MAKER = (Aggressor.BUY, Aggressor.SELL)  # indexed by `m`: the buyer was the maker


def trade(venue: str, symbol: str, frame: TradeEvent, now: int) -> msgspec.Struct:
    price, size = frame.p, frame.q
    if not plain_decimals(f'["{price}","{size}"]', 2):
        price, size = canonical_decimals(price, size)
    return WireTrade(venue=venue, symbol=symbol, seq=0, ts_event=frame.T * MS, ts_recv=now, price=price,
                     size=size, aggressor=AGGRESSOR_BY_MAKER[frame.m], trade_id=str(frame.t))


def book(venue: str, symbol: str, local: LocalBook, depth: int, ts_event: int, now: int) -> BookSnapshot:
    bids, asks = local.top(depth)
    return BookSnapshot(venue=venue, symbol=symbol, seq=0, ts_event=ts_event or now, ts_recv=now,
                        bids=[BookLevel(price=p, size=s) for p, s in bids],
                        asks=[BookLevel(price=p, size=s) for p, s in asks])


class DiffBook:
    """The local book of "How to manage a local order book correctly": diff events are
    buffered until a REST snapshot at least as new as the first of them; events the snapshot
    already holds (u <= lastUpdateId) are dropped; the first applied one spans
    lastUpdateId + 1; each next one starts where the previous ended (U = previous u + 1),
    else updates were lost and the book must be rebuilt."""

    def __init__(self, snapshot: DepthSnapshot) -> None:
        self.local = LocalBook()
        self.local.reset(snapshot.bids, snapshot.asks)
        self.last_id = snapshot.lastUpdateId
        self.synced = False  # an event spanning the snapshot's id was applied
        self.ts = 0  # ms of the last applied event

    def apply(self, update: DepthUpdate) -> bool:
        """Whether the event changed the book; raises VenueBusy when updates were lost."""
        if update.u <= self.last_id:
            return False
        expected = self.last_id + 1
        if (update.U > expected) if not self.synced else (update.U != expected):
            raise VenueBusy(f"binance depth of {update.s}: updates {expected}..{update.U - 1} missing")
        self.local.apply(update.b, update.a)
        self.last_id, self.ts, self.synced = update.u, update.E, True
        return True


async def books(frames: AsyncIterator[DepthUpdate], snapshot: Callable[[], Awaitable[DepthSnapshot]],
                venue: str, symbol: str, depth: int) -> AsyncIterator[list[BookSnapshot]]:
    """The book stream of one market: a snapshot once synchronized, then one per diff event."""
    first = await anext(frames)  # later events wait in the stream's queue meanwhile
    rest = await snapshot()
    while rest.lastUpdateId < first.U:  # older than the events buffered: ask again
        rest = await snapshot()
    diff = DiffBook(rest)
    diff.apply(first)
    yield [book(venue, symbol, diff.local, depth, diff.ts * MS, time.time_ns())]
    async for update in frames:
        if diff.apply(update):
            yield [book(venue, symbol, diff.local, depth, update.E * MS, time.time_ns())]


async def follow(kind: MarketDataKind, frames: AsyncGenerator[Any, None], venue: str, symbol: str, depth: int,
                 snapshot: Callable[[], Awaitable[DepthSnapshot]]) -> AsyncIterator[list[Any]]:
    """One market's stream of `kind` as wire messages (seq 0). Closing it closes `frames`
    at once (the market leaves its connection), not whenever the garbage collector gets to it."""
    async with contextlib.aclosing(frames):
        with refusing_malformed(venue, symbol):
            if kind is MarketDataKind.BOOK:
                async for snapshots in books(frames, snapshot, venue, symbol, depth):
                    yield snapshots
            elif kind is MarketDataKind.QUOTE:
                async for ticker in frames:
                    yield [quote(venue, symbol, ticker, time.time_ns())]
            else:
                async for event in frames:
                    yield [trade(venue, symbol, event, time.time_ns())]
