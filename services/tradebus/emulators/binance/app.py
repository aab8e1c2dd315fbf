"""An emulated Binance spot venue: enough of Binance's REST API, market streams and
WebSocket-API user data stream to run the unmodified ccxt SDK against it.

Served (paths as on api.binance.com / stream.binance.com / ws-api.binance.com):
    GET  /api/v3/ping, /time, /exchangeInfo, /depth, /ticker/bookTicker
    GET  /api/v3/account, /order, /openOrders, /allOrders, /myTrades (signed)
    POST /api/v3/order        LIMIT, LIMIT_MAKER, MARKET, STOP_LOSS, STOP_LOSS_LIMIT; GTC, IOC, FOK
    POST /api/v3/orderList/oco  LIMIT_MAKER + STOP_LOSS / STOP_LOSS_LIMIT (orderlists.py)
    DELETE /api/v3/order, /openOrders                              (signed)
    WS   /ws        SUBSCRIBE to <symbol>@bookTicker, @trade, @depth / @depth@100ms
    WS   /ws-api/v3 userDataStream.subscribe.signature -> executionReport, listStatus events
Signed requests are checked as Binance checks them: X-MBX-APIKEY header, HMAC-SHA256 of
the query (or form body) with the API secret, errors -2015 / -1022 with HTTP 401; then the
timing rule of rest-api.md "Timing security": a `timestamp` 1 s or more ahead of the
server's clock, or older than `recvWindow` (default 5,000 ms), is refused with -1021.

Every REST answer carries `X-MBX-USED-WEIGHT-1M` (rest-api.md "IP Limits": every request
contains it); a successful order answer also `X-MBX-ORDER-COUNT-10S` / `-1D` ("Unfilled
Order Count"), named after the limiters exchangeInfo declares (render.RATE_LIMITS).
Source: binance/binance-spot-api-docs rest-api.md, enums.md (commit a5e0bc3d).

Stream lifecycle (web-socket-api.md "General API Information", user-data-stream.md "Event
Stream Terminated"): a connection lives 24 hours (`connection_lifetime`), then is closed;
the control API can end every user data subscription with `eventStreamTerminated`
(POST /__emulator/binance/terminate-user-streams) and announce `serverShutdown` on every
websocket before closing them (POST /__emulator/binance/server-shutdown {"close_after": s}).
A cancel's executionReport carries the cancel request's id in `c` and the order's own id
in `C` ("Original client order ID; This is the ID of the order being canceled"), as the
DELETE answer carries them in `clientOrderId` / `origClientOrderId`.

Fees: 0.1% of each fill, in the asset received (a buy's commission in the base asset, a
sell's in the quote asset: `n` / `N` of the executionReport, `commission` /
`commissionAsset` of the order's fills and of myTrades), taken from that asset's balance.

Not emulated: BNB fee discount, margin, futures, order lists other than OCO, cancel-replace and amend (Binance spot
has no in-place modify of price), weights per endpoint (one request = one unit against
`requests_per_second`), listenKey streams, klines.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from tradebus.schemas.values import OrderStatus, RejectReason, TimeInForce
from tradebus.simulator.market import MarketUpdate
from tradebus.simulator.rules import FeeSchedule
from tradebus.simulator.state import Level

from ..server import Emulator
from ..streams import Stream, StreamSession
from ..venue import EmulatedFill, EmulatedOrder, FeeAsset, Refused
from . import render
from .orderlists import ListRefusal, OrderLists

BOOK_LEVELS = 10
DEFAULT_RECV_WINDOW_MS = 5000  # rest-api.md "Timing security": recvWindow defaults to 5000
AHEAD_TOLERANCE_MS = 1000  # ... and a timestamp must be earlier than serverTime + 1 second
ID_CHARACTERS = string.ascii_letters + string.digits


class Shutdown(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    close_after: float = 1.0  # seconds between the serverShutdown event and the disconnection


class BinanceEmulator(Emulator):
    name = "binance"
    requests_per_second = 20  # Binance spot: 6,000 request weight per minute per IP, simplified
    connection_lifetime = 24 * 3600.0  # "A single connection to the API is only valid for 24 hours"
    # A regular account's spot rates, 0.1% (the makerCommission / takerCommission of 10 bps
    # that GET /api/v3/account answers), paid without BNB discount: in the asset received.
    fees = FeeSchedule(maker_bps=Decimal(10), taker_bps=Decimal(10))
    fee_asset = FeeAsset.RECEIVED

    def __init__(self, venue: Any) -> None:
        super().__init__(venue)
        self.market_stream = Stream(self._market_request, session=StreamSession)
        self.api_stream = Stream(self._api_request, session=StreamSession, closed=self._api_closed)  # WebSocket API
        self._user_sockets: dict[str, list[StreamSession]] = {}  # api key -> sockets
        self._by_venue_symbol: dict[str, str] = {render.venue_symbol(symbol): symbol for symbol in venue.instruments}
        self._book_ids = dict.fromkeys(venue.instruments, 1)
        self._books: dict[str, tuple[list[Level], list[Level]]] = {}
        self._subscription_ids = itertools.count()
        self._market_trade_ids = itertools.count(1)
        self._cancel_ids: dict[int, str] = {}  # order id -> the client id of the request that cancelled it
        self._orders_placed: deque[float] = deque()  # monotonic times of accepted places (the longest window)
        self._shutdowns: set[asyncio.Task[None]] = set()
        self._sent_balances: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}  # api key -> what the stream said
        self.lists = OrderLists(venue, lambda account, event: self._send_user(account, [event]))
        venue.on_market(self._on_market)
        venue.on_order(self._on_order)

    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        host = self.url.removeprefix("http://")
        return {
            "account": account, "exchange": "binance", "api_key": api_key, "api_secret": api_secret,
            "rebase": {"rest": self.url, "ws": f"ws://{host}"},
            "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchMargins": False,
                        "fetchCurrencies": False},
            "subscribe": ["*"],
        }

    def user_stream_subscribed(self, api_key: str) -> bool:
        """Whether a client of this key holds a user data stream subscription (tests wait on it)."""
        return bool(self._user_sockets.get(api_key))

    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        return render.error(reason, message, retry_after=retry_after)

    def limit_headers(self, operation: str, response: web.StreamResponse, *, keyed: bool) -> dict[str, str]:
        """Used weight on every answer (one unit a request here); order counts on a successful place."""
        now = time.monotonic()
        weights = render.limit_windows("REQUEST_WEIGHT")
        longest = max(window for _, window in weights)
        requested = [at for at, _ in itertools.takewhile(lambda r: now - r[0] < longest, reversed(self.venue.requests))]
        headers = {name: str(_within(requested, now, window)) for name, window in weights}
        if operation == "place" and response.status == 200:
            self._orders_placed.append(now)
            windows = render.limit_windows("ORDERS")
            while now - self._orders_placed[0] >= max(window for _, window in windows):
                self._orders_placed.popleft()
            headers.update({name: str(_within(self._orders_placed, now, window)) for name, window in windows})
        return headers

    def routes(self, app: web.Application) -> None:
        get, post, delete, endpoint = app.router.add_get, app.router.add_post, app.router.add_delete, self.endpoint
        get("/api/v3/ping", endpoint("ping", _empty, keyed=False))
        get("/api/v3/time", endpoint("time", _server_time, keyed=False))
        get("/api/v3/exchangeInfo", endpoint("markets", self._exchange_info, keyed=False))
        get("/api/v3/depth", endpoint("depth", self._depth, keyed=False))
        get("/api/v3/ticker/bookTicker", endpoint("quote", self._book_ticker, keyed=False))
        get("/api/v3/account", endpoint("balance", self._signed(self._account)))
        post("/api/v3/order", endpoint("place", self._signed(self._place)))
        post("/api/v3/orderList/oco", endpoint("place", self._signed(self._place_oco)))
        get("/api/v3/order", endpoint("lookup", self._signed(self._lookup)))
        delete("/api/v3/order", endpoint("cancel", self._signed(self._cancel)))
        get("/api/v3/openOrders", endpoint("open_orders", self._signed(self._open_orders)))
        get("/api/v3/allOrders", endpoint("history", self._signed(self._all_orders)))
        delete("/api/v3/openOrders", endpoint("cancel_all", self._signed(self._cancel_all)))
        get("/api/v3/myTrades", endpoint("trades", self._signed(self._my_trades)))
        get("/ws", self.stream_endpoint(self.market_stream))
        get("/ws/{connection}", self.stream_endpoint(self.market_stream))  # ccxt numbers its connections: /ws/0, ...
        get("/ws-api/v3", self.stream_endpoint(self.api_stream))
        post("/__emulator/binance/terminate-user-streams", self._terminate_user_streams)
        post("/__emulator/binance/server-shutdown", self._server_shutdown)

    # --- signing ------------------------------------------------------------------------------
    def _signed(self, work: Callable[[str, dict[str, str]], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A handler that checks the API key and signature, then answers `work(account, params)`."""

        async def signed(request: web.Request) -> web.Response:
            payload = request.query_string if request.method in ("GET", "DELETE") else (await request.text())
            signed_part, _, signature = payload.rpartition("&signature=")
            account = self.venue.authenticate(request.headers.get("X-MBX-APIKEY"))
            if not _valid_signature(self.venue.credentials[account], signed_part, signature):
                return render.refusal(render.BAD_SIGNATURE)
            params = dict(parse_qsl(signed_part, keep_blank_values=True))
            late = _timing_refusal(params)
            if late is not None:
                return render.refusal(late)
            try:
                return web.json_response(work(account, params))
            except ListRefusal as exc:
                return render.refusal(exc.answer)

        return signed

    # --- public -------------------------------------------------------------------------------
    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = []
        for symbol, spec in self.venue.instruments.items():
            symbols.append({
                "symbol": render.venue_symbol(symbol), "status": "TRADING", "baseAsset": spec.base,
                "baseAssetPrecision": 8, "quoteAsset": spec.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"],
                "icebergAllowed": False, "ocoAllowed": True, "otoAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": render.number(spec.tick_size), "maxPrice": "1000000.00000000",
                     "tickSize": render.number(spec.tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": render.number(spec.min_quantity), "maxQty": "9000.00000000",
                     "stepSize": render.number(spec.lot_size)},
                    {"filterType": "NOTIONAL", "minNotional": render.number(spec.min_notional),
                     "applyMinToMarket": True, "maxNotional": "9000000.00000000", "applyMaxToMarket": False},
                ],
            })
        return web.json_response({"timezone": "UTC", "serverTime": _now_ms(), "rateLimits": render.RATE_LIMITS,
                                  "symbols": symbols})

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request.query.get("symbol", ""))
        bids, asks = self._books.get(symbol, ([], []))
        return web.json_response({
            "lastUpdateId": self._book_ids[symbol],
            "bids": [[render.number(p), render.number(s)] for p, s in bids],
            "asks": [[render.number(p), render.number(s)] for p, s in asks],
        })

    async def _book_ticker(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request.query.get("symbol", ""))
        return web.json_response(self._book_ticker_frame(symbol))

    # --- trading --------------------------------------------------------------------------------
    def _place(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        kind = params.get("type", "")
        if kind not in render.ORDER_TYPES:
            raise Refused(RejectReason.UNSUPPORTED_ORDER_TYPE, kind)
        time_in_force = TimeInForce.GTC
        if "timeInForce" in params:
            if params["timeInForce"] not in render.TIME_IN_FORCE:
                raise Refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, params["timeInForce"])
            time_in_force = render.TIME_IN_FORCE[params["timeInForce"]]
        order = self.venue.place(
            account, client_order_id=params.get("newClientOrderId") or f"emu{time.time_ns()}",
            symbol=self._symbol(params.get("symbol", "")), side=render.side(params.get("side", "")),
            order_type=render.ORDER_TYPES[kind], quantity=render.decimal_param(params, "quantity"),
            price=render.decimal_param(params, "price") if "price" in params else None,
            stop_price=render.decimal_param(params, "stopPrice") if "stopPrice" in params else None,
            time_in_force=time_in_force, post_only=kind == "LIMIT_MAKER",
        )
        return render.order_result(order)

    def _place_oco(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        return self.lists.place(account, params, self._symbol(params.get("symbol", "")))

    def _find(self, account: str, params: dict[str, str]) -> EmulatedOrder:
        if "orderId" in params:
            return self.venue.find(account, order_id=int(params["orderId"]))
        return self.venue.find(account, client_order_id=params.get("origClientOrderId", ""))

    def _lookup(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(account, params)
        return render.order(order, self.lists.list_id(order))

    def _cancel(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(account, params)
        if not order.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "Unknown order sent.")
        return self._cancelled(order, params.get("newClientOrderId"))

    def _cancelled(self, order: EmulatedOrder, cancel_id: str | None) -> dict[str, Any]:
        """Cancel `order` under the cancel request's own client id (Binance generates one when
        none is sent): the answer names it `clientOrderId`, the order's own `origClientOrderId`."""
        self._cancel_ids[order.order_id] = cancel_id or "".join(secrets.choice(ID_CHARACTERS) for _ in range(22))
        body = render.order(self.venue.cancel(order), self.lists.list_id(order))
        self.lists.cancel_with(order)
        body["origClientOrderId"] = order.client_order_id
        body["clientOrderId"] = self._cancel_ids[order.order_id]
        return body

    def _open_orders(self, account: str, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params["symbol"]) if "symbol" in params else None
        return [render.order(o, self.lists.list_id(o)) for o in self.venue.open_orders(account, symbol)]

    def _all_orders(self, account: str, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params.get("symbol", ""))
        since = int(params.get("startTime", 0)) * 1_000_000
        return [render.order(o, self.lists.list_id(o)) for o in self.venue.orders.values()
                if o.account == account and o.symbol == symbol and o.updated_ns >= since]

    def _cancel_all(self, account: str, params: dict[str, str]) -> list[dict[str, Any]]:
        # a list leg cancels its list: the other leg is no longer open when its turn comes
        return [self._cancelled(o, None) for o in self.venue.open_orders(account, self._symbol(params.get("symbol", "")))
                if o.is_open]

    def _my_trades(self, account: str, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params.get("symbol", ""))
        return [
            {"symbol": render.venue_symbol(symbol), "id": fill.trade_id, "orderId": order.order_id,
             "orderListId": self.lists.list_id(order),
             "price": render.number(fill.price), "qty": render.number(fill.quantity),
             "quoteQty": render.number(fill.price * fill.quantity), "commission": render.number(fill.fee),
             "commissionAsset": fill.fee_currency, "time": fill.ts // 1_000_000, "isBuyer": order.side.value == "buy",
             "isMaker": fill.maker, "isBestMatch": True}
            for order, fill in self.venue.fills(account, symbol)
            if params.get("orderId") in (None, str(order.order_id))
        ]

    def _account(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        return {
            "makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": False, "canDeposit": False,
            "updateTime": _now_ms(), "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [
                {"asset": currency, "free": render.number(free), "locked": render.number(locked)}
                for currency, (free, locked) in self.venue.balances(account).items()
            ],
        }

    def _symbol(self, venue_symbol: str) -> str:
        try:
            return self._by_venue_symbol[venue_symbol]
        except KeyError:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, "Invalid symbol.") from None

    # --- streams ------------------------------------------------------------------------------------
    def _market_request(self, session: StreamSession, request: dict[str, Any]) -> None:
        if request.get("method") == "SUBSCRIBE":
            session.topics.update(request.get("params", []))
        elif request.get("method") == "UNSUBSCRIBE":
            session.topics.difference_update(request.get("params", []))
        session.send({"result": None, "id": request.get("id")})

    def _api_request(self, session: StreamSession, call: dict[str, Any]) -> None:
        """A WebSocket API call: only the user data stream subscription is emulated."""
        if call.get("method") != "userDataStream.subscribe.signature":
            session.send({"id": call.get("id"), "status": 400,
                          "error": {"code": -1100, "msg": "Unsupported method in this emulator."}})
            return
        params = dict(call.get("params", {}))
        signature = str(params.pop("signature", ""))
        signed = "&".join(f"{key}={params[key]}" for key in sorted(params))
        try:
            account = self.venue.authenticate(str(params.get("apiKey", "")))
        except Refused:
            session.send({"id": call.get("id"), "status": 401,
                          "error": {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}})
            return
        refusal = (render.BAD_SIGNATURE if not _valid_signature(self.venue.credentials[account], signed, signature)
                   else _timing_refusal({key: str(value) for key, value in params.items()}))
        if refusal is not None:  # WebSocket API errors: the REST status and body, in the frame
            status, code, text = refusal
            session.send({"id": call.get("id"), "status": status, "error": {"code": code, "msg": text}})
            return
        session.account = account
        session.topics.add(str(next(self._subscription_ids)))
        self._user_sockets.setdefault(account, []).append(session)
        session.send({"id": call.get("id"), "status": 200, "result": {"subscriptionId": int(max(session.topics))}})

    def _api_closed(self, session: StreamSession) -> None:
        if session in self._user_sockets.get(session.account or "", []):
            self._user_sockets[session.account or ""].remove(session)

    async def _terminate_user_streams(self, request: web.Request) -> web.Response:
        """End every user data subscription as Binance does (user-data-stream.md "Event Stream
        Terminated"): the event, then no more events on it; the connection stays open."""
        ended = 0
        for sessions in self._user_sockets.values():
            for session in sessions:
                for subscription in session.topics:
                    session.send({"subscriptionId": int(subscription),
                                  "event": {"e": "eventStreamTerminated", "E": _now_ms()}})
                    ended += 1
                session.topics.clear()
            sessions.clear()
        return web.json_response({"terminated": ended})

    async def _server_shutdown(self, request: web.Request) -> web.Response:
        """The `serverShutdown` event on every connection (web-socket-api.md "Server Shutdown":
        wrapped in `event` on the WebSocket API; web-socket-streams.md: raw on market
        streams), then the disconnection `close_after` seconds later; a client should have
        connected anew by then."""
        shutdown = msgspec.json.decode(await request.read() or b"{}", type=Shutdown)
        event = {"e": "serverShutdown", "E": _now_ms()}
        for session in self.market_stream.sessions:
            session.send(event)
        for session in self.api_stream.sessions:
            session.send({"event": event})
        sessions = [*self.market_stream.sessions, *self.api_stream.sessions]

        async def disconnect() -> None:
            await asyncio.sleep(shutdown.close_after)
            for session in sessions:
                await session.socket.close()

        task = asyncio.create_task(disconnect())
        self._shutdowns.add(task)
        task.add_done_callback(self._shutdowns.discard)
        return web.json_response({"announced": len(sessions)})

    def _on_order(self, order: EmulatedOrder, fill: EmulatedFill | None) -> None:
        """The executionReport, then (Binance: "sent any time an account balance has
        changed") an outboundAccountPosition of the order's assets whose balance moved."""
        cancel_id = self._cancel_ids.get(order.order_id) if order.status is OrderStatus.CANCELLED else None
        events = [render.execution_report(order, fill, execution=render.execution_type(order, fill), cancel_id=cancel_id,
                                          list_id=self.lists.list_id(order),
                                          expiry_reason=self.lists.expiry_reasons.get(order.order_id))]
        spec = self.venue.instruments[order.symbol]
        held = self.venue.balances(order.account)
        sent = self._sent_balances.setdefault(order.account, {})
        moved = {asset: held.get(asset, (Decimal(0), Decimal(0))) for asset in (spec.base, spec.quote)}
        moved = {asset: balance for asset, balance in moved.items() if sent.get(asset) != balance}
        if moved:
            sent.update(moved)
            events.append(render.account_position(moved, order.updated_ns))
        self._send_user(order.account, events)
        self.lists.changed(order, fill)

    def _send_user(self, account: str, events: list[dict[str, Any]]) -> None:
        for session in self._user_sockets.get(account, []):
            for subscription in session.topics:
                for event in events:
                    session.send({"subscriptionId": int(subscription), "event": event})

    def _on_market(self, update: MarketUpdate) -> None:
        symbol = update.symbol
        stream = render.venue_symbol(symbol).lower()
        previous = self._books.get(symbol)
        if update.bids is not None and update.asks is not None:
            self._books[symbol] = (update.bids[:BOOK_LEVELS], update.asks[:BOOK_LEVELS])
            self._book_ids[symbol] += 1
        frames: dict[str, dict[str, Any]] = {}
        if update.bids is not None:
            frames[f"{stream}@bookTicker"] = self._book_ticker_frame(symbol)
            frames[f"{stream}@depth"] = self._depth_update(symbol, previous)
        if update.trade is not None:
            now = _now_ms()
            frames[f"{stream}@trade"] = {
                "e": "trade", "E": now, "s": render.venue_symbol(symbol), "t": next(self._market_trade_ids),
                "p": render.number(update.trade.price), "q": render.number(update.trade.size), "T": now,
                "m": update.trade.aggressor.value == "sell", "M": True,
            }
        for session in self.market_stream.sessions:
            for name, frame in frames.items():
                if name in session.topics or (name.endswith("@depth") and f"{name}@100ms" in session.topics):
                    session.send(frame)

    def _book_ticker_frame(self, symbol: str) -> dict[str, Any]:
        bids, asks = self._books.get(symbol, ([], []))
        (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
        return {"u": self._book_ids[symbol], "s": render.venue_symbol(symbol), "b": render.number(bid),
                "B": render.number(bid_size), "a": render.number(ask), "A": render.number(ask_size)}

    def _depth_update(self, symbol: str, previous: tuple[list[Level], list[Level]] | None) -> dict[str, Any]:
        bids, asks = self._books[symbol]
        update_id = self._book_ids[symbol]
        return {
            "e": "depthUpdate", "E": _now_ms(), "s": render.venue_symbol(symbol), "U": update_id, "u": update_id,
            "b": _level_changes(previous[0] if previous else [], bids),
            "a": _level_changes(previous[1] if previous else [], asks),
        }


def _level_changes(before: list[Level], after: list[Level]) -> list[list[str]]:
    """Binance diff depth: changed levels with their new size, removed levels with size 0."""
    old = dict(before)
    changes = [[render.number(p), render.number(s)] for p, s in after if old.get(p) != s]
    prices = {p for p, _ in after}
    changes += [[render.number(p), "0.00000000"] for p, _ in before if p not in prices]
    return changes


def _within(times: Iterable[float], now: float, window: float) -> int:
    """How many of `times` (monotonic seconds) fall within the last `window` seconds."""
    return sum(1 for at in times if now - at < window)


def _timing_refusal(params: dict[str, str]) -> tuple[int, int, str] | None:
    """rest-api.md "Timing security": processed only if timestamp < serverTime + 1 s and
    serverTime - timestamp <= recvWindow."""
    try:
        timestamp = int(params["timestamp"])
        window = float(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
    except (KeyError, ValueError):
        return render.MANDATORY_PARAMETER
    server_time = _now_ms()
    if timestamp >= server_time + AHEAD_TOLERANCE_MS:
        return render.AHEAD_OF_SERVER
    if server_time - timestamp > window:
        return render.OUTSIDE_RECV_WINDOW
    return None


def _valid_signature(secret: str, payload: str, signature: str) -> bool:
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _empty(request: web.Request) -> web.Response:
    return web.json_response({})


async def _server_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": _now_ms()})
