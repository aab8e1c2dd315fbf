"""Market data over one TWS connection: one subscription per contract and request, shared by
every stream that reads it, each reader with its own queue.

Top of book and trades come from one reqMktData (tick types 1/2 bid/ask with sizes, 4 last
with its size); books from reqMktDepth (smart depth, `rows` levels), published whole at
every update (each message a BookSnapshot, so a reader that joins late starts with one);
bars from reqRealTimeBars (IB's only real-time bar: 5 seconds, each sent as it ends; TRADES,
MIDPOINT for currency pairs, which IB does not trade-report). When the connection is lost (or
TWS reports 1101, its market data lost after a reconnect to IB), every reader is failed: each
stream publishes its gap and subscribes again on the next connection, as IB requires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from ib_async import IB, Contract, RealTimeBarList, Ticker

from tradebus.schemas.events import DERIVED_TRADE_ID_PREFIX
from tradebus.schemas.market import Bar, BookLevel, BookSnapshot, Quote, Trade
from tradebus.schemas.values import Aggressor, MarketDataKind

from ...errors import VenueBusy
from .parsing import number

_LOST = object()
LAST = 4  # IB tick type: last trade price (its size comes with it)
BAR_SECONDS = 5  # reqRealTimeBars: the one bar size TWS offers
# The request each kind reads: reqMktData (quotes and trades), reqMktDepth, reqRealTimeBars.
REQUESTS = {MarketDataKind.QUOTE: "ticks", MarketDataKind.TRADE: "ticks", MarketDataKind.BOOK: "depth",
            MarketDataKind.BAR: "bars"}


class Feeds:
    def __init__(self, ib: IB, venue: str, rows: int) -> None:
        self.ib, self.venue, self.rows = ib, venue, rows
        self._readers: dict[tuple[MarketDataKind, str], set[asyncio.Queue[Any]]] = {}
        self._subscriptions: dict[tuple[str, str], Ticker | RealTimeBarList] = {}  # (request, symbol) -> it

    async def stream(self, kind: MarketDataKind, symbol: str, contract: Contract) -> AsyncIterator[list[Any]]:
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        readers = self._readers.setdefault((kind, symbol), set())
        readers.add(queue)
        request = REQUESTS[kind]
        try:
            if (request, symbol) not in self._subscriptions:
                self._subscribe(request, symbol, contract)
            while True:
                item = await queue.get()
                if item is _LOST:
                    raise VenueBusy("TWS market data lost")
                yield item
        finally:
            readers.discard(queue)
            if not any(self._readers.get((other, symbol)) for other, name in REQUESTS.items() if name == request):
                self._stop(request, symbol, contract)

    def lost(self) -> None:
        """The connection or its market data is gone: every reader resubscribes."""
        self._subscriptions.clear()
        for readers in self._readers.values():
            for queue in readers:
                queue.put_nowait(_LOST)

    def _subscribe(self, request: str, symbol: str, contract: Contract) -> None:
        if request == "bars":
            bars = self.ib.reqRealTimeBars(contract, BAR_SECONDS, "MIDPOINT" if contract.secType == "CASH" else "TRADES",
                                           False)
            bars.updateEvent += lambda bars, new, symbol=symbol: self._bar(bars, symbol) if new else None
            self._subscriptions[request, symbol] = bars
            return
        ticker = self.ib.reqMktDepth(contract, self.rows, isSmartDepth=True) if request == "depth" else \
            self.ib.reqMktData(contract)
        ticker.updateEvent += lambda ticker, symbol=symbol, request=request: self._update(ticker, symbol, request)
        self._subscriptions[request, symbol] = ticker

    def _stop(self, request: str, symbol: str, contract: Contract) -> None:
        subscription = self._subscriptions.pop((request, symbol), None)
        if subscription is None or not self.ib.isConnected():
            return
        if isinstance(subscription, RealTimeBarList):
            self.ib.cancelRealTimeBars(subscription)
        elif request == "depth":
            self.ib.cancelMktDepth(contract, isSmartDepth=True)
        else:
            self.ib.cancelMktData(contract)

    def _bar(self, bars: RealTimeBarList, symbol: str) -> None:
        bar, now = bars[-1], time.time_ns()
        start = int(bar.time.timestamp()) * 1_000_000_000
        self._send(MarketDataKind.BAR, symbol, [Bar(
            venue=self.venue, symbol=symbol, seq=0, ts_event=start + BAR_SECONDS * 1_000_000_000, ts_recv=now,
            interval=BAR_SECONDS, start=start, open=number(bar.open_), high=number(bar.high), low=number(bar.low),
            close=number(bar.close), volume=max(number(bar.volume), Decimal(0)), trades=max(bar.count, 0))])

    def _update(self, ticker: Ticker, symbol: str, request: str) -> None:
        now = time.time_ns()
        if request == "depth":
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
