"""The ccxt connector's native market-data streams (venues/ccxt/native_market.py) against
the Binance and Bybit emulators' public streams, at ccxt's own URLs: every kind flows as
wire messages, symbols share one connection per kind and leave it without disturbing each
other, and a stream the venue ends (Binance `serverShutdown`, web-socket-streams.md) or
drops ends the watch with VenueBusy at once, after which a new watch connects anew."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tradebus.emulators.binance import BinanceEmulator
from tradebus.emulators.bybit import BybitEmulator
from tradebus.schemas.codecs import encode
from tradebus.schemas.market import BookSnapshot, Quote, Trade
from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.errors import VenueBusy
from tradebus.services.connector.venues.ccxt import binance_stream
from tradebus.services.connector.venues.ccxt.native_market import NativeMarketData

from .emulatortests import ccxt_client, control

EXPECTED = {MarketDataKind.QUOTE: Quote, MarketDataKind.TRADE: Trade, MarketDataKind.BOOK: BookSnapshot}


@pytest.fixture(params=["binance", "bybit"])
async def native(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, NativeMarketData]]:
    """(the emulator, the native streams at the URLs ccxt has for it, as the connector builds them)."""
    kind: Any = BinanceEmulator if request.param == "binance" else BybitEmulator
    emulator = kind.create(credentials={"native-key": "native-secret"}, tick_interval=0.02)
    await emulator.start()
    exchange = ccxt_client(emulator)

    async def depth_snapshot(venue_id: str) -> binance_stream.DepthSnapshot:
        answer = await exchange.public_get_depth({"symbol": venue_id, "limit": binance_stream.DEPTH_SNAPSHOT_LIMIT})
        return msgspec.convert(answer, binance_stream.DepthSnapshot)

    streams = NativeMarketData(request.param, exchange.urls["api"], exchange.implode_hostname, depth_snapshot)
    try:
        yield emulator, streams
    finally:
        await streams.close()
        await exchange.close()
        await emulator.stop()


async def first(watch: AsyncIterator[list[Any]], count: int = 2) -> list[Any]:
    """The first `count` messages of a watch, then the watch closed (its market leaves)."""
    messages: list[Any] = []
    try:
        async with asyncio.timeout(20):
            async for batch in watch:
                messages += batch
                if len(messages) >= count:
                    return messages
    finally:
        await watch.aclose()  # type: ignore[attr-defined]
    raise AssertionError("unreachable")


@pytest.mark.parametrize("kind", [MarketDataKind.QUOTE, MarketDataKind.TRADE, MarketDataKind.BOOK])
async def test_each_kind_flows_as_wire_messages(native: tuple[Any, NativeMarketData], kind: MarketDataKind) -> None:
    emulator, streams = native
    venue = streams.exchange_id
    published = await first(streams.watch(kind, venue, "BTC/USDT", "BTCUSDT", 5))
    # what subscribers decode (tickers and trades are published in their wire form)
    messages = [msgspec.json.decode(encode(m), type=EXPECTED[kind]) for m in published]
    assert all(m.venue == venue and m.symbol == "BTC/USDT" for m in messages)
    if kind is MarketDataKind.BOOK:
        book = messages[-1]
        assert 0 < len(book.bids) <= 5 and 0 < len(book.asks) <= 5 and book.bids[0].price < book.asks[0].price


async def test_symbols_share_a_connection_and_leave_it_alone(native: tuple[Any, NativeMarketData]) -> None:
    emulator, streams = native
    venue = streams.exchange_id
    eth = streams.watch(MarketDataKind.QUOTE, venue, "ETH/USDT", "ETHUSDT", 5)
    btc = await first(streams.watch(MarketDataKind.QUOTE, venue, "BTC/USDT", "BTCUSDT", 5))  # then BTC leaves
    assert {m.symbol for m in btc} == {"BTC/USDT"}
    assert {m.symbol for m in await first(eth, 3)} == {"ETH/USDT"}  # ETH goes on over the same connection
    # the last market left and its connection is closing: a market asking now gets a new one
    assert {m.symbol for m in await first(streams.watch(MarketDataKind.QUOTE, venue, "SOL/USDT", "SOLUSDT", 5))} == \
        {"SOL/USDT"}


async def test_a_dropped_stream_ends_the_watch_and_a_new_watch_connects_anew(native: tuple[Any, NativeMarketData]) -> None:
    emulator, streams = native
    venue = streams.exchange_id
    watch = streams.watch(MarketDataKind.QUOTE, venue, "BTC/USDT", "BTCUSDT", 5)
    await anext(watch)
    if venue == "binance":  # announced: the watch ends before the venue disconnects (in 30 s)
        await control(emulator, "binance/server-shutdown", {"close_after": 30})
    else:
        await control(emulator, "drop-streams")
    with pytest.raises(VenueBusy):
        async with asyncio.timeout(10):
            async for _ in watch:
                pass
    assert await first(streams.watch(MarketDataKind.QUOTE, venue, "BTC/USDT", "BTCUSDT", 5))
