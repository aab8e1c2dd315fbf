"""Kite's streaming websocket (KiteTicker's protocol): binary market data packets and text
order updates on one connection, decoded here byte for byte as KiteTicker decodes them.

Why not KiteTicker itself: it runs on Twisted's reactor, which is process-global, runs in
one thread and cannot be restarted once stopped; its ReconnectingClientFactory reconnects
silently, so a gap in the data would never reach the base class (which must publish gap
and reconnected markers and reconcile orders, remote.py); and its parser turns paise into
floats and exchange times into naive local datetimes. The protocol is small and documented
(kite.trade/docs/connect/v3/websocket "Message structure"), so the connection is driven
here with aiohttp on the connector's own loop, and `decode` follows KiteTicker's
`_parse_binary` exactly (tests/venues/test_zerodha_replay.py decodes the official sample
packets of zerodha/kiteconnect-mocks with both and compares). REST goes through the SDK.

Layout (big-endian): a frame is a 2-byte packet count, then per packet a 2-byte length and
the packet. A packet is 8 bytes (ltp: token, last price), 28 / 32 (an index's quote / full:
token, last, high, low, open, close, change, [exchange time]), 44 (quote: token, last,
last quantity, average, volume, total buy, total sell, open, high, low, close) or 184 (full:
the quote, last trade time, oi, oi day high, oi day low, exchange time, then 10 depth
entries of quantity (4), price (4), orders (2), padding (2): 5 bids, then 5 asks). Prices
are integers in paise: divided by 100, by 10^7 for currency derivatives (segment 3) and
by 10^4 for BSE currency (6) and NCO (12). A 1-byte frame is a heartbeat.

One connection for every stream: Kite allows 3 websocket connections per API key
(kite.trade/docs/connect/v3/websocket), so order updates and every subscribed instrument
share one socket, subscribed in `full` mode (the only mode with best bid and ask).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from ...errors import SessionExpired, VenueBusy

log = logging.getLogger(__name__)

ROOT = "wss://ws.kite.trade"
DIVISORS = {3: Decimal(10_000_000), 6: Decimal(10_000), 12: Decimal(10_000)}  # segment -> paise divisor
INDICES = 9  # segment of the indices: not tradable


class Level(msgspec.Struct, frozen=True):
    price: Decimal
    quantity: int
    orders: int


class Tick(msgspec.Struct, frozen=True, kw_only=True):
    instrument_token: int
    mode: str  # ltp, quote, full
    tradable: bool
    last_price: Decimal
    last_quantity: int | None = None
    average_price: Decimal | None = None
    volume: int | None = None
    buy_quantity: int | None = None
    sell_quantity: int | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None
    last_trade_time: int | None = None  # unix seconds
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    exchange_time: int | None = None  # unix seconds
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()


def _ints(packet: bytes, start: int, count: int) -> tuple[int, ...]:
    return struct.unpack_from(f">{count}I", packet, start)


def decode_packet(packet: bytes) -> Tick | None:
    """One packet; None for a length KiteTicker does not parse either."""
    token = _ints(packet, 0, 1)[0]
    segment = token & 0xFF
    divisor = DIVISORS.get(segment, Decimal(100))

    def price(raw: int) -> Decimal:
        return Decimal(raw) / divisor

    tradable = segment != INDICES
    if len(packet) == 8:
        return Tick(mode="ltp", last_price=price(_ints(packet, 4, 1)[0]), instrument_token=token, tradable=tradable)
    if len(packet) in (28, 32):
        last, high, low, opened, close = _ints(packet, 4, 5)
        return Tick(mode="quote" if len(packet) == 28 else "full", last_price=price(last), high=price(high),
                    low=price(low), open=price(opened), close=price(close), instrument_token=token, tradable=tradable,
                    exchange_time=_ints(packet, 28, 1)[0] if len(packet) == 32 else None)
    if len(packet) not in (44, 184):
        return None
    last, last_quantity, average, volume, buys, sells, opened, high, low, close = _ints(packet, 4, 10)
    quote = Tick(mode="quote", instrument_token=token, tradable=tradable, last_price=price(last),
                 last_quantity=last_quantity, average_price=price(average), volume=volume, buy_quantity=buys,
                 sell_quantity=sells, open=price(opened), high=price(high), low=price(low), close=price(close))
    if len(packet) == 44:
        return quote
    last_trade_time, oi, oi_high, oi_low, exchange_time = _ints(packet, 44, 5)
    levels = [struct.unpack_from(">IIH", packet, offset) for offset in range(64, 184, 12)]
    depth = tuple(Level(price=price(raw), quantity=quantity, orders=orders) for quantity, raw, orders in levels)
    return msgspec.structs.replace(quote, mode="full", last_trade_time=last_trade_time, oi=oi, oi_day_high=oi_high,
                                   oi_day_low=oi_low, exchange_time=exchange_time, bids=depth[:5], asks=depth[5:])


def split_frame(frame: bytes) -> list[bytes]:
    """The packets of one binary frame ([] for a heartbeat)."""
    if len(frame) < 2:
        return []
    (count,) = struct.unpack_from(">H", frame, 0)
    packets, offset = [], 2
    for _ in range(count):
        (length,) = struct.unpack_from(">H", frame, offset)
        packets.append(frame[offset + 2: offset + 2 + length])
        offset += 2 + length
    return packets


def decode(frame: bytes) -> list[Tick]:
    return [tick for tick in map(decode_packet, split_frame(frame)) if tick is not None]


def order_update(text: str) -> dict[str, Any] | None:
    """The order of a text frame `{"type": "order", "data": {...}}` (the postback payload),
    None for any other text frame (`error`, `message`)."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if isinstance(frame, dict) and frame.get("type") == "order" and isinstance(frame.get("data"), dict):
        order: dict[str, Any] = frame["data"]
        return order
    if isinstance(frame, dict) and frame.get("type") == "error":
        log.warning("ticker error message", extra={"error": str(frame.get("data"))[:200]})
    return None


