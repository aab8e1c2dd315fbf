"""Every recorded public market-data frame (`<venue>/corpus/market/*.json`), through the
connector's native path (the stream's typed decoding, then the venue module's `follow`, as
the connector runs them) gives the same wire messages as the ccxt path does for the same
frames (ccxt's own websocket handler, then the connector's conversion of ccxt's structures),
and tickers and trades, which the native path publishes in their wire form (the venue's
decimal text, schemas/wireform.py), encode to the bytes they gave when msgspec decoded those
decimals into Decimal (recorded frames, and any decimals a property test draws). Both run at
one fixed clock, so that messages stamped with their arrival time compare too."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxt_pro
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.schemas.codecs import encode
from tradebus.schemas.market import BookSnapshot, Quote, Trade
from tradebus.schemas.values import DECIMAL_PATTERN, MarketDataKind
from tradebus.schemas.wireform import MalformedDecimal, wire_form
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
    assert all(isinstance(m, (Quote, Trade, BookSnapshot, wire_form(Quote), wire_form(Trade))) for m in got)
    # a wire-form message is what a consumer decodes into the typed one
    assert [msgspec.json.decode(encode(m), type=type(e)) for m, e in zip(got, expected, strict=True)] == expected


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
        typed = TYPED[type(message)]
        before = typed(**{**msgspec.structs.asdict(message), **{field: Decimal(item[key]) for field, key in fields.items()}})
        assert encode(message) == encode(before)
        assert all(type(getattr(message, field)) is str for field in fields)  # no Decimal made


TYPED = {wire_form(Quote): Quote, wire_form(Trade): Trade}
# Decimal texts as venues write them (fixed places, Binance's eight among them, sizes below
# 1e-6 too) and any other decimal of the contract.
VENUE_DECIMALS = st.one_of(
    st.tuples(st.floats(min_value=0, max_value=1e7), st.integers(0, 8)).map(lambda p: f"{p[0]:.{p[1]}f}"),
    st.from_regex(DECIMAL_PATTERN, fullmatch=True))


class TypedTicker(msgspec.Struct):
    """A book ticker's decimals as msgspec decodes them into Decimal: the typed path."""

    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal


@given(st.lists(VENUE_DECIMALS, min_size=4, max_size=4))
def test_any_binance_ticker_encodes_as_with_msgspecs_decimals(texts: list[str]) -> None:
    frame = msgspec.json.encode({"u": 1, "s": "BTCUSDT", **dict(zip("bBaA", texts, strict=True))})
    ticker = binance_stream.CHANNELS[MarketDataKind.QUOTE].decode(frame)
    try:
        decimals = msgspec.json.decode(frame, type=TypedTicker)
    except msgspec.ValidationError:  # no Decimal can hold it (an exponent beyond its range)
        with pytest.raises(MalformedDecimal):
            binance_stream.quote("binance", "BTC/USDT", ticker, NOW)
        return
    published = binance_stream.quote("binance", "BTC/USDT", ticker, NOW)
    typed = Quote(venue="binance", symbol="BTC/USDT", seq=0, ts_event=NOW, ts_recv=NOW, bid=decimals.b,
                  bid_size=decimals.B, ask=decimals.a, ask_size=decimals.A)
    assert encode(published) == encode(typed)


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
