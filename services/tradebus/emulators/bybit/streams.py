"""Bybit v5 websockets, emulated: the public spot stream (`/v5/public/spot`: orderbook.N,
publicTrade, tickers, kline topics) and the private stream (`/v5/private`: `auth`, then the
`order`, `execution` and `wallet` topics of the authenticated account).

Frames follow Bybit's documented shapes: `{"topic", "type": "snapshot"|"delta", "ts",
"data"}`; an order book topic starts with a snapshot of N levels a side, then deltas of the
changed levels (size "0": removed) with an update id `u` one higher each time and a
cross-sequence `seq`. Requests are answered `{"success", "ret_msg", "conn_id", "req_id",
"op"}`; `{"op": "ping"}` is answered with a pong (public: ret_msg "pong"; private: op "pong").
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import uuid
from decimal import Decimal
from typing import Any

from aiohttp import web

from tradebus.simulator.market import MarketUpdate
from tradebus.simulator.state import Level

from ..streams import Stream, StreamSession
from ..venue import EmulatedFill, EmulatedOrder, EmulatedVenue, Refused
from . import render
from .candles import INTERVALS, Candles

BOOK_DEPTHS = (1, 50, 200, 1000)  # what Bybit spot offers


class Session(StreamSession):
    """A Bybit stream client: its connection id (in every answer)."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        super().__init__(socket)
        self.conn_id = str(uuid.uuid4())

    def answer(self, request: dict[str, Any], *, success: bool = True, message: str = "") -> None:
        reply = {"success": success, "ret_msg": message, "conn_id": self.conn_id, "op": request.get("op")}
        if "req_id" in request:  # echoed only when given: clients match answers by it
            reply["req_id"] = request["req_id"]
        self.send(reply)


class Book:
    """The public book of one symbol as the stream tells it: levels, update id, sequence."""

    def __init__(self) -> None:
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self.update_id = 0
        self.seq = 0
        self.ts = 0  # ms of the last change


