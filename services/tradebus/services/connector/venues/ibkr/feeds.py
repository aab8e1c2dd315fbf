"""Market data over one TWS connection: one subscription per contract and kind, shared by
every stream that reads it, each reader with its own queue.

Top of book and trades come from one reqMktData (tick types 1/2 bid/ask with sizes, 4 last
with its size); books from reqMktDepth (smart depth, `rows` levels), published whole at
every update (each message a BookSnapshot, so a reader that joins late starts with one).
When the connection is lost (or TWS reports 1101, its market data lost after a reconnect to
IB), every reader is failed: each stream publishes its gap and subscribes again on the next
connection, as IB requires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from ib_async import IB, Contract, Ticker

from tradebus.schemas.events import DERIVED_TRADE_ID_PREFIX
from tradebus.schemas.market import BookLevel, BookSnapshot, Quote, Trade
from tradebus.schemas.values import Aggressor, MarketDataKind

from ...errors import VenueBusy
from .parsing import number

_LOST = object()
LAST = 4  # IB tick type: last trade price (its size comes with it)


class Feeds:
    def __init__(self, ib: IB, venue: str, rows: int) -> None:
        self.ib, self.venue, self.rows = ib, venue, rows
        self._readers: dict[tuple[MarketDataKind, str], set[asyncio.Queue[Any]]] = {}
        self._tickers: dict[tuple[bool, str], Ticker] = {}  # (depth, symbol) -> its subscription

    async def stream(self, kind: MarketDataKind, symbol: str, contract: Contract) -> AsyncIterator[list[Any]]:
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        readers = self._readers.setdefault((kind, symbol), set())
        readers.add(queue)
        depth = kind is MarketDataKind.BOOK
        try:
            if (depth, symbol) not in self._tickers:
                ticker = (self.ib.reqMktDepth(contract, self.rows, isSmartDepth=True) if depth
                          else self.ib.reqMktData(contract))
                self._tickers[depth, symbol] = ticker
                ticker.updateEvent += lambda ticker, symbol=symbol, depth=depth: self._update(ticker, symbol, depth)
            while True:
                item = await queue.get()
                if item is _LOST:
                    raise VenueBusy("TWS market data lost")
                yield item
        finally:
            readers.discard(queue)
            if not readers:
                self._stop(depth, symbol, contract)

    def lost(self) -> None:
        """The connection or its market data is gone: every reader resubscribes."""
        self._tickers.clear()
        for readers in self._readers.values():
            for queue in readers:
                queue.put_nowait(_LOST)

    def _stop(self, depth: bool, symbol: str, contract: Contract) -> None:
        kinds = (MarketDataKind.BOOK,) if depth else (MarketDataKind.QUOTE, MarketDataKind.TRADE)
        if any(self._readers.get((kind, symbol)) for kind in kinds) or (depth, symbol) not in self._tickers:
            return
        del self._tickers[depth, symbol]
        if self.ib.isConnected():
            if depth:
                self.ib.cancelMktDepth(contract, isSmartDepth=True)
            else:
                self.ib.cancelMktData(contract)

    def _update(self, ticker: Ticker, symbol: str, depth: bool) -> None:
        now = time.time_ns()
        if depth:
            self._send(MarketDataKind.BOOK, symbol, [BookSnapshot(
                venue=self.venue, symbol=symbol, seq=0, ts_event=now, ts_recv=now,
                bids=[BookLevel(price=number(level.price), size=number(level.size)) for level in ticker.domBids],
                asks=[BookLevel(price=number(level.price), size=number(level.size)) for level in ticker.domAsks])])
            return
        if all(map(_valid, (ticker.bid, ticker.ask, ticker.bidSize, ticker.askSize))):
            self._send(MarketDataKind.QUOTE, symbol, [Quote(
                venue=self.venue, symbol=symbol, seq=0, ts_event=now, ts_recv=now, bid=number(ticker.bid),
                bid_size=number(ticker.bidSize), ask=number(ticker.ask), ask_size=number(ticker.askSize))])
        # IB's ticks name no trade: the id is made up here, marked so (the schema's derived prefix)
        trades = [Trade(venue=self.venue, symbol=symbol, seq=0, ts_event=now, ts_recv=now, price=number(tick.price),
                        size=number(tick.size), aggressor=Aggressor.UNKNOWN,
                        trade_id=f"{DERIVED_TRADE_ID_PREFIX}{symbol}:{now}:{index}")
                  for index, tick in enumerate(ticker.ticks) if tick.tickType == LAST and tick.size > 0]
        if trades:
            self._send(MarketDataKind.TRADE, symbol, trades)

    def _send(self, kind: MarketDataKind, symbol: str, messages: list[Any]) -> None:
        for queue in self._readers.get((kind, symbol), ()):
            queue.put_nowait(messages)


def _valid(value: float) -> bool:
    return value == value and value > 0  # IB leaves a price or size it has not sent as NaN (a price as -1 too)
