"""What every emulator shares: the HTTP/websocket server, fault injection, the venue's own
request limit, and the control API under `/__emulator/`.

A venue's emulator subclasses `Emulator`, adds its REST and websocket routes in `routes`,
and says how the venue words an error (`error_response`). Every REST handler goes through
`handle(request, operation, work)`, which records the request, enforces the venue's
request limit, injects armed faults and turns `Refused` into the venue's error payload.
Every websocket route is a `Stream` (streams.py) served through `stream_endpoint`.

Control API (JSON; the conformance suite and users' CI drive emulators through it):
    GET    /__emulator/orders[?account=KEY]   every order the venue holds
    POST   /__emulator/orders                 place an order directly (as another tool would)
    POST   /__emulator/cancel                 {"account", "client_order_id"}: the venue cancels it
    POST   /__emulator/faults                 arm a fault (see faults.py)
    DELETE /__emulator/faults                 disarm all faults
    POST   /__emulator/drop-streams           close every websocket connection
    POST   /__emulator/connection-lifetime    {"seconds": N}: websockets opened from now on are closed
                                              by the venue after N seconds (the venue's documented
                                              lifetime, e.g. Binance's 24 h, made short for a test)
    POST   /__emulator/revoke                 {"api_key": ...}: the key now fails auth
    POST   /__emulator/expire-session         {"api_key": ...}: a venue with daily access tokens expires the
                                              account's session as its daily expiry does (sessions.py): its
                                              token is refused from now on and the venue's sockets close
    GET    /__emulator/stats                  requests per operation, limit hits, open sockets
    GET    /__emulator/connector-settings?account=NAME   the [venues.<venue>] table for a connector
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
from aiohttp import web

from tradebus.schemas.values import OrderType, RejectReason, Side, TimeInForce
from tradebus.simulator.market import default_instruments
from tradebus.simulator.rules import FeeSchedule, InstrumentSpec

from .faults import Fault, FaultKind
from .sessions import DailySessions
from .streams import Stream
from .venue import EmulatedVenue, FeeAsset, Refused

log = logging.getLogger(__name__)


class DirectOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order placed through the control API, as if by another tool on the same account."""

    account: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType = OrderType.LIMIT
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC


class Revoke(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: str


class Lifetime(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    seconds: float | None


class DirectCancel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    client_order_id: str


class RequestLimit:
    """The venue's documented request limit, enforced as the venue would: requests beyond
    `per_second` within any one-second window are refused with the rate-limit response."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._recent: deque[float] = deque()
        self.hits = 0

    def allow(self) -> bool:
        self._forget_old()
        if len(self._recent) >= self.per_second:
            self.hits += 1
            return False
        self._recent.append(time.monotonic())
        return True

    def remaining(self) -> int:
        """Requests still allowed in the current one-second window (what rate-limit headers report)."""
        self._forget_old()
        return self.per_second - len(self._recent)

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()


class Emulator(ABC):
    """One emulated venue served over HTTP and websockets on one port."""

    name: ClassVar[str]  # the venue it emulates, as the connector names it (`binance`)
    requests_per_second: ClassVar[int]  # the venue's documented REST limit (per API key, simplified)
    # How long the venue keeps one websocket connection open (None: no documented limit).
    connection_lifetime: ClassVar[float | None] = None
    fees: ClassVar[FeeSchedule] = FeeSchedule()  # the venue's rates,
    fee_asset: ClassVar[FeeAsset] = FeeAsset.QUOTE  # charged in this currency (venue.FeeAsset)

    @classmethod
    def listed_instruments(cls) -> list[InstrumentSpec]:
        """What the emulated venue lists (by default: the simulated market's crypto pairs)."""
        return [spec for spec in default_instruments() if spec.asset_class == "crypto"]

    @classmethod
    def create(cls, *, credentials: dict[str, str], seed: int | None = 1, tick_interval: float = 0.1) -> Emulator:
        """An emulator of this venue with its own market and accounts (named by API key)."""
        venue = EmulatedVenue(credentials=credentials, instruments=cls.listed_instruments(), fees=cls.fees,
                              fee_asset=cls.fee_asset, seed=seed, tick_interval=tick_interval)
        return cls(venue)

    @classmethod
    def issue_secret(cls, secret: str | None = None) -> str:
        """A secret (or access token) in the form the venue issues them; `secret`: one to use
        where the venue's have no form of their own. `tradebus up --emulate` and the
        conformance suite credential their accounts with it."""
        return secret or secrets.token_urlsafe(24)

    def __init__(self, venue: EmulatedVenue) -> None:
        self.venue = venue
        self.limit = RequestLimit(self.requests_per_second)
        self.sockets: set[web.WebSocketResponse] = set()
        self.lifetime = self.connection_lifetime  # the control API shortens it for tests
        self.sessions: DailySessions | None = None  # a venue whose access tokens last a day sets its logins
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- what a venue implements ------------------------------------------------------------
    @abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the venue's REST and websocket routes."""

    @abstractmethod
    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        """The `[venues.<name>]` settings table that points this venue's connector at this
        emulator (every REST and websocket URL overridden), trading `account` with these
        credentials. Used by `tradebus up --emulate` and by the conformance suite."""

    @abstractmethod
    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        """The venue's error payload and HTTP status for `reason` (RATE_LIMITED and
        VENUE_UNAVAILABLE included)."""

    def limit_headers(self, operation: str, response: web.StreamResponse, *, keyed: bool) -> dict[str, str]:
        """The rate-limit headers the venue puts on this answer (none by default)."""
        return {}

    # --- serving ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve; return the base URL (http://host:port)."""
        app = web.Application()
        self._control_routes(app)
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.url = f"http://{host}:{bound[1]}"
        self.venue.start()
        log.info("emulator listening", extra={"venue": self.name, "url": self.url})
        return self.url

    async def stop(self) -> None:
        await self.drop_streams()
        await self.venue.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def drop_streams(self) -> None:
        for socket in list(self.sockets):
            await socket.close()
        self.sockets.clear()

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Accept a websocket and track it (so drop-streams can close it)."""
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        self.sockets.add(socket)
        socket_closed = socket.close
        expiry: asyncio.TimerHandle | None = None

        async def close(**kwargs: object) -> bool:
            self.sockets.discard(socket)
            if expiry is not None:
                expiry.cancel()
            return await socket_closed(**kwargs)  # type: ignore[arg-type]

        socket.close = close  # type: ignore[method-assign]
        if self.lifetime is not None:  # the venue ends the connection when its lifetime is over
            expiry = asyncio.get_running_loop().call_later(self.lifetime, lambda: asyncio.ensure_future(close()))
        return socket

    def stream_endpoint(self, stream: Stream[Any]) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
        """An aiohttp handler accepting a websocket (tracked: see `websocket`) and serving it
        as `stream` does."""

        async def serve(request: web.Request) -> web.WebSocketResponse:
            socket = await self.websocket(request)
            await stream.serve(socket)
            return socket

        return serve

    def endpoint(
        self, operation: str, work: Callable[[web.Request], Awaitable[web.StreamResponse]], *, keyed: bool = True
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """An aiohttp handler running `work(request)` through `handle`."""

        async def serve(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, operation, lambda: work(request), keyed=keyed)

        return serve

    async def handle(
        self, request: web.Request, operation: str, work: Callable[[], Awaitable[web.StreamResponse]],
        *, keyed: bool = True,
    ) -> web.StreamResponse:
        """Run one REST request of `operation` the way the venue would, faults included.
        `keyed` requests (account and order endpoints) count against the per-key limit;
        public market data does not."""
        self.venue.record(operation)
        fault = self.venue.faults.take(operation)
        refusal = self._refusal(fault, keyed=keyed)
        if refusal is not None:
            refusal.headers.update(self.limit_headers(operation, refusal, keyed=keyed))
            return refusal
        if fault is not None and fault.kind is FaultKind.LOST:
            await self._drop(request, fault)
        try:
            response = await work()
        except Refused as exc:
            response = self.error_response(exc.reason, exc.message)
        if fault is not None and fault.kind is FaultKind.TIMEOUT:
            await self._drop(request, fault)  # carried out, but the client never hears of it
        response.headers.update(self.limit_headers(operation, response, keyed=keyed))
        return response

    def _refusal(self, fault: Fault | None, *, keyed: bool) -> web.Response | None:
        """The answer of a request refused before any work: over the limit, or an armed fault."""
        if keyed and not self.limit.allow():
            return self.error_response(RejectReason.RATE_LIMITED, "too many requests", retry_after=1.0)
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            return self.error_response(RejectReason.RATE_LIMITED, "too many requests", retry_after=fault.retry_after)
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            return self.error_response(RejectReason.VENUE_UNAVAILABLE, "internal error")
        if fault is not None and fault.kind is FaultKind.AUTH:
            return self.error_response(RejectReason.AUTH_FAILED, "invalid API key")
        return None

    @staticmethod
    async def _drop(request: web.Request, fault: Fault) -> None:
        await asyncio.sleep(fault.delay)
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # aiohttp ends the handler without writing a response

    # --- control API --------------------------------------------------------------------------
    def _control_routes(self, app: web.Application) -> None:
        app.router.add_get("/__emulator/orders", self._list_orders)
        app.router.add_post("/__emulator/orders", self._place_direct)
        app.router.add_post("/__emulator/cancel", self._cancel_direct)
        app.router.add_post("/__emulator/faults", self._arm_fault)
        app.router.add_delete("/__emulator/faults", self._clear_faults)
        app.router.add_post("/__emulator/drop-streams", self._drop_streams)
        app.router.add_post("/__emulator/connection-lifetime", self._set_lifetime)
        app.router.add_post("/__emulator/revoke", self._revoke)
        app.router.add_post("/__emulator/expire-session", self._expire_session)
        app.router.add_get("/__emulator/stats", self._stats)
        app.router.add_get("/__emulator/connector-settings", self._connector_settings)

    async def _list_orders(self, request: web.Request) -> web.Response:
        account = request.query.get("account")
        orders = [o for o in self.venue.orders.values() if account in (None, o.account)]
        return _json(orders)

    async def _place_direct(self, request: web.Request) -> web.Response:
        order = msgspec.json.decode(await request.read(), type=DirectOrder)
        try:
            placed = self.venue.place(
                order.account, client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
                order_type=order.order_type, quantity=order.quantity, price=order.price,
                time_in_force=order.time_in_force,
            )
        except Refused as exc:
            return _json({"reason": exc.reason, "message": exc.message}, status=400)
        return _json(placed)

    async def _cancel_direct(self, request: web.Request) -> web.Response:
        target = msgspec.json.decode(await request.read(), type=DirectCancel)
        try:
            order = self.venue.cancel(self.venue.find(target.account, client_order_id=target.client_order_id))
        except Refused as exc:
            return _json({"reason": exc.reason, "message": exc.message}, status=400)
        return _json(order)

    async def _arm_fault(self, request: web.Request) -> web.Response:
        fault = msgspec.json.decode(await request.read(), type=Fault)
        self.venue.faults.arm(fault)
        return _json(fault)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.venue.faults.clear()
        return _json({})

    async def _drop_streams(self, request: web.Request) -> web.Response:
        count = len(self.sockets)
        await self.drop_streams()
        return _json({"closed": count})

    async def _set_lifetime(self, request: web.Request) -> web.Response:
        self.lifetime = msgspec.json.decode(await request.read(), type=Lifetime).seconds
        return _json({"seconds": self.lifetime})

    async def _revoke(self, request: web.Request) -> web.Response:
        self.venue.revoked.add(msgspec.json.decode(await request.read(), type=Revoke).api_key)
        return _json({})

    async def _expire_session(self, request: web.Request) -> web.Response:
        if self.sessions is None:
            return _json({"error": f"{self.name} has no daily sessions"}, status=404)
        try:
            self.sessions.expire(msgspec.json.decode(await request.read(), type=Revoke).api_key)
        except Refused as exc:
            return _json({"reason": exc.reason, "message": exc.message}, status=400)
        await self.drop_streams()  # the session's streams end with it (every account's: a simplification)
        return _json({})

    async def _connector_settings(self, request: web.Request) -> web.Response:
        """Credentials excluded: connectors read them from <VENUE>_API_KEY / _API_SECRET."""
        table = self.connector_config(account=request.query.get("account", "demo"), api_key="", api_secret="")
        return _json({key: value for key, value in table.items() if key not in ("api_key", "api_secret")})

    async def _stats(self, request: web.Request) -> web.Response:
        return _json({
            "requests": Counter(operation for _, operation in self.venue.requests),
            "limit_hits": self.limit.hits,
            "sockets": len(self.sockets),
        })


def _json(value: object, *, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), status=status, content_type="application/json")
