"""A venue's public market-data websocket, opened by the connector itself instead of ccxt:
frames decode straight into the venue's typed structs (binance_stream.py, bybit_stream.py)
and from there into wire messages, without ccxt's dictionaries and caches in between.

One `PublicStream` per stream kind (quotes, trades, books) carries every symbol of that kind
over one connection, as ccxt does: it connects when the first symbol asks, subscribes the
symbols' topics (those asked for together in one request, within the venue's limit on
incoming messages), routes each frame to its symbol by the venue id or topic the frame names, and
closes when the last symbol leaves. A lost connection ends every symbol's stream with
`VenueBusy`: the connector publishes a gap, waits its back-off and watches again, which
opens a new connection and subscribes anew (then a reconnected marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import operator
from collections.abc import AsyncGenerator, Callable, Iterator
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import msgspec

from tradebus.schemas.wireform import MalformedDecimal

from ...errors import VenueBusy

log = logging.getLogger(__name__)

F = TypeVar("F")
SUBSCRIBE_DELAY = 0.2  # seconds symbols asking together wait to share one subscribe request
# Seconds between websocket pings of ours; a pong missing for half of it ends the connection
# (a connection that died without closing would otherwise go unnoticed).
HEARTBEAT = 20.0


class StreamEnded(Exception):
    """The venue ended the stream on an open connection (or refused a subscription)."""


class Channel(Generic[F]):
    """One kind of a venue's public stream: the topic carrying it for a market, the decoder
    of its frames (a frame of another shape, such as an answer, fails to decode), and the
    field of a frame that names its market: the venue id (`key` "s", Binance) or the topic
    (`key` "topic", Bybit). Decoding and keying are single C calls: they run on every frame."""

    __slots__ = ("topic", "decode", "key", "_by_topic")

    def __init__(self, frame_type: type[F], topic: Callable[[str], str], key: str) -> None:
        self.topic = topic
        self.decode: Callable[[str | bytes], F] = msgspec.json.Decoder(frame_type).decode
        self.key: Callable[[F], str] = operator.attrgetter(key)
        self._by_topic = key == "topic"

    def market_key(self, venue_id: str) -> str:
        """The key the frames of one market carry."""
        return self.topic(venue_id) if self._by_topic else venue_id


class WireProtocol(Protocol):
    """A venue's wire protocol around the data frames: requests and control answers."""

    # (seconds between application-level pings, the ping request by id); None: none needed
    keepalive: tuple[float, Callable[[int], str]] | None

    def subscribe(self, topics: list[str], request_id: int) -> str: ...

    def unsubscribe(self, topics: list[str], request_id: int) -> str: ...

    def control(self, data: str | bytes) -> None:
        """A frame that is no data: an answer, a pong, an event; raises StreamEnded for one
        that ends the stream or refuses a subscription."""


