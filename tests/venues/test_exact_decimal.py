"""exact_decimal.exact, the native market-data path's decimal maker: the value, exponent and
text `Decimal(text)` gives for every decimal a venue writes (and the forms a venue might),
and a refusal, not a guess, for text that is no decimal; a stream meeting one ends with
VenueBusy (a gap on the bus) instead of skipping the frame."""

from __future__ import annotations

import decimal
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.errors import VenueBusy
from tradebus.services.connector.venues.ccxt import binance_stream, bybit_stream
from tradebus.services.connector.venues.ccxt.exact_decimal import exact

TEXTS = ["0.001", "100", "25.35190000", "0.00000001", "0.00000000", "16578.50", "1E-7", "1e+3", "-0", "+1.5",
         "-2.50", "0E-8", "123456789012345678901234567890.123456789", "0." + "0" * 40 + "1", "1e-400", "9e400",
         "\u0661\u0662", "NaN", "Infinity"]
NOT_DECIMALS = ["", " 1.5", "1.5 ", "1_000", "abc", "1.2.3", "0x10", "1e"]


@pytest.mark.parametrize("text", TEXTS)
def test_exact_gives_what_decimal_of_the_text_gives(text: str) -> None:
    made, reference = exact(text), Decimal(text)
    assert type(made) is Decimal
    assert str(made) == str(reference)
    assert made.as_tuple() == reference.as_tuple()


@pytest.mark.parametrize("text", NOT_DECIMALS)
def test_exact_refuses_text_that_is_no_decimal(text: str) -> None:
    with pytest.raises(decimal.InvalidOperation):
        exact(text)


async def frames(*decoded: Any) -> AsyncIterator[Any]:
    for frame in decoded:
        yield frame


@pytest.mark.parametrize("venue", ["binance", "bybit"])
async def test_a_trade_with_a_malformed_price_ends_the_stream(venue: str) -> None:
    if venue == "binance":
        frame = b'{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"0.001 ","q":"100","T":1,"m":true,"M":true}'
        stream = binance_stream.follow(MarketDataKind.TRADE, frames(binance_stream.CHANNELS[MarketDataKind.TRADE]
                                                                    .decode(frame)), "binance", "BNB/BTC", 10,
                                       snapshot=lambda: pytest.fail("no book here"))
    else:
        frame = (b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy",'
                 b'"v":"0.001","p":"16_578.50","i":"x"}]}')
        stream = bybit_stream.follow(MarketDataKind.TRADE, frames(bybit_stream.CHANNELS[MarketDataKind.TRADE]
                                                                  .decode(frame)), "bybit", "BTC/USDT", 10)
    with pytest.raises(VenueBusy, match="no decimal"):
        await anext(stream)
