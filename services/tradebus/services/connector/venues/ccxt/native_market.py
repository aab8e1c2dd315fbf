"""The market-data streams a ccxt connector reads natively: Binance and Bybit spot quotes,
trades and books. Everything else (REST, trading, private streams, other exchanges and
market types) stays with ccxt. Endpoints are ccxt's own URLs for the exchange as
configured (rebased, overridden or sandbox), so what serves ccxt serves these streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from tradebus.schemas.values import MarketDataKind

from . import binance_stream, bybit_stream
from .native_stream import PublicStream

NATIVE_EXCHANGES = frozenset({"binance", "bybit"})


class NativeMarketData:
    """One public stream per kind, opened on first use. `url_of`: ccxt's URL tree to the
    stream endpoint; `depth_snapshot`: Binance's REST book snapshot of a venue id (through
    ccxt, its rate limits and error mapping)."""

    def __init__(self, exchange_id: str, urls: dict[str, Any], hostname: Callable[[str], str],
                 depth_snapshot: Callable[[str], Awaitable[binance_stream.DepthSnapshot]]) -> None:
        self.exchange_id = exchange_id
        self._module: Any = binance_stream if exchange_id == "binance" else bybit_stream
        self._url = hostname(self._module.stream_url(urls))
        self._protocol = self._module.StreamProtocol()
        self._depth_snapshot = depth_snapshot
        self._streams: dict[MarketDataKind, PublicStream[Any]] = {}
        self._session: aiohttp.ClientSession | None = None

    def watch(self, kind: MarketDataKind, venue: str, symbol: str, venue_id: str,
              depth: int) -> AsyncIterator[list[Any]]:
        stream = self._streams.get(kind)
        if stream is None:
            stream = self._streams[kind] = PublicStream(self._url, self._protocol, self._module.CHANNELS[kind],
                                                        self._client_session)
        frames = stream.frames(venue_id)
        if self.exchange_id == "binance":
            return binance_stream.follow(kind, frames, venue, symbol, depth, lambda: self._depth_snapshot(venue_id))
        return bybit_stream.follow(kind, frames, venue, symbol, depth)

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        for stream in self._streams.values():
            await stream.close()
        if self._session is not None:
            await self._session.close()
