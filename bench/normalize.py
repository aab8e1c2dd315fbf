"""Normalizing venue frames into the shared schema: Binance spot `trade` and `bookTicker`
websocket frames taken the way the ccxt connector takes them (JSON decode, ccxt's own
parsing into its unified structures, our conversion into wire messages, encoding), against
plain msgspec decoding of the same frames.

    .venv/bin/python bench/normalize.py [--frames 40000] [--profile]

Needs no network and no bus: markets come from the Binance emulator (the product's own,
offline) through the real ccxt SDK, then everything runs in this process. The last line
printed is one JSON object: {"bench": "normalize", "value": ..., "baseline": ..., "unit":
"msg/s", "ratio": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxt_pro
import msgspec

from tradebus.emulators.binance import BinanceEmulator
from tradebus.schemas.codecs import encode
from tradebus.services.connector.venues.ccxt import parsing
from tradebus.services.connector.venues.ccxt.connector import rebased

SYMBOL, VENUE_SYMBOL = "BTC/USDT", "BTCUSDT"


def frames(count: int, seed: int = 7) -> list[bytes]:
    """Trade and book-ticker frames in Binance's documented shapes, half of each."""
    rng = random.Random(seed)
    price, out = 60_000.0, []
    for n in range(count):
        price *= 1 + rng.gauss(0, 0.0002)
        if n % 2:
            frame: dict[str, Any] = {"e": "trade", "E": 1_700_000_000_000 + n, "s": VENUE_SYMBOL, "t": n,
                                     "p": f"{price:.2f}", "q": f"{rng.random():.5f}", "T": 1_700_000_000_000 + n,
                                     "m": rng.random() < 0.5, "M": True}
        else:
            frame = {"u": n, "s": VENUE_SYMBOL, "b": f"{price - 0.01:.2f}", "B": f"{rng.random():.5f}",
                     "a": f"{price + 0.01:.2f}", "A": f"{rng.random():.5f}"}
        out.append(json.dumps(frame, separators=(",", ":")).encode())
    return out


async def ccxt_exchange() -> Any:
    """A ccxt binance instance with real markets, loaded from the emulator."""
    emulator = BinanceEmulator.create(credentials={"bench": "bench"})
    await emulator.start()
    exchange = ccxt_pro.binance({"options": emulator.connector_config(account="a", api_key="", api_secret="")["options"]})
    exchange.urls["api"] = rebased(exchange.urls["api"], emulator.url, emulator.url.replace("http", "ws"))
    await exchange.load_markets()
    await emulator.stop()
    return exchange


def tradebus_path(exchange: Any) -> Callable[[bytes], bytes]:
    """What the connector does per frame: ccxt decodes and parses it into its caches, the
    connector converts the newest entry into a wire message and encodes it."""
    client = exchange.client(exchange.urls["api"]["ws"]["spot"] + "/0")  # never connected: parsing only

    def normalize(frame: bytes) -> bytes:
        message = json.loads(frame)
        exchange.handle_message(client, message)
        now = time.time_ns()
        if "e" in message:
            wire = parsing.trade("binance", SYMBOL, exchange.trades[SYMBOL][-1], now)
        else:
            wire = parsing.quote("binance", SYMBOL, exchange.bidsasks[SYMBOL], now)
        return encode(wire)

    return normalize


class _TradeFrame(msgspec.Struct, frozen=True):
    p: str
    q: str
    T: int
    m: bool
    t: int


class _BookTickerFrame(msgspec.Struct, frozen=True):
    b: str
    B: str
    a: str
    A: str


def typed_path() -> Callable[[bytes], bytes]:
    """What a native parser for the two hot frames would cost: typed msgspec decoding
    straight into wire messages, no ccxt. Measured to size that option, not used yet."""
    from tradebus.schemas.market import Quote, Trade
    from tradebus.schemas.values import Aggressor

    trades, book_tickers = msgspec.json.Decoder(_TradeFrame), msgspec.json.Decoder(_BookTickerFrame)

    def normalize(frame: bytes) -> bytes:
        now = time.time_ns()
        if frame.startswith(b'{"e":"trade"'):  # book tickers carry no event type
            raw = trades.decode(frame)
            wire: Any = Trade(venue="binance", symbol=SYMBOL, seq=0, ts_event=raw.T * 1_000_000, ts_recv=now,
                              price=Decimal(raw.p), size=Decimal(raw.q),
                              aggressor=Aggressor.SELL if raw.m else Aggressor.BUY, trade_id=str(raw.t))
        else:
            ticker = book_tickers.decode(frame)
            wire = Quote(venue="binance", symbol=SYMBOL, seq=0, ts_event=now, ts_recv=now, bid=Decimal(ticker.b),
                         bid_size=Decimal(ticker.B), ask=Decimal(ticker.a), ask_size=Decimal(ticker.A))
        return encode(wire)

    return normalize


def rate(function: Callable[[bytes], Any], data: list[bytes], repeat: int = 3) -> float:
    """Best of `repeat` passes, frames per second."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for frame in data:
            function(frame)
        best = max(best, len(data) / (time.perf_counter() - started))
    return best


async def run(count: int, profile: bool) -> dict[str, Any]:
    data = frames(count)
    exchange = await ccxt_exchange()
    normalize = tradebus_path(exchange)
    raw_decoder = msgspec.json.Decoder()
    baseline = rate(raw_decoder.decode, data)
    value = rate(normalize, data)
    decode_only = rate(json.loads, data)
    typed = rate(typed_path(), data)
    wire = [normalize(frame) for frame in data[:2]]
    print(f"normalize: Binance trade + bookTicker frames ({count}, {os.cpu_count()} CPUs, {sys.version.split()[0]})\n")
    print(f"  msgspec.json.decode (baseline)         {baseline:>12,.0f} msg/s")
    print(f"  json.loads (ccxt's decoder)            {decode_only:>12,.0f} msg/s")
    print(f"  ccxt parse + to wire message + encode  {value:>12,.0f} msg/s")
    print(f"  typed msgspec frames -> wire (no ccxt) {typed:>12,.0f} msg/s   (a native fast path's cost)")
    print(f"  ratio {value / baseline:.3f}   example output: {wire[1].decode()[:120]}...\n")
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
        for frame in data:
            normalize(frame)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    await exchange.close()
    return {"bench": "normalize", "value": round(value), "baseline": round(baseline), "unit": "msg/s",
            "ratio": round(value / baseline, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the tradebus path")
    args = parser.parse_args()
    summary = asyncio.run(run(args.frames, args.profile))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