_LOST = object()  # queued to every listener when the socket closes


class TickerConnection:
    """The one websocket of a connector: listeners of instrument tokens and of order updates
    get their own queue; the socket opens with the first listener and, lost, fails every
    listener with VenueBusy (each reconnects by iterating again)."""

    def __init__(self, root: str | None, api_key: str, access_token: str) -> None:
        self._root, self._api_key = (root or ROOT).rstrip("/"), api_key
        self._url = ""
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._ticks: dict[int, set[asyncio.Queue[Any]]] = {}
        self._orders: set[asyncio.Queue[Any]] = set()
        self._closing: asyncio.Future[bool] | None = None  # a connection of a replaced token being closed
        self.use_token(access_token)

    def use_token(self, access_token: str) -> None:
        """Connect with this token from now on; a connection made with the old one is closed
        (its listeners connect again, with this one)."""
        self._url = f"{self._root}?api_key={self._api_key}&access_token={access_token}"
        if self._socket is not None and not self._socket.closed:
            self._closing = asyncio.ensure_future(self._socket.close())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()
        self._socket = self._session = self._reader = None

    async def ticks(self, token: int) -> AsyncIterator[Tick]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ticks.setdefault(token, set()).add(queue)
        try:
            await self._open()
            await self._send({"a": "subscribe", "v": [token]})
            await self._send({"a": "mode", "v": ["full", [token]]})
            while True:
                yield await self._next(queue)
        finally:
            self._ticks[token].discard(queue)
            if not self._ticks[token]:
                del self._ticks[token]
                with contextlib.suppress(VenueBusy, ConnectionError):
                    await self._send({"a": "unsubscribe", "v": [token]})

    async def orders(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._orders.add(queue)
        try:
            await self._open()
            while True:
                yield await self._next(queue)
        finally:
            self._orders.discard(queue)

    @staticmethod
    async def _next(queue: asyncio.Queue[Any]) -> Any:
        item = await queue.get()
        if item is _LOST:
            raise VenueBusy("Kite ticker connection lost")
        return item

    async def _open(self) -> None:
        async with self._opening:
            if self._socket is not None and not self._socket.closed:
                return
            if self._session is None:
                self._session = aiohttp.ClientSession()
            try:
                self._socket = await self._session.ws_connect(self._url, headers={"X-Kite-Version": "3"},
                                                              heartbeat=10.0, timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):  # the access token is refused: the session's end (session.py)
                    raise SessionExpired(f"Kite ticker refused the access token (HTTP {exc.status})") from None
                raise VenueBusy(f"Kite ticker handshake failed (HTTP {exc.status})") from None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise VenueBusy(f"Kite ticker unreachable: {type(exc).__name__}") from None
            # every listener of the lost connection was failed, and subscribes again itself
            self._reader = asyncio.create_task(self._read(self._socket), name="kite-ticker")

    async def _send(self, message: dict[str, Any]) -> None:
        if self._socket is None or self._socket.closed:
            raise VenueBusy("Kite ticker connection lost")
        try:
            await self._socket.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError) as exc:
            raise VenueBusy(f"Kite ticker send failed: {type(exc).__name__}") from None

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in socket:
                if message.type is aiohttp.WSMsgType.BINARY:
                    for tick in decode(message.data):
                        for queue in self._ticks.get(tick.instrument_token, ()):
                            queue.put_nowait(tick)
                elif message.type is aiohttp.WSMsgType.TEXT:
                    order = order_update(message.data)
                    if order is not None:
                        for queue in self._orders:
                            queue.put_nowait(order)
        finally:
            for queue in [*self._orders, *(q for queues in self._ticks.values() for q in queues)]:
                queue.put_nowait(_LOST)