class _Lost:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class PublicStream(Generic[F]):
    def __init__(self, url: str, protocol: WireProtocol, channel: Channel[F],
                 session: Callable[[], aiohttp.ClientSession]) -> None:
        self.url = url
        self.protocol = protocol
        self.channel = channel
        self._session = session
        self._queues: dict[str, asyncio.Queue[F | _Lost]] = {}  # market key -> its watcher's frames
        self._topics: dict[str, str] = {}  # market key -> topic
        self._pending: dict[str, bool] = {}  # topic -> subscribe (True) / unsubscribe (False), not yet sent
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._flush: asyncio.Task[None] | None = None
        self._request_ids = 0

    async def frames(self, venue_id: str) -> AsyncGenerator[F, None]:
        """The frames of one market, from a new subscription; raises VenueBusy when the
        connection is lost."""
        key = self.channel.market_key(venue_id)
        if key in self._queues:
            raise RuntimeError(f"{venue_id} is already watched on {self.url}")
        queue: asyncio.Queue[F | _Lost] = asyncio.Queue()
        self._queues[key] = queue
        self._topics[key] = topic = self.channel.topic(venue_id)
        self._request(topic, subscribe=True)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"public-stream {self.url}")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Lost):
                    raise VenueBusy(item.reason)
                yield item
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key], self._topics[key]
                if self._queues:
                    self._request(topic, subscribe=False)
                elif self._task is not None:  # the last market left: the connection closes
                    task, self._task = self._task, None  # a market asking from now on opens a new one
                    task.cancel()

    def _request(self, topic: str, *, subscribe: bool) -> None:
        self._pending[topic] = subscribe
        if self._socket is not None and self._flush is None:
            self._flush = asyncio.create_task(self._send_pending())

    async def _send_pending(self) -> None:
        try:
            await asyncio.sleep(SUBSCRIBE_DELAY)
            socket, pending = self._socket, self._pending
            self._pending = {}
            if socket is None or not pending:
                return
            for subscribe, send in ((True, self.protocol.subscribe), (False, self.protocol.unsubscribe)):
                topics = [topic for topic, wanted in pending.items() if wanted is subscribe]
                if topics:
                    await socket.send_str(send(topics, self._next_id()))
        except (ConnectionError, RuntimeError) as exc:  # the receiving side sees the loss too
            log.debug("subscription request not sent", extra={"error": str(exc)})
        finally:
            self._flush = None

    def _next_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    async def _run(self) -> None:
        reason = "venue closed the stream"
        pinger: asyncio.Task[None] | None = None
        try:
            async with self._session().ws_connect(self.url, autoping=True, heartbeat=HEARTBEAT) as socket:
                self._socket = socket
                self._pending = dict.fromkeys(self._topics.values(), True)  # everything, anew
                self._flush = asyncio.create_task(self._send_pending())
                if self.protocol.keepalive is not None:
                    pinger = asyncio.create_task(self._ping(socket, *self.protocol.keepalive))
                decode, key, control, queues = self.channel.decode, self.channel.key, self.protocol.control, self._queues
                async for message in socket:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        frame = decode(message.data)
                    except (msgspec.ValidationError, msgspec.DecodeError):
                        control(message.data)
                        continue
                    queue = queues.get(key(frame))
                    if queue is not None:  # frames still in flight after an unsubscribe are dropped
                        queue.put_nowait(frame)
                if socket.exception() is not None:
                    reason = f"venue stream failed: {socket.exception()}"
        except (aiohttp.ClientError, OSError, TimeoutError, StreamEnded) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            if pinger is not None:
                pinger.cancel()
            # closed when its last market left and a new connection has taken over: not ours to end
            if self._task in (None, asyncio.current_task()):
                self._lost(reason)

    def _lost(self, reason: str) -> None:
        """The connection ended: every market's watch ends with `reason`."""
        self._socket, self._task = None, None
        for queue in self._queues.values():
            queue.put_nowait(_Lost(reason))
        self._queues.clear()
        self._topics.clear()
        self._pending.clear()

    async def _ping(self, socket: aiohttp.ClientWebSocketResponse, interval: float,
                    request: Callable[[int], str]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not socket.closed:
                await asyncio.sleep(interval)
                await socket.send_str(request(self._next_id()))

    async def close(self) -> None:
        for task in (self._flush, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@contextlib.contextmanager
def refusing_malformed(venue: str, symbol: str) -> Iterator[None]:
    """Around a market's stream: a price or size that is no decimal ends it with VenueBusy (a
    gap on the bus): a frame the connector cannot read is data lost, not data to skip in silence."""
    try:
        yield
    except MalformedDecimal as exc:
        raise VenueBusy(f"{venue} {symbol}: a frame with a price or size that is no decimal") from exc


class LocalBook:
    """One market's book as a venue's snapshots and deltas build it: size by price, a size
    of zero removing the level (what Binance's diff depth and Bybit's deltas both mean)."""

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def reset(self, bids: list[Any], asks: list[Any]) -> None:
        self.bids = {level.price: level.size for level in bids if level.size}
        self.asks = {level.price: level.size for level in asks if level.size}

    def apply(self, bids: list[Any], asks: list[Any]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for level in levels:
                if level.size:
                    side[level.price] = level.size
                else:
                    side.pop(level.price, None)

    def top(self, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The best `depth` levels a side: bids high to low, asks low to high."""
        bids, asks = self.bids, self.asks
        return ([(price, bids[price]) for price in heapq.nlargest(depth, bids)],
                [(price, asks[price]) for price in heapq.nsmallest(depth, asks)])
