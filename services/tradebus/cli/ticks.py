"""`tradebus ticks`: print normalized market data from the bus."""

from __future__ import annotations

import argparse
import asyncio
import sys

import nats
import nats.aio.msg

from tradebus.client.leases import StreamLease
from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.market import Bar, BookDelta, BookSnapshot, MarketData, Quote, StreamGap, StreamReconnected, Trade
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import TICK_KINDS, MarketDataKind
from tradebus.shared.sequence import SequenceTracker

from .busclient import connect_client
from .numbers import plain

_decoder = decoder(Family.MARKET_DATA)


def describe(message: MarketData) -> str:
    """One readable line per message."""
    head = f"{message.venue:<8} {message.symbol:<14} #{message.seq:<7}"
    match message:
        case Quote():
            return (f"{head} quote  {plain(message.bid)} x {plain(message.bid_size)}  |  "
                    f"{plain(message.ask)} x {plain(message.ask_size)}")
        case Trade():
            return f"{head} trade  {plain(message.size)} @ {plain(message.price)} ({message.aggressor.value})"
        case Bar():
            return (
                f"{head} bar    {message.interval}s O {plain(message.open)} H {plain(message.high)} "
                f"L {plain(message.low)} C {plain(message.close)} V {plain(message.volume)}"
            )
        case BookSnapshot():
            best_bid = plain(message.bids[0].price) if message.bids else "-"
            best_ask = plain(message.asks[0].price) if message.asks else "-"
            return f"{head} book   snapshot {len(message.bids)}x{len(message.asks)} levels, {best_bid} / {best_ask}"
        case BookDelta():
            return f"{head} book   delta {len(message.changes)} changes"
        case StreamGap():
            return f"{head} GAP    {message.kind.value} stream lost upstream data: {message.reason}"
        case StreamReconnected():
            return f"{head} RECONNECTED {message.kind.value}: {message.reason}"
    return f"{head} {type(message).__name__}"


async def _hold_stream(nc: nats.NATS, venue: str, symbol: str, kinds: list[MarketDataKind]) -> StreamLease:
    """Ask the venue to publish the symbol for as long as we print it; warn (don't fail) if
    nobody answers: the lease keeps asking, so the stream starts once the connector is up."""
    lease = StreamLease(nc, venue, [symbol], kinds)
    answer = await lease.open()
    if answer is None:
        print(f"tradebus: no connector for venue {venue!r} answered the subscription request", file=sys.stderr)
    elif not answer.ok:
        print(f"tradebus: venue {venue!r} refused {symbol!r}: {answer.error or 'unknown symbol'}", file=sys.stderr)
    return lease


async def ticks(args: argparse.Namespace) -> int:
    kinds = [MarketDataKind(args.kind)] if args.kind else list(TICK_KINDS)
    nc = await connect_client(args, "tradebus-ticks")
    queue: asyncio.Queue[nats.aio.msg.Msg] = asyncio.Queue()

    async def enqueue(msg: nats.aio.msg.Msg) -> None:
        queue.put_nowait(msg)

    for kind in kinds:
        await nc.subscribe(subjects.market_data_filter(args.venue, kind, args.symbol), cb=enqueue)
    lease = await _hold_stream(nc, args.venue, args.symbol, kinds) if args.venue and args.symbol else None
    tracker = SequenceTracker()
    printed = 0
    out = sys.stdout
    try:
        while args.count is None or printed < args.count:
            try:
                msg = await asyncio.wait_for(queue.get(), timeout=args.timeout)
            except TimeoutError:
                print(f"tradebus: no market data for {args.timeout:g}s", file=sys.stderr)
                return 1
            try:
                message = _decoder.decode(msg.data)
            except DecodeError as exc:
                print(f"tradebus: undecodable message on {msg.subject}: {exc}", file=sys.stderr)
                continue
            lost = tracker.observe(msg.subject, message.seq)
            if args.json:
                out.write(msg.data.decode() + "\n")
            else:
                if lost:
                    out.write(f"!! {lost} message(s) lost on {msg.subject}\n")
                out.write(describe(message) + "\n")
            out.flush()
            printed += 1
    finally:
        if lease is not None:
            await lease.close()
        await nc.close()
    return 0

