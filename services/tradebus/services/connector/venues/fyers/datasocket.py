"""Fyers' data socket (HSM, hsm.py) on one aiohttp websocket on the connector's loop.

Why not fyers-apiv3's FyersDataSocket: it resolves symbols with `requests` against a URL fixed
in its code (`https://api-t1.fyers.in/data/symbol-token`, no deadline) and fetches an index
table from public.fyers.in (up to 10 s, again at every subscription while that fails); it
sleeps 2 s in connect() and 0.5 s per subscription; it keeps one subscription list per
channel, so unsubscribing a symbol that was not the last subscribed fails; its reconnect is
silent, which would hide a gap from the base class; its parser divides prices into floats
and logs a malformed frame instead of saying so. The protocol is small, so it is spoken
here, frame for frame as the SDK speaks it (hsm.py).

One connection for every stream of the connector: the first listener opens it
(authenticate, full mode), each listener's topic is subscribed on it, the last listener of a
topic unsubscribes it. A lost connection fails every listener with VenueBusy; each
resubscribes by iterating again (the base class publishes the gap and reconnected markers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from ...errors import SessionExpired, VenueBusy
from . import hsm, parsing

log = logging.getLogger(__name__)

URL = "wss://socket.fyers.in/hsm/v1-5/prod"
PING_INTERVAL = 10.0  # seconds, as the SDK pings
AUTH_TIMEOUT = 10.0  # seconds the server may take to answer the authentication
_LOST = object()  # queued to every listener when the socket closes


class DataSocket:
    def __init__(self, url: str | None, data_url: str, app_id: str, access_token: str,
                 before_request: Callable[[], Awaitable[None]]) -> None:
        self._url = url or URL
        self._symbol_tokens = f"{data_url.rstrip('/')}/symbol-token"
        self._app_id = app_id
        self._app_token = self._token = ""
        self._before_request = before_request  # the venue's request limiter (symbol look-ups are requests)
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._opening = asyncio.Lock()
        self._authenticated: asyncio.Future[hsm.Reply] | None = None
        self._fytokens: dict[str, str] = {}
        self._listeners: dict[str, set[asyncio.Queue[Any]]] = {}
        self._pending: deque[str] = deque()  # topics subscribed, in order, awaiting their answer
        self._closing: asyncio.Future[bool] | None = None  # a connection of a replaced token being closed
        self.use_token(access_token)

    def use_token(self, access_token: str) -> None:
        """Authenticate with this token from now on; a connection made with the old one is
        closed (its listeners connect again, with this one)."""
        self._app_token, self._token = f"{self._app_id}:{access_token}", access_token
        if self._socket is not None and not self._socket.closed:
            self._closing = asyncio.ensure_future(self._socket.close())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()
        self._socket = self._session = None
        self._tasks = []

    async def feeds(self, symbol: str, *, depth: bool) -> AsyncIterator[hsm.Feed]:
        """The symbol's quote feed (sf) or its five-level depth (dp), snapshot first."""
        try:
            topic = hsm.topic(symbol, await self._fytoken(symbol), depth=depth)
        except ValueError as exc:
            raise VenueBusy(str(exc)) from None
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._listeners.setdefault(topic, set()).add(queue)
        try:
            await self._open()
            await self._send(hsm.topics_frame(hsm.SUBSCRIBE, [topic], self._app_token))
            self._pending.append(topic)
            while True:
                item = await queue.get()
                if item is _LOST:
                    raise VenueBusy("Fyers data socket connection lost")
                if isinstance(item, VenueBusy):
                    raise item
                yield item
        finally:
            self._listeners[topic].discard(queue)
            if not self._listeners[topic]:
                del self._listeners[topic]
                with contextlib.suppress(VenueBusy):
                    await self._send(hsm.topics_frame(hsm.UNSUBSCRIBE, [topic], self._app_token))

    async def _fytoken(self, symbol: str) -> str:
        """The symbol's fytoken (POST /data/symbol-token, as the SDK asks: the bare access
        token as Authorization); looked up once per symbol."""
        if symbol not in self._fytokens:
            await self._before_request()
            try:
                async with self._client().post(self._symbol_tokens, json={"symbols": [symbol]},
                                               headers={"Authorization": self._token},
                                               timeout=aiohttp.ClientTimeout(total=10)) as response:
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                raise VenueBusy(f"Fyers symbol-token look-up failed: {type(exc).__name__}") from None
            if isinstance(answer, dict) and answer.get("s") == "error" and answer.get("code") is not None:
                raise parsing.error(answer, changes_state=False)  # its code table: an expired token is the session's
            if not isinstance(answer, dict) or answer.get("s") != "ok":
                message = answer.get("message") if isinstance(answer, dict) else None
                raise VenueBusy(f"Fyers symbol-token look-up refused: {str(message)[:200]}")
            fytoken = (answer.get("validSymbol") or {}).get(symbol)
            if not isinstance(fytoken, str):
                raise VenueBusy(f"Fyers does not stream {symbol} (invalid symbol)")
            self._fytokens[symbol] = fytoken
        return self._fytokens[symbol]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _open(self) -> None:
        async with self._opening:
            if self._socket is not None and not self._socket.closed:
                return
            try:
                key = hsm.hsm_key(self._token)
            except ValueError as exc:  # no key, or the token's `exp` has passed: only a new token helps
                raise SessionExpired(f"Fyers data socket: {exc}") from None
            try:
                self._socket = socket = await self._client().ws_connect(
                    self._url, heartbeat=PING_INTERVAL)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise VenueBusy(f"Fyers data socket unreachable: {type(exc).__name__}") from None
            self._pending.clear()
            self._authenticated = asyncio.get_running_loop().create_future()
            self._tasks = [asyncio.create_task(self._read(socket), name="fyers-data-socket"),
                           asyncio.create_task(self._ping(socket), name="fyers-data-ping")]
            await self._send(hsm.auth_frame(key))
            await self._send(hsm.mode_frame(lite=False))
            try:
                reply = await asyncio.wait_for(asyncio.shield(self._authenticated), AUTH_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError, ConnectionError):
                await socket.close()
                raise VenueBusy("Fyers data socket: no answer to the authentication") from None
            if not reply.ok:  # the socket refuses the token's key: the session's end, like a REST -8 / -16
                await socket.close()
                raise SessionExpired(f"Fyers data socket refused the access token: {reply.message or 'not K'}")

    async def _send(self, frame: bytes) -> None:
        if self._socket is None or self._socket.closed:
            raise VenueBusy("Fyers data socket connection lost")
        try:
            await self._socket.send_bytes(frame)
        except (ConnectionError, RuntimeError) as exc:
            raise VenueBusy(f"Fyers data socket send failed: {type(exc).__name__}") from None

    async def _ping(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not socket.closed:
                await socket.send_bytes(hsm.PING)
                await asyncio.sleep(PING_INTERVAL)

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        decoder = hsm.HsmDecoder()
        try:
            async for message in socket:
                if message.type is not aiohttp.WSMsgType.BINARY:
                    continue
                try:
                    events = decoder.decode(message.data)
                except hsm.Malformed as exc:
                    log.warning("unreadable data socket frame", extra={"error": str(exc)[:200]})
                    continue
                for event in events:
                    await self._handle(socket, event)
        finally:
            if self._authenticated is not None and not self._authenticated.done():
                self._authenticated.set_exception(ConnectionError("closed"))
            for queues in self._listeners.values():
                for queue in queues:
                    queue.put_nowait(_LOST)

    async def _handle(self, socket: aiohttp.ClientWebSocketResponse, event: hsm.Reply | hsm.Ack | hsm.Feed) -> None:
        if isinstance(event, hsm.Feed):
            for queue in self._listeners.get(event.topic, ()):
                queue.put_nowait(event)
        elif isinstance(event, hsm.Ack):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_bytes(hsm.ack_frame(event.message_number))
        elif event.request == hsm.AUTH:
            if self._authenticated is not None and not self._authenticated.done():
                self._authenticated.set_result(event)
        elif event.request == hsm.SUBSCRIBE and self._pending:
            topic = self._pending.popleft()
            if not event.ok:  # its listeners would wait for data that never comes
                for queue in self._listeners.get(topic, ()):
                    queue.put_nowait(VenueBusy(f"Fyers refused the subscription of {topic}: {event.message}"))
        elif not event.ok:
            log.warning("data socket request refused", extra={"request": event.request, "error": event.message[:200]})
