"""The websocket session every emulated stream runs: one `Stream` per endpoint (Binance's
market streams, Bybit's private stream, Alpaca's trade_updates, ...).

A connection is accepted by `Emulator.stream_endpoint` (which tracks it, so drop-streams,
a server shutdown and the venue's connection lifetime can close it); the stream then keeps
a session for it, writes its outbox in order, reads the client's requests and hands each
decoded request to the venue's `answer`. The venue supplies only its own frames: what it
answers, how its requests are encoded, what it says on connect, and what it forgets when
the client goes. Protocol pings are answered by aiohttp (autoping); a venue's own ping
request (Bybit's `{"op": "ping"}`) is one of its requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from aiohttp import WSMsgType, web


class StreamSession:
    """One websocket client with its subscribed topics, the account it authenticated as (on
    a private stream) and an ordered outbox: the venue's listeners are synchronous and sends
    are not, so frames are queued and written in order."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self.topics: set[str] = set()
        self.account: str | None = None
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()

    def send(self, payload: Any) -> None:
        """Queue `payload` as a JSON text frame."""
        self.outbox.put_nowait(json.dumps(payload))

    def send_bytes(self, frame: bytes) -> None:
        """Queue an already encoded binary frame (msgpack streams)."""
        self.outbox.put_nowait(frame)

    async def write(self) -> None:
        while not self.socket.closed:
            frame = await self.outbox.get()
            try:
                if isinstance(frame, bytes):
                    await self.socket.send_bytes(frame)
                else:
                    await self.socket.send_str(frame)
            except ConnectionError:
                return


S = TypeVar("S", bound=StreamSession)


class Stream(Generic[S]):
    """One websocket endpoint of a venue and the sessions connected to it.

    `answer(session, request)`: the venue's reply to one decoded request (it queues frames
    on the session). `session`: makes the session of a new connection (a venue's subclass
    of StreamSession). `decode`: the request encoding of `frames` message types (JSON text
    by default). `undecodable`: the venue's answer to a request that does not decode (None:
    the venue drops the connection, as aiohttp does when a handler raises). `greeting`: what
    the venue sends as soon as a client connects. `closed`: what the venue forgets when a
    client goes (its subscriptions elsewhere)."""

    def __init__(
        self,
        answer: Callable[[S, Any], None],
        *,
        session: Callable[[web.WebSocketResponse], S],
        decode: Callable[[Any], Any] = json.loads,
        frames: Collection[WSMsgType] = (WSMsgType.TEXT,),
        undecodable: Callable[[S], None] | None = None,
        greeting: Callable[[S], None] | None = None,
        closed: Callable[[S], None] | None = None,
    ) -> None:
        self.sessions: list[S] = []
        self._answer = answer
        self._session = session
        self._decode = decode
        self._frames = frames
        self._undecodable = undecodable
        self._greeting = greeting
        self._closed = closed

    async def serve(self, socket: web.WebSocketResponse) -> None:
        """Run one accepted connection until the client or the venue closes it."""
        session = self._session(socket)
        self.sessions.append(session)
        writer = asyncio.create_task(session.write())
        try:
            if self._greeting is not None:
                self._greeting(session)
            async for message in socket:
                if message.type not in self._frames:
                    continue
                try:
                    request = self._decode(message.data)
                except ValueError:
                    if self._undecodable is None:
                        raise
                    self._undecodable(session)
                    continue
                self._answer(session, request)
        finally:
            self.sessions.remove(session)
            if self._closed is not None:
                self._closed(session)
            writer.cancel()
