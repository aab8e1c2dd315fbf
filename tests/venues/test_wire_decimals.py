"""Tickers' and trades' decimals on the native market-data path (binance_stream.py,
bybit_stream.py): they go on the wire as the venue's text when it is what `str(Decimal)`
writes, made canonical when it is another decimal of the contract (Binance's eight places
below 1e-6), and a frame carrying text that is no decimal ends its stream with VenueBusy (a
gap on the bus) instead of being skipped. The schema side is tests/unit/test_wireform.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tradebus.schemas.codecs import encode
from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.errors import VenueBusy
from tradebus.services.connector.venues.ccxt import binance_stream, bybit_stream

BINANCE_TRADE = b'{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"%s","q":"100","T":1,"m":true,"M":true}'
BYBIT_TRADE = (b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy",'
               b'"v":"0.001","p":"%s","i":"x"}]}')


async def frames(*decoded: Any) -> AsyncIterator[Any]:
    for frame in decoded:
        yield frame


def trades(venue: str, price: str) -> AsyncIterator[list[Any]]:
    if venue == "binance":
        channel = binance_stream.CHANNELS[MarketDataKind.TRADE]
        return binance_stream.follow(MarketDataKind.TRADE, frames(channel.decode(BINANCE_TRADE % price.encode())),
                                     "binance", "BNB/BTC", 10, snapshot=lambda: pytest.fail("no book here"))
    channel = bybit_stream.CHANNELS[MarketDataKind.TRADE]
    return bybit_stream.follow(MarketDataKind.TRADE, frames(channel.decode(BYBIT_TRADE % price.encode())),
                               "bybit", "BTC/USDT", 10)


@pytest.mark.parametrize("venue", ["binance", "bybit"])
@pytest.mark.parametrize(("text", "wire"), [("0.00100000", b'"0.00100000"'), ("16578.50", b'"16578.50"'),
                                            ("0.00000032", b'"3.2E-7"'), ("0.00000000", b'"0E-8"')])
async def test_a_trade_price_goes_on_the_wire_as_str_decimal_writes_it(venue: str, text: str, wire: bytes) -> None:
    (message,) = await anext(trades(venue, text))
    assert b'"price":' + wire in encode(message)


@pytest.mark.parametrize("venue", ["binance", "bybit"])
@pytest.mark.parametrize("text", ["0.001 ", "16_578.50", "NaN", "Infinity", "\u0661", "1.2.3", ""])
async def test_a_trade_with_a_malformed_price_ends_the_stream(venue: str, text: str) -> None:
    with pytest.raises(VenueBusy, match="no decimal"):
        await anext(trades(venue, text))