class BybitStreams:
    def __init__(self, venue: EmulatedVenue, symbols: dict[str, str], candles: dict[str, Candles]) -> None:
        self.venue = venue
        self.symbols = symbols  # Bybit id -> unified symbol
        self.candles = candles
        self.books = {symbol: Book() for symbol in symbols.values()}
        self.public = Stream(self._public_request, session=Session, undecodable=_invalid_request)
        self.private = Stream(self._private_request, session=Session, undecodable=_invalid_request)
        self._trade_ids = itertools.count(1)
        self._sequence = itertools.count(1)
        venue.on_market(self._on_market)
        venue.on_order(self._on_order)

    def subscribers(self, topic: str) -> int:
        """How many connections (public or private) are subscribed to `topic`."""
        return sum(topic in session.topics for session in self.public.sessions + self.private.sessions)

    # --- requests ---------------------------------------------------------------------------
    def _public_request(self, session: Session, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "ping":
            session.answer(request, message="pong")
        elif op == "subscribe":
            topics = [str(topic) for topic in request.get("args", [])]
            unknown = [topic for topic in topics if not self._public_topic_known(topic)]
            if unknown:
                session.answer(request, success=False, message=f"Invalid topic: {','.join(unknown)}")
                return
            session.topics.update(topics)
            session.answer(request, message="subscribe")
            for topic in topics:  # a book topic starts with its snapshot
                if topic.startswith("orderbook."):
                    self._send_snapshot(session, topic)
        elif op == "unsubscribe":
            session.topics.difference_update(request.get("args", []))
            session.answer(request, message="unsubscribe")
        else:
            session.answer(request, success=False, message=f"Invalid op: {op}")

    def _private_request(self, session: Session, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "ping":
            session.send({"req_id": request.get("req_id", ""), "op": "pong",
                          "args": [str(render.now_ms())], "conn_id": session.conn_id})
        elif op == "auth":
            session.account = self._authenticate(request.get("args", []))
            session.answer(request, success=session.account is not None,
                           message="" if session.account is not None else "Request not authorized")
        elif op == "subscribe":
            if session.account is None:
                session.answer(request, success=False, message="Request not authorized")
                return
            topics = [str(topic) for topic in request.get("args", [])]
            session.topics.update(topics)
            session.answer(request, message="")
        elif op == "unsubscribe":
            session.topics.difference_update(request.get("args", []))
            session.answer(request, message="")
        else:
            session.answer(request, success=False, message=f"Invalid op: {op}")

    def _authenticate(self, args: list[Any]) -> str | None:
        """Bybit's websocket auth: [api key, expires (ms), hex HMAC-SHA256 of "GET/realtime" + expires]."""
        if len(args) != 3:
            return None
        api_key, expires, signature = (str(arg) for arg in args)
        try:
            account = self.venue.authenticate(api_key)
        except Refused:
            return None
        if not expires.isdigit() or int(expires) < render.now_ms():
            return None
        expected = hmac.new(self.venue.credentials[account].encode(), f"GET/realtime{expires}".encode(),
                            hashlib.sha256).hexdigest()
        return account if hmac.compare_digest(expected, signature) else None

    def _public_topic_known(self, topic: str) -> bool:
        parts = topic.split(".")
        if parts[-1] not in self.symbols:
            return False
        if parts[0] == "orderbook":
            return len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in BOOK_DEPTHS
        if parts[0] == "kline":
            return len(parts) == 3 and parts[1] in INTERVALS
        return len(parts) == 2 and parts[0] in ("publicTrade", "tickers")

    # --- public frames ------------------------------------------------------------------------
    def _on_market(self, update: MarketUpdate) -> None:
        symbol = update.symbol
        venue_id = render.venue_symbol(symbol)
        ts = update.ts // 1_000_000
        book = self.books[symbol]
        previous = (book.bids, book.asks)
        if update.bids is not None and update.asks is not None:
            book.bids, book.asks = list(update.bids), list(update.asks)
            book.update_id += 1
            book.seq = next(self._sequence)
            book.ts = ts
        if update.trade is not None:
            self.candles[symbol].record(ts, update.trade.price, update.trade.size)
        frames: dict[str, dict[str, Any]] = {}
        for session in self.public.sessions:
            for topic in session.topics:
                parts = topic.split(".")
                if parts[-1] != venue_id or topic in frames:
                    continue
                if parts[0] == "orderbook" and update.bids is not None:
                    frames[topic] = self._book_delta(topic, book, previous, int(parts[1]))
                elif parts[0] == "publicTrade" and update.trade is not None:
                    frames[topic] = {"topic": topic, "type": "snapshot", "ts": ts, "data": [{
                        "T": ts, "s": venue_id, "S": "Buy" if update.trade.aggressor.value == "buy" else "Sell",
                        "v": render.number(update.trade.size), "p": render.number(update.trade.price),
                        "L": "ZeroPlusTick", "i": str(next(self._trade_ids)), "BT": False,
                    }]}
                elif parts[0] == "tickers" and update.trade is not None:
                    frames[topic] = {"topic": topic, "type": "snapshot", "ts": ts, "cs": book.seq,
                                     "data": self.ticker(symbol)}
                elif parts[0] == "kline" and update.trade is not None:
                    frames[topic] = self._kline(topic, symbol, parts[1], ts)
        for session in self.public.sessions:
            for topic in session.topics:
                if topic in frames:
                    session.send(frames[topic])

    def _send_snapshot(self, session: Session, topic: str) -> None:
        symbol = self.symbols[topic.split(".")[-1]]
        depth = int(topic.split(".")[1])
        book = self.books[symbol]
        session.send({"topic": topic, "type": "snapshot", "ts": book.ts or render.now_ms(), "data": {
            "s": render.venue_symbol(symbol), "b": _levels(book.bids[:depth]), "a": _levels(book.asks[:depth]),
            "u": book.update_id, "seq": book.seq}, "cts": book.ts})

    def _book_delta(self, topic: str, book: Book, previous: tuple[list[Level], list[Level]], depth: int) -> dict[str, Any]:
        return {"topic": topic, "type": "delta", "ts": book.ts, "data": {
            "s": topic.split(".")[-1], "b": _changes(previous[0][:depth], book.bids[:depth]),
            "a": _changes(previous[1][:depth], book.asks[:depth]), "u": book.update_id, "seq": book.seq},
            "cts": book.ts}

    def ticker(self, symbol: str) -> dict[str, Any]:
        """The spot ticker (REST /v5/market/tickers adds the touch to this)."""
        day = self.candles[symbol].day()
        book = self.books[symbol]
        last = day.close if day else (book.bids[0][0] if book.bids else Decimal(0))
        return {
            "symbol": render.venue_symbol(symbol), "lastPrice": render.number(last),
            "highPrice24h": render.number(day.high if day else last), "lowPrice24h": render.number(day.low if day else last),
            "prevPrice24h": render.number(day.open if day else last),
            "volume24h": render.number(day.volume if day else Decimal(0)),
            "turnover24h": render.number(day.turnover if day else Decimal(0)),
            "price24hPcnt": render.number(round((last - day.open) / day.open, 4) if day and day.open else Decimal(0)),
            "usdIndexPrice": render.number(last),
        }

    def _kline(self, topic: str, symbol: str, interval: str, ts: int) -> dict[str, Any]:
        bar = self.candles[symbol].bars(interval)[-1]
        length = INTERVALS[interval] * 60_000
        return {"topic": topic, "type": "snapshot", "ts": ts, "data": [{
            "start": bar.start, "end": bar.start + length - 1, "interval": interval,
            "open": render.number(bar.open), "close": render.number(bar.close), "high": render.number(bar.high),
            "low": render.number(bar.low), "volume": render.number(bar.volume), "turnover": render.number(bar.turnover),
            "confirm": False, "timestamp": ts}]}

    # --- private frames -------------------------------------------------------------------------
    def _on_order(self, order: EmulatedOrder, fill: EmulatedFill | None) -> None:
        now = render.now_ms()
        frames = {"order": {"id": str(uuid.uuid4()), "topic": "order", "creationTime": now,
                            "data": [render.order(order)]}}
        if fill is not None:
            frames["execution"] = {"id": str(uuid.uuid4()), "topic": "execution", "creationTime": now,
                                   "data": [render.execution(order, fill)]}
            frames["wallet"] = {"id": str(uuid.uuid4()), "topic": "wallet", "creationTime": now,
                                "data": [render.wallet(self.venue.balances(order.account))]}
        for session in self.private.sessions:
            if session.account != order.account:
                continue
            # a fill's execution comes before the order update, as on Bybit, then the wallet
            for topic in ("execution", "order", "wallet"):
                if topic in frames and topic in session.topics:
                    session.send(frames[topic])


def _invalid_request(session: Session) -> None:
    session.send({"success": False, "ret_msg": "Invalid request", "conn_id": session.conn_id})


def _levels(levels: list[Level]) -> list[list[str]]:
    return [[render.number(price), render.number(size)] for price, size in levels]


def _changes(before: list[Level], after: list[Level]) -> list[list[str]]:
    """Changed levels with their new size, levels gone with size "0"."""
    old = dict(before)
    changes = [[render.number(p), render.number(s)] for p, s in after if old.get(p) != s]
    prices = {p for p, _ in after}
    changes += [[render.number(p), "0"] for p, _ in before if p not in prices]
    return changes
