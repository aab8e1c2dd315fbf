"""Normalizing venue frames into the shared schema: Binance spot `trade` and `bookTicker`
websocket frames taken the way the ccxt connector takes them, by its native path (typed
msgspec decoding into binance_stream.py's frame structs, parsing into wire messages,
encoding) and by the ccxt path (JSON decode, ccxt's own parsing into its unified
structures, our conversion into wire messages, encoding), against plain msgspec decoding of
the same frames.

    .venv/bin/python bench/normalize.py [--frames 40000] [--rounds 5] [--profile native|ccxt]

Needs no network and no bus: markets come from the Binance emulator (the product's own,
offline) through the real ccxt SDK, then everything runs in this process. The paths are
measured in turns of 1,000 frames (the best turn of each), so that load from elsewhere on
the host falls on all of them alike. The last line printed is one JSON object: {"bench":
"normalize", "value": <native>, "baseline": <plain msgspec>, "unit": "msg/s", "ratio": ...,
"ccxt_value": ..., "ccxt_ratio": ...}.
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
from typing import Any

import ccxt.pro as ccxt_pro
import msgspec

from tradebus.emulators.binance import BinanceEmulator
from tradebus.schemas.codecs import encode
from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.venues.ccxt import binance_stream, parsing
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


def ccxt_path(exchange: Any) -> Callable[[bytes], bytes]:
    """The ccxt path per frame: ccxt decodes and parses it into its caches, the connector
    converts the newest entry into a wire message and encodes it."""
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


def native_path() -> Callable[[bytes], bytes]:
    """The native path per frame: the stream's typed decoding and routing key (what
    PublicStream runs on each frame), the venue module's parsing into a wire message, encoding. The connector reads each
    kind on its own connection, so it never tells the two apart; here one prefix test does."""
    trades, quotes = binance_stream.CHANNELS[MarketDataKind.TRADE], binance_stream.CHANNELS[MarketDataKind.QUOTE]
    decode_trade, decode_quote, key = trades.decode, quotes.decode, quotes.key
    trade, quote = binance_stream.trade, binance_stream.quote

    def normalize(frame: bytes) -> bytes:
        now = time.time_ns()
        if frame.startswith(b'{"e":"trade"'):  # book tickers carry no event type
            event = decode_trade(frame)
            key(event)  # the stream routes each frame by the market it names
            return encode(trade("binance", SYMBOL, event, now))
        ticker = decode_quote(frame)
        key(ticker)
        return encode(quote("binance", SYMBOL, ticker, now))

    return normalize


def rates(paths: dict[str, Callable[[bytes], Any]], data: list[bytes], rounds: int, chunk: int = 1000) -> dict[str, float]:
    """Frames per second of each path: its best pass over a chunk of `chunk` frames, the paths
    taking turns chunk by chunk, `rounds` times over the data. Short turns give every path
    as many quiet moments on a shared host; whole passes would favour the fastest path,
    whose pass is the likeliest to fit between other processes' bursts."""
    best = dict.fromkeys(paths, 0.0)
    chunks = [data[start:start + chunk] for start in range(0, len(data), chunk)]
    for _ in range(rounds):
        for frames_ in chunks:
            for name, function in paths.items():
                started = time.perf_counter()
                for frame in frames_:
                    function(frame)
                best[name] = max(best[name], len(frames_) / (time.perf_counter() - started))
    return best


async def run(count: int, rounds: int, profile: str | None) -> dict[str, Any]:
    data = frames(count)
    exchange = await ccxt_exchange()
    paths = {"plain": msgspec.json.Decoder().decode, "native": native_path(), "ccxt": ccxt_path(exchange),
             "json.loads": json.loads}
    measured = rates(paths, data, rounds)
    baseline, native, through_ccxt = measured["plain"], measured["native"], measured["ccxt"]
    print(f"normalize: Binance trade + bookTicker frames ({count}, best 1,000-frame pass of {rounds} rounds, "
          f"{os.cpu_count()} CPUs, "
          f"{sys.version.split()[0]})\n")
    print(f"  msgspec.json.decode (baseline)                 {baseline:>12,.0f} msg/s")
    print(f"  native: typed decode + to wire + encode        {native:>12,.0f} msg/s   ratio {native / baseline:.3f}")
    print(f"  ccxt: json.loads + ccxt parse + to wire + enc. {through_ccxt:>12,.0f} msg/s   ratio {through_ccxt / baseline:.3f}")
    print(f"  json.loads (ccxt's decoder)                    {measured['json.loads']:>12,.0f} msg/s")
    print(f"  native / ccxt {native / through_ccxt:.1f}x   example: {paths['native'](data[1]).decode()[:110]}...\n")
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
        for frame in data:
            paths[profile](frame)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    await exchange.close()
    return {"bench": "normalize", "value": round(native), "baseline": round(baseline), "unit": "msg/s",
            "ratio": round(native / baseline, 4), "ccxt_value": round(through_ccxt),
            "ccxt_ratio": round(through_ccxt / baseline, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=("native", "ccxt"), help="print a pyinstrument profile of that path")
    args = parser.parse_args()
    summary = asyncio.run(run(args.frames, args.rounds, args.profile))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
