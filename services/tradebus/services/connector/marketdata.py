"""Market-data publishing shared by every connector: which streams are active (from the
interest subscribers hold, see interest.py), per-stream sequence numbers and gap /
reconnected markers.

The hot path is `stream.active` + `stream.next_seq()` + one publish of pre-computed subject:
no dictionary look-up of subjects, no re-encoding of symbols per message, and nats-py's
publish called directly (core NATS, at most once: nothing for the Bus wrapper to add).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.market import StreamGap, StreamReconnected
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.bus import Bus

from .interest import Interest, StreamKey


class MarketStream:
    """One (venue, kind, symbol) stream: its subject, its sequence and whether anyone holds
    interest in it. Sequences keep counting across unsubscribe/subscribe so a subscriber never sees
    a number twice."""

    __slots__ = ("kind", "symbol", "subject", "seq", "active")

    def __init__(self, venue: str, kind: MarketDataKind, symbol: str) -> None:
        self.kind = kind
        self.symbol = symbol
        self.subject = subjects.market_data(venue, kind, symbol)
        self.seq = 0
        self.active = False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class MarketDataPublisher:
    def __init__(self, bus: Bus, venue: str) -> None:
        self.bus = bus
        self.venue = venue
        self._publish = bus.nc.publish
        self._streams: dict[StreamKey, MarketStream] = {}
        self.interest = Interest()
        self.published = 0

    def stream(self, kind: MarketDataKind, symbol: str) -> MarketStream:
        key = (kind, symbol)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = MarketStream(self.venue, kind, symbol)
        return stream

    async def send(self, stream: MarketStream, message: msgspec.Struct) -> None:
        """Publish a message whose `seq` came from `stream.next_seq()`."""
        self.published += 1
        await self._publish(stream.subject, encode(message))

    def pin(self, symbols: Iterable[str], kinds: Iterable[MarketDataKind]) -> None:
        """Publish these streams for as long as the connector runs (its configuration's
        `subscribe`)."""
        keys = _keys(symbols, kinds)
        self.interest.pin(keys)
        self._refresh(keys)

    def hold(self, subscriber: str, symbols: Iterable[str], kinds: Iterable[MarketDataKind], lease: float) -> list[StreamKey]:
        """Grant or renew a subscriber's lease; return the streams new to it (see Interest.hold)."""
        keys = _keys(symbols, kinds)
        new = self.interest.hold(subscriber, keys, lease)
        self._refresh(keys)
        return new

    def release(self, subscriber: str, symbols: Iterable[str], kinds: Iterable[MarketDataKind]) -> list[StreamKey]:
        """Drop a subscriber's interest; return the streams that stopped."""
        stopped = self.interest.release(subscriber, _keys(symbols, kinds))
        self._refresh(stopped)
        return stopped

    def expire(self) -> list[StreamKey]:
        """Drop leases that ran out; return the streams that stopped."""
        stopped = self.interest.expire()
        self._refresh(stopped)
        return stopped

    def _refresh(self, keys: Iterable[StreamKey]) -> None:
        # Instrument definitions are sent on demand, never streamed: nothing to switch on.
        for kind, symbol in keys:
            if kind is not MarketDataKind.INSTRUMENT:
                self.stream(kind, symbol).active = self.interest.held((kind, symbol))

    def active_kinds(self, symbol: str) -> list[MarketDataKind]:
        return [kind for kind in MarketDataKind if (kind, symbol) in self._streams and self._streams[kind, symbol].active]

    def active_symbols(self) -> list[str]:
        return sorted({symbol for (_, symbol), stream in self._streams.items() if stream.active})

    async def gap(self, stream: MarketStream, *, gap_start: int, reason: str) -> None:
        """The connector lost upstream data of this stream since `gap_start`."""
        now = time.time_ns()
        await self.send(
            stream,
            StreamGap(
                venue=self.venue, symbol=stream.symbol, seq=stream.next_seq(), ts_event=now, ts_recv=now,
                kind=stream.kind, gap_start=gap_start, reason=reason,
            ),
        )

    async def reconnected(self, stream: MarketStream, *, reason: str) -> None:
        now = time.time_ns()
        await self.send(
            stream,
            StreamReconnected(
                venue=self.venue, symbol=stream.symbol, seq=stream.next_seq(), ts_event=now, ts_recv=now,
                kind=stream.kind, reason=reason,
            ),
        )


def _keys(symbols: Iterable[str], kinds: Iterable[MarketDataKind]) -> list[StreamKey]:
    kinds = list(kinds)
    return [(kind, symbol) for symbol in symbols for kind in kinds]
