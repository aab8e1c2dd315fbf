"""Every recorded public market-data frame (`<venue>/corpus/market/*.json`), through the
connector's native path (the stream's typed decoding, then the venue module's `follow`, as
the connector runs them) gives the same wire messages as the ccxt path does for the same
frames (ccxt's own websocket handler, then the connector's conversion of ccxt's structures),
and tickers and trades, whose decimals the native path makes from their text
(exact_decimal.py), encode to the bytes they gave when msgspec decoded those decimals.
Both run at one fixed clock, so that messages stamped with their arrival time compare too."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxt_pro
import msgspec
import pytest

from tradebus.schemas.codecs import encode
from tradebus.schemas.market import BookSnapshot, Quote, Trade
from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.errors import VenueBusy
from tradebus.services.connector.venues.ccxt import binance_stream, bybit_stream, parsing

from .corpus import HERE

NOW = 1_700_000_000_123_456_789
DEPTH = 10
KINDS = {"quote": MarketDataKind.QUOTE, "trade": MarketDataKind.TRADE, "book": MarketDataKind.BOOK}
MODULES: dict[str, Any] = {"binance": binance_stream, "bybit": bybit_stream}
# The URL ccxt's client would have: both exchanges tell spot frames apart by it.
SPOT_URLS = {"binance": "wss://stream.binance.com:9443/ws/0", "bybit": "wss://stream.bybit.com/v5/public/spot"}
FILES = [path for venue in MODULES for path in sorted((HERE / venue / "corpus" / "market").glob("*.json"))]
# (venue, stream) whose frames' decimal texts the native path turns into wire decimals itself:
# wire field -> the frame's (Binance) or each trade's (Bybit `data`) key.
TEXT_DECIMALS = {("binance", "quote"): {"bid": "b", "bid_size": "B", "ask": "a", "ask_size": "A"},
                 ("binance", "trade"): {"price": "p", "size": "q"},
                 ("bybit", "trade"): {"price": "p", "size": "v"}}
TEXT_FILES = [path for path in FILES if (path.parent.parent.parent.name, json.loads(path.read_text())["stream"])
              in TEXT_DECIMALS]


def market(symbol: str, venue_id: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {"id": venue_id, "lowercaseId": venue_id.lower(), "symbol": symbol, "base": base, "quote": quote,
            "baseId": base, "quoteId": quote, "type": "spot", "spot": True, "margin": False, "swap": False,
            "future": False, "option": False, "contract": False, "linear": None, "inverse": None, "active": True,
            "precision": {}, "limits": {}}


async def native(recorded: dict[str, Any], kind: MarketDataKind, venue_id: str) -> list[Any]:
    module = MODULES[recorded["venue"]]
    channel = module.CHANNELS[kind]

    async def frames() -> AsyncIterator[Any]:
        for frame in recorded["frames"]:
            decoded = channel.decode(json.dumps(frame))
            assert channel.key(decoded) == channel.market_key(venue_id)
            yield decoded

    async def snapshot() -> binance_stream.DepthSnapshot:
        return msgspec.convert(recorded["rest_snapshot"], binance_stream.DepthSnapshot)

    extra = (snapshot,) if recorded["venue"] == "binance" else ()
    return [message async for batch in module.follow(kind, frames(), recorded["venue"], recorded["symbol"], DEPTH,
                                                    *extra) for message in batch]


async def through_ccxt(recorded: dict[str, Any], kind: MarketDataKind, venue_id: str) -> list[Any]:
    venue, symbol = recorded["venue"], recorded["symbol"]
    exchange = getattr(ccxt_pro, venue)()
    exchange.set_markets([market(symbol, venue_id)])
    client = exchange.client(SPOT_URLS[venue])
    messages: list[Any] = []
    try:
        if kind is MarketDataKind.BOOK and venue == "binance":
            return await binance_book_through_ccxt(exchange, client, recorded)
        for frame in recorded["frames"]:
            exchange.handle_message(client, frame)
            if kind is MarketDataKind.QUOTE:
                quote = parsing.quote(venue, symbol, exchange.bidsasks[symbol], NOW)
                messages += [quote] if quote is not None else []
            elif kind is MarketDataKind.TRADE:
                count = len(frame["data"]) if venue == "bybit" else 1
                messages += [parsing.trade(venue, symbol, trade, NOW) for trade in exchange.trades[symbol][-count:]]
            else:
                messages.append(parsing.book(venue, symbol, exchange.orderbooks[symbol].limit(), DEPTH, NOW))
        return messages
    finally:
        await exchange.close()


async def binance_book_through_ccxt(exchange: Any, client: Any, recorded: dict[str, Any]) -> list[BookSnapshot]:
    """ccxt's watchOrderBook as it runs: diff events buffered from the subscription on, the
    REST snapshot (its fetch answered with the recorded one) applied with what was buffered,
    then each event; a book is published whenever ccxt resolves one."""
    symbol = recorded["symbol"]

    async def rest_book(symbol: str, limit: int | None = None, params: Any = None) -> Any:
        snapshot = exchange.parse_order_book(recorded["rest_snapshot"], symbol)
        snapshot["nonce"] = recorded["rest_snapshot"]["lastUpdateId"]
        return snapshot

    exchange.fetch_rest_order_book_safe = rest_book
    exchange.orderbooks[symbol] = exchange.order_book()
    first, *rest = recorded["frames"]
    exchange.handle_message(client, first)  # before the snapshot: buffered
    await exchange.fetch_order_book_snapshot(client, first, {"symbol": symbol, "type": "spot", "params": {}})
    books = [parsing.book("binance", symbol, exchange.orderbooks[symbol].limit(), DEPTH, NOW)]
    for frame in rest:
        nonce = exchange.orderbooks[symbol]["nonce"]
        exchange.handle_message(client, frame)
        if exchange.orderbooks[symbol]["nonce"] != nonce:
            books.append(parsing.book("binance", symbol, exchange.orderbooks[symbol].limit(), DEPTH, NOW))
    return books


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.parent.parent.name}/{p.stem}" for p in FILES])
async def test_native_parsing_gives_what_the_ccxt_path_gives(path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = json.loads(path.read_text())
    assert recorded["source"], "every recorded payload names its source"
    kind = KINDS[recorded["stream"]]
    venue_id = recorded["symbol"].replace("/", "")
    expected = await through_ccxt(recorded, kind, venue_id)
    monkeypatch.setattr(time, "time_ns", lambda: NOW)
    got = await native(recorded, kind, venue_id)
    assert expected, "the ccxt path published nothing from the recorded frames"
    assert all(isinstance(m, (Quote, Trade, BookSnapshot)) for m in got)
    assert got == expected


@pytest.mark.parametrize("path", TEXT_FILES, ids=[f"{p.parent.parent.parent.name}/{p.stem}" for p in TEXT_FILES])
async def test_native_tickers_and_trades_encode_as_with_msgspecs_decimals(path: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec decoded these decimals with `Decimal(text)`; the bytes published stay the same."""
    recorded = json.loads(path.read_text())
    fields = TEXT_DECIMALS[recorded["venue"], recorded["stream"]]
    monkeypatch.setattr(time, "time_ns", lambda: NOW)
    got = await native(recorded, KINDS[recorded["stream"]], recorded["symbol"].replace("/", ""))
    items = [item for frame in recorded["frames"] for item in (frame["data"] if recorded["venue"] == "bybit" else [frame])]
    assert len(got) == len(items)
    for message, item in zip(got, items, strict=True):
        before = msgspec.structs.replace(message, **{field: Decimal(item[key]) for field, key in fields.items()})
        assert encode(message) == encode(before)
        assert all(type(getattr(message, field)) is Decimal for field in fields)


def test_a_binance_depth_event_that_skips_update_ids_rebuilds_the_book() -> None:
    """How to manage a local order book correctly: an event whose U is not the previous u + 1
    means updates were lost; the stream is restarted (a gap, then a new snapshot)."""
    snapshot = binance_stream.DepthSnapshot(lastUpdateId=156, bids=[], asks=[])
    book = binance_stream.DiffBook(snapshot)
    event = msgspec.json.decode(b'{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[]}',
                                type=binance_stream.DepthUpdate)
    assert book.apply(event)
    skipped = msgspec.structs.replace(event, U=162, u=163)
    with pytest.raises(VenueBusy):
        book.apply(skipped)


def test_a_binance_first_event_must_continue_the_snapshot() -> None:
    """The first applied event must span lastUpdateId + 1: one starting later leaves updates
    between the snapshot and it unknown."""
    book = binance_stream.DiffBook(binance_stream.DepthSnapshot(lastUpdateId=100, bids=[], asks=[]))
    event = binance_stream.DepthUpdate(E=1, s="BNBBTC", U=105, u=110, b=[], a=[])
    with pytest.raises(VenueBusy):
        book.apply(event)
