"""Bybit v5 spot public stream, read natively: the frames of the topics ccxt's watchBidsAsks,
watchTrades and watchOrderBook subscribe (`orderbook.1.<symbol>`, `publicTrade.<symbol>`,
`orderbook.50.<symbol>`, on `/v5/public/spot`) as typed structs, and the wire messages
they give.

Sources (https://bybit-exchange.github.io/docs/v5/ws/connect, .../v5/websocket/public/orderbook,
.../v5/websocket/public/trade): requests `{"req_id", "op": "subscribe" | "unsubscribe",
"args": [topics]}` answered `{"success", "ret_msg", "conn_id", "req_id", "op"}`; a ping
(`{"op": "ping"}`) recommended every 20 seconds to keep the connection; an order book topic
starts with a `snapshot` of its depth and goes on with `delta`s of the changed levels (size
"0": removed), and any later snapshot (after a service restart, `u` = 1) replaces the book;
a trade frame carries a list of trades.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal
from typing import Any, Literal

import msgspec

from tradebus.schemas.market import BookLevel, BookSnapshot, Quote, Trade
from tradebus.schemas.values import Aggressor, MarketDataKind
from tradebus.schemas.wireform import canonical_decimals, plain_decimals, wire_form

from .native_stream import Channel, LocalBook, StreamEnded, refusing_malformed

MS = 1_000_000
KEEPALIVE_SECONDS = 20.0
QUOTE_DEPTH, BOOK_DEPTH = 1, 50  # the order book topics ccxt subscribes for spot quotes and books


# Frame structs are gc=False: they hold only scalars and lists of levels, never a cycle, and
# untracked structs are cheaper to allocate, which counts per frame. A trade's decimals stay
# text: they go on the wire as the venue wrote them, once proven decimals of the contract
# (schemas/wireform.py); the trade fields no wire message takes are left out: the decoder
# skips them for less than it would take to build them. Book levels are Decimals: they are
# the local book's keys, compared and ordered.
class Level(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """`["16493.50", "0.006"]`: price and size."""

    price: Decimal
    size: Decimal


class OrderbookData(msgspec.Struct, frozen=True):
    s: str  # symbol (venue id)
    b: list[Level]  # bids
    a: list[Level]  # asks
    u: int  # update id
    seq: int  # cross sequence


class OrderbookFrame(msgspec.Struct, frozen=True):
    """`orderbook.{depth}.{symbol}`."""

    topic: str
    type: Literal["snapshot", "delta"]
    ts: int  # ms the system generated the data
    data: OrderbookData


class PublicTrade(msgspec.Struct, frozen=True, gc=False):
    """One trade (also `s`, the symbol, `L`, the tick direction, and `BT`, a block trade)."""

    T: int  # trade time, ms
    S: Literal["Buy", "Sell"]  # the taker's side
    v: str  # size
    p: str  # price
    i: str  # trade id


class TradeFrame(msgspec.Struct, frozen=True):
    """`publicTrade.{symbol}` (also `ts`, when the system generated the data)."""

    topic: str
    data: list[PublicTrade]


class Control(msgspec.Struct, frozen=True):
    """An answer to a request (subscribe, unsubscribe, ping)."""

    success: bool | None = None
    ret_msg: str = ""
    op: str | None = None


class StreamProtocol:
    def __init__(self) -> None:
        self._control = msgspec.json.Decoder(Control)
        self.keepalive = (KEEPALIVE_SECONDS, self.ping)

    def subscribe(self, topics: list[str], request_id: int) -> str:
        return msgspec.json.encode({"req_id": str(request_id), "op": "subscribe", "args": topics}).decode()

    def unsubscribe(self, topics: list[str], request_id: int) -> str:
        return msgspec.json.encode({"req_id": str(request_id), "op": "unsubscribe", "args": topics}).decode()

    def ping(self, request_id: int) -> str:
        return msgspec.json.encode({"req_id": str(request_id), "op": "ping"}).decode()

    def control(self, data: str | bytes) -> None:
        frame = self._control.decode(data)
        if frame.op == "subscribe" and frame.success is False:
            raise StreamEnded(f"bybit refused the subscription: {frame.ret_msg}")


CHANNELS: dict[MarketDataKind, Channel[Any]] = {
    MarketDataKind.QUOTE: Channel(OrderbookFrame, lambda venue_id: f"orderbook.{QUOTE_DEPTH}.{venue_id}", key="topic"),
    MarketDataKind.TRADE: Channel(TradeFrame, lambda venue_id: f"publicTrade.{venue_id}", key="topic"),
    MarketDataKind.BOOK: Channel(OrderbookFrame, lambda venue_id: f"orderbook.{BOOK_DEPTH}.{venue_id}", key="topic"),
}


def stream_url(urls: dict[str, Any]) -> str:
    """The public spot endpoint (ccxt's getUrlByMarketType for a spot market)."""
    return str(urls["ws"]["public"]["spot"])


# --- frames into wire messages ------------------------------------------------------------------
def apply(local: LocalBook, frame: OrderbookFrame) -> None:
    if frame.type == "snapshot":
        local.reset(frame.data.b, frame.data.a)
    else:
        local.apply(frame.data.b, frame.data.a)


def quote(venue: str, symbol: str, local: LocalBook, ts: int, now: int) -> Quote | None:
    """The top of the book; None while a side is empty."""
    (bids, asks) = local.top(1)
    if not bids or not asks:
        return None
    (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
    return Quote(venue=venue, symbol=symbol, seq=0, ts_event=ts * MS or now, ts_recv=now,
                 bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size)


WireTrade = wire_form(Trade)  # trades are published in their wire form: the venue's decimal text


def trades(venue: str, symbol: str, frame: TradeFrame, now: int) -> list[msgspec.Struct]:
    return [trade(venue, symbol, t, now) for t in frame.data]


def trade(venue: str, symbol: str, t: PublicTrade, now: int) -> msgspec.Struct:
    price, size = t.p, t.v
    if not plain_decimals(f'["{price}","{size}"]', 2):
        price, size = canonical_decimals(price, size)
    return WireTrade(venue=venue, symbol=symbol, seq=0, ts_event=t.T * MS or now, ts_recv=now, price=price,
                     size=size, aggressor=Aggressor.BUY if t.S == "Buy" else Aggressor.SELL, trade_id=t.i)


def book(venue: str, symbol: str, local: LocalBook, depth: int, ts: int, now: int) -> BookSnapshot:
    bids, asks = local.top(depth)
    return BookSnapshot(venue=venue, symbol=symbol, seq=0, ts_event=ts * MS or now, ts_recv=now,
                        bids=[BookLevel(price=p, size=s) for p, s in bids],
                        asks=[BookLevel(price=p, size=s) for p, s in asks])


async def follow(kind: MarketDataKind, frames: AsyncGenerator[Any, None], venue: str, symbol: str,
                 depth: int) -> AsyncIterator[list[Any]]:
    """One market's stream of `kind` as wire messages (seq 0). Closing it closes `frames`
    at once (the market leaves its connection), not whenever the garbage collector gets to it."""
    async with contextlib.aclosing(frames):
        with refusing_malformed(venue, symbol):
            if kind is MarketDataKind.TRADE:
                async for frame in frames:
                    yield trades(venue, symbol, frame, time.time_ns())
                return
            local = LocalBook()
            async for frame in frames:
                apply(local, frame)
                if kind is MarketDataKind.BOOK:
                    yield [book(venue, symbol, local, depth, frame.ts, time.time_ns())]
                else:
                    top = quote(venue, symbol, local, frame.ts, time.time_ns())
                    yield [top] if top is not None else []
