"""An emulated Fyers venue: enough of Fyers API v3 and its order socket to run the unmodified
fyers-apiv3 FyersModel and FyersOrderSocket against it.

Served (paths as on api-t1.fyers.in, docs myapi.fyers.in/docsv3):
    GET    /api/v3/generate-authcode        the login page (SessionModel.generate_authcode()'s URL): the
                                            emulated user is logged in at once and redirected to
                                            `redirect_uri` with s=ok, code=200, auth_code and state
    POST   /api/v3/validate-authcode        {"grant_type": "authorization_code", "appIdHash":
                                            sha256("<app id>:<secret>"), "code"} -> access_token (a JWT)
    GET    /api/v3/profile, /api/v3/funds, /api/v3/positions, /api/v3/tradebook
    GET    /api/v3/orders[?id=|?order_tag=]   the day's order book, or one order
    POST   /api/v3/orders/sync              limit (1), market (2), SL-M (3), SL-L (4); DAY, IOC
    PATCH  /api/v3/orders/sync              modify quantity / prices (the order keeps its id)
    DELETE /api/v3/orders/sync              cancel
    GET    /data/depth, /data/quotes        five-level book; best bid / ask and last price
    POST   /data/symbol-token               symbols -> fytokens (datasocket.py)
    WS     /trade/v3                        the order socket: SUB_ORD, then order frames (raw names)
    WS     /hsm/v1-5/prod                   the data socket, HSM binary protocol (datasocket.py)
Auth: `Authorization: <app id>:<access token>` (REST and the socket's handshake); the app id
names the account. A token Fyers never gave gets 401 {"code": -16}, an expired one 401
{"code": -8} (the control API's expire-session; logins: ../sessions.py); the data socket and
the symbol look-up refuse both. Fyers documents no code for a refused auth code or app hash:
the emulator answers its -16 then. The symbol look-up takes the bare access token (as the
SDK sends it), the data socket the token's `hsm_key` claim. Access tokens are JWTs as Fyers'
are (`issue_secret`; render.access_token; a login's new token too).

Simplified: the market never closes; the product type is echoed, not enforced (no margin);
Fyers' brokerage and taxes are not charged; an emulated access token expires only when the
control API says so (its `exp` is far off).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from yarl import URL

from tradebus.schemas.values import RejectReason, Side
from tradebus.simulator.rules import FeeSchedule, InstrumentSpec

from ..server import Emulator
from ..sessions import DailySessions
from ..streams import Stream, StreamSession
from ..venue import EmulatedFill, EmulatedOrder, EmulatedVenue, Refused
from . import render
from .datasocket import DataSocket

OPENING_CASH = Decimal("10000000")  # rupees per emulated account
USER_TAG = "1:"  # Fyers prefixes a user's order tag with it (docs "Orders", orderTag)
ORDER_TAG = re.compile(r"^[A-Za-z0-9]{1,30}\Z")  # what Fyers takes as an orderTag (docs "Single Order")


def _equity(symbol: str, price: str) -> InstrumentSpec:
    base = symbol.partition(":")[2].rsplit("-", 1)[0]
    return InstrumentSpec(symbol=symbol, base=base, quote="INR", tick_size=Decimal("0.05"), lot_size=Decimal(1),
                          min_quantity=Decimal(1), min_notional=Decimal(0), initial_price=Decimal(price),
                          asset_class="equity")


class FyersEmulator(Emulator):
    name = "fyers"
    sessions: DailySessions  # its logins (../sessions.py)
    requests_per_second = 10  # Fyers: 10 per second, 200 per minute (docs "Rate Limit"); the second is enforced
    fees = FeeSchedule(maker_bps=Decimal(0), taker_bps=Decimal(0))  # Fyers' charges are not emulated

    @classmethod
    def listed_instruments(cls) -> list[InstrumentSpec]:
        return [_equity("NSE:SBIN-EQ", "800.00"), _equity("NSE:RELIANCE-EQ", "2900.00")]

    @classmethod
    def issue_secret(cls, secret: str | None = None) -> str:
        return render.access_token(secret)

    @classmethod
    def create(cls, *, credentials: dict[str, str], seed: int | None = 1, tick_interval: float = 0.1) -> Emulator:
        venue = EmulatedVenue(credentials=credentials, instruments=cls.listed_instruments(), fees=cls.fees,
                              cash={"INR": OPENING_CASH}, seed=seed, tick_interval=tick_interval)
        return cls(venue)

    def __init__(self, venue: EmulatedVenue) -> None:
        super().__init__(venue)
        # Fyers' tags need not be unique, the engine's client order ids must: each order gets
        # one of its own (its tag, where no other order has it), keyed to its tag as Fyers
        # reports it and to its product type.
        self._serial = itertools.count(1)
        self._tags: dict[str, str] = {}
        self._products: dict[str, str] = {}
        # The order socket authenticates at the handshake: the account of each accepted socket,
        # until its session is made.
        self._handshakes: dict[web.WebSocketResponse, str] = {}
        self.sessions = DailySessions(venue, lambda app_id: render.access_token())
        self.order_stream = Stream(self._order_request, session=self._order_session, decode=_order_request)
        venue.on_order(self._on_order)
        self.data_socket = DataSocket(self._hsm_keys)
        venue.on_market(self.data_socket.on_market)

    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        ws = self.url.replace("http://", "ws://")
        return {
            "account": account, "api_key": api_key, "access_token": api_secret, "api_url": f"{self.url}/api/v3",
            "data_url": f"{self.url}/data", "order_socket_url": f"{ws}/trade/v3", "data_socket_url": f"{ws}/hsm/v1-5/prod",
            "symbols": sorted(self.venue.instruments), "subscribe": ["*"],
            "market_hours": False,  # the emulated venue trades around the clock: no sessions to refuse outside of
        }

    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        if reason is RejectReason.VENUE_UNAVAILABLE:  # a gateway failure: no Fyers body at all
            return web.Response(status=502, text="Bad Gateway")
        return render.error(reason, message)

    def routes(self, app: web.Application) -> None:
        get, endpoint, router = app.router.add_get, self.endpoint, app.router
        get("/api/v3/generate-authcode", endpoint("login", self._login_page, keyed=False))
        router.add_post("/api/v3/validate-authcode", endpoint("session", self._validate_authcode, keyed=False))
        get("/api/v3/profile", endpoint("profile", self._authed(self._profile)))
        get("/api/v3/funds", endpoint("balance", self._authed(self._funds)))
        get("/api/v3/positions", endpoint("positions", self._authed(self._positions)))
        get("/api/v3/tradebook", endpoint("trades", self._authed(self._tradebook)))
        get("/api/v3/orders", self._orders)
        router.add_post("/api/v3/orders/sync", endpoint("place", self._authed(self._place)))
        router.add_patch("/api/v3/orders/sync", endpoint("amend", self._authed(self._modify)))
        router.add_delete("/api/v3/orders/sync", endpoint("cancel", self._authed(self._cancel)))
        get("/data/depth", endpoint("depth", self._authed(self._depth), keyed=False))
        get("/data/quotes", endpoint("quotes", self._authed(self._quotes), keyed=False))
        router.add_post("/data/symbol-token", endpoint("symbol_token", self._symbol_token, keyed=False))
        get("/trade/v3", self._order_socket)
        get("/hsm/v1-5/prod", self._data_socket)

    async def _orders(self, request: web.Request) -> web.StreamResponse:
        """GET /orders: the day's order book, or one order's look-up (`id` or `order_tag`
        given, docs "Orders"): counted (and faulted) as the operation it is."""
        operation = "lookup" if {"id", "order_tag"} & request.query.keys() else "open_orders"
        orderbook = self._authed(self._orderbook)
        return await self.handle(request, operation, lambda: orderbook(request))

    # --- auth -------------------------------------------------------------------------------
    def _authed(self, work: Any) -> Any:
        async def authed(request: web.Request) -> web.Response:
            account = self._authenticate(request.headers.get("Authorization"))
            return web.json_response(await work(account, request))

        return authed

    def _authenticate(self, header: str | None) -> str:
        app_id, _, token = (header or "").partition(":")
        return self.sessions.check(app_id, token)

    async def _login_page(self, request: web.Request) -> web.Response:
        query = request.query
        auth_code = self.sessions.login(query.get("client_id", ""))
        target = URL(query.get("redirect_uri", "")).update_query(s="ok", code="200", auth_code=auth_code,
                                                                     state=query.get("state", ""))
        raise web.HTTPFound(str(target))

    async def _validate_authcode(self, request: web.Request) -> web.Response:
        body = await _body(request)
        code = str(body.get("code") or "")
        app_id = self.sessions.app_of(code) or ""
        proof = hashlib.sha256(f"{app_id}:{self.sessions.app_secrets.get(app_id)}".encode()).hexdigest()
        if body.get("grant_type") != "authorization_code" or not app_id or body.get("appIdHash") != proof:
            raise Refused(RejectReason.AUTH_FAILED, "Could not authenticate the user")
        token = self.sessions.redeem(code)
        return web.json_response({"s": "ok", "code": 200, "message": "", "access_token": token,
                                  "refresh_token": render.access_token()})

    async def _data_socket(self, request: web.Request) -> web.StreamResponse:
        self.venue.record("data_socket")  # every connection attempt (the socket authenticates after it)
        return await self.stream_endpoint(self.data_socket.stream)(request)

    def _hsm_keys(self) -> dict[str, str]:
        """The `hsm_key` of each account's access token (a token that is no JWT has none)."""
        keys = {}
        for account, token in self.venue.credentials.items():
            key = render.hsm_key(token)
            if key is not None and account not in self.venue.revoked and account not in self.sessions.expired:
                keys[key] = account
        return keys

    async def _symbol_token(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization") or ""
        live = {t for a, t in self.venue.credentials.items() if a not in self.venue.revoked | self.sessions.expired}
        if not token or token not in live:
            raise Refused(RejectReason.AUTH_FAILED, "Could not authenticate the user")
        symbols = (await _body(request)).get("symbols")
        if not isinstance(symbols, list):
            raise Refused(RejectReason.MALFORMED, "Invalid input")
        return web.json_response(self.data_socket.symbol_tokens(symbols))

    # --- account ----------------------------------------------------------------------------
    async def _profile(self, account: str, request: web.Request) -> dict[str, Any]:
        return {"s": "ok", "code": 200, "message": "",
                "data": {"name": "EMULATED", "display_name": "", "fy_id": account, "email_id": "", "pan": ""}}

    async def _funds(self, account: str, request: web.Request) -> dict[str, Any]:
        free, locked = self.venue.balances(account).get("INR", (Decimal(0), Decimal(0)))
        rows = [(1, "Total Balance", free + locked), (2, "Utilized Amount", locked), (3, "Clear Balance", free + locked),
                (10, "Available Balance", free)]
        return {"code": 200, "message": "", "s": "ok", "fund_limit": [
            {"id": i, "title": title, "equityAmount": float(amount), "commodityAmount": 0} for i, title, amount in rows]}

    async def _positions(self, account: str, request: web.Request) -> dict[str, Any]:
        rows = [{"symbol": p.symbol, "id": f"{p.symbol}-INTRADAY", "netQty": float(p.quantity), "qty": float(abs(p.quantity)),
                 "netAvg": float(p.avg_price), "avgPrice": float(p.avg_price), "side": 1 if p.quantity > 0 else -1,
                 "productType": "INTRADAY", "segment": 10, "exchange": 10}
                for p in self.venue.positions(account) if p.quantity]
        return {"s": "ok", "code": 200, "message": "", "netPositions": rows}

    async def _tradebook(self, account: str, request: web.Request) -> dict[str, Any]:
        trades = [render.trade(o, f, *self._terms(o))
                  for o, f in self.venue.fills(account)]
        return {"s": "ok", "code": 200, "message": "", "tradeBook": trades}

    # --- orders -------------------------------------------------------------------------------
    def _terms(self, record: EmulatedOrder) -> tuple[str, str]:
        """Its order tag and product type. An order placed through the control API (another
        tool) carries its client order id as its tag where Fyers allows that tag (alphanumeric,
        1 to 30 characters, docs "Single Order": the only name a tool gives its Fyers order),
        else none: Fyers reports it "2:Untagged"."""
        tag = self._tags.get(record.client_order_id)
        if tag is None:
            tag = f"{USER_TAG}{record.client_order_id}" if ORDER_TAG.match(record.client_order_id) else "2:Untagged"
        return tag, self._products.get(record.client_order_id, "INTRADAY")

    def _render(self, record: EmulatedOrder) -> dict[str, Any]:
        return render.order(record, *self._terms(record))

    async def _orderbook(self, account: str, request: web.Request) -> dict[str, Any]:
        records = sorted((o for o in self.venue.orders.values() if o.account == account), key=lambda o: o.order_id)
        if "id" in request.query:
            records = [o for o in records if str(o.order_id) == request.query["id"]]
        if "order_tag" in request.query:
            records = [o for o in records if self._terms(o)[0] == request.query["order_tag"]]
        return {"s": "ok", "code": 200, "message": "", "orderBook": [self._render(o) for o in records]}

    async def _place(self, account: str, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        kind, validity, symbol = body.get("type"), str(body.get("validity", "")), str(body.get("symbol", ""))
        if kind not in render.ORDER_TYPES or validity not in render.VALIDITY or body.get("side") not in (1, -1):
            raise Refused(RejectReason.MALFORMED, "Invalid input")
        if symbol not in self.venue.instruments:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, "Invalid symbol provided")
        tag = str(body.get("orderTag") or "")
        # the tag names the order in the engine (and the control API) unless another order
        # has it: Fyers takes a tag twice
        engine_id = tag if tag and not self._named(account, tag) else f"fy{next(self._serial)}"
        self._tags[engine_id] = f"{USER_TAG}{tag}" if tag else "2:Untagged"
        self._products[engine_id] = str(body.get("productType") or "INTRADAY")
        order_type = render.ORDER_TYPES[kind]
        quantity, price = _decimal(body, "qty"), _decimal(body, "limitPrice") if kind in (1, 4) else None
        try:
            record = self.venue.place(
                account, client_order_id=engine_id, symbol=symbol,
                side=Side.BUY if body["side"] == 1 else Side.SELL, order_type=order_type, quantity=quantity,
                price=price, stop_price=_decimal(body, "stopPrice") if kind in (3, 4) else None,
                time_in_force=render.VALIDITY[validity],
            )
        except Refused as exc:
            if exc.reason is not RejectReason.INSUFFICIENT_FUNDS:
                raise
            raise Refused(exc.reason, self._margin_shortfall(account, symbol, quantity, price)) from None
        return {"s": "ok", "code": 1101,
                "message": f"Order submitted successfully. Your Order Ref. No.{record.order_id}", "id": str(record.order_id)}

    def _margin_shortfall(self, account: str, symbol: str, quantity: Decimal, price: Decimal | None) -> str:
        """Fyers' risk check refusing a place the account cannot margin, in its words (codes.py)."""
        update = self.venue.last_market.get(symbol)
        if price is None:  # a market order is margined at the market
            price = update.asks[0][0] if update and update.asks else Decimal(0)
        available = self.venue.balances(account).get("INR", (Decimal(0), Decimal(0)))[0]
        return (f"RED:Margin Shortfall:INR {quantity * price - available:.2f} Available:INR {available:.2f} "
                f"for C-{account} [FYERS_RISK_CUG]")

    def _named(self, account: str, engine_id: str) -> bool:
        """Whether an order of the account has this engine id already."""
        try:
            self.venue.find(account, client_order_id=engine_id)
        except Refused:
            return False
        return True

    def _find(self, account: str, body: dict[str, Any]) -> EmulatedOrder:
        try:
            return self.venue.find(account, order_id=int(str(body.get("id"))))
        except (ValueError, Refused):
            raise Refused(RejectReason.UNKNOWN_ORDER, "Invalid order id") from None

    async def _modify(self, account: str, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        record = self._find(account, body)
        if not record.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "order is not open")
        self.venue.modify(record, quantity=_optional(body, "qty"), price=_optional(body, "limitPrice"),
                          stop_price=_optional(body, "stopPrice"))
        return {"s": "ok", "code": 1102, "message": "Successfully modified order", "id": str(record.order_id)}

    async def _cancel(self, account: str, request: web.Request) -> dict[str, Any]:
        record = self._find(account, await _body(request))
        if not record.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "order is not open")
        self.venue.cancel(record)
        return {"s": "ok", "code": 1103, "message": "Successfully cancelled order", "id": str(record.order_id)}

    # --- market data --------------------------------------------------------------------------
    async def _depth(self, account: str, request: web.Request) -> dict[str, Any]:
        symbol = request.query.get("symbol", "")
        update = self.venue.last_market.get(symbol)
        if symbol not in self.venue.instruments:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, "Invalid symbol provided")
        bids = (update.bids or [])[:5] if update else []
        asks = (update.asks or [])[:5] if update else []

        def level(price: Decimal, size: Decimal) -> dict[str, Any]:
            return {"price": float(price), "volume": float(size), "ord": 1}

        return {"s": "ok", "message": "", "d": {symbol: {
            "bids": [level(p, s) for p, s in bids], "ask": [level(p, s) for p, s in asks],
            "totalbuyqty": float(sum(s for _, s in bids)), "totalsellqty": float(sum(s for _, s in asks)),
            "ltp": float(update.trade.price) if update and update.trade else 0, "tick_Size": 0.05}}}

    async def _quotes(self, account: str, request: web.Request) -> dict[str, Any]:
        quotes = []
        for symbol in request.query.get("symbols", "").split(","):
            update = self.venue.last_market.get(symbol)
            if symbol not in self.venue.instruments or update is None or not update.bids or not update.asks:
                quotes.append({"n": symbol, "s": "error", "v": {"errmsg": "invalid symbol"}})
                continue
            bid, ask = update.bids[0][0], update.asks[0][0]
            quotes.append({"n": symbol, "s": "ok", "v": {"bid": float(bid), "ask": float(ask), "spread": float(ask - bid),
                                                         "lp": float(update.trade.price) if update.trade else float(bid),
                                                         "symbol": symbol}})
        return {"s": "ok", "code": 200, "d": quotes}

    # --- the order socket ---------------------------------------------------------------------------
    async def _order_socket(self, request: web.Request) -> web.StreamResponse:
        self.venue.record("order_socket")  # every connection attempt, taken or refused
        try:
            account = self._authenticate(request.headers.get("authorization"))
        except Refused as exc:
            return render.error(exc.reason, exc.message)  # the handshake is refused
        socket = await self.websocket(request)
        self._handshakes[socket] = account
        await self.order_stream.serve(socket)
        return socket

    def _order_session(self, socket: web.WebSocketResponse) -> StreamSession:
        session = StreamSession(socket)
        session.account = self._handshakes.pop(socket)
        return session

    def _order_request(self, session: StreamSession, request: Any) -> None:
        if request == "ping":
            session.outbox.put_nowait("pong")  # fyers-apiv3 pings as text and ignores the answer
        elif isinstance(request, dict) and request.get("T") == "SUB_ORD" and "orders" in (request.get("SLIST") or []):
            session.topics.add("orders")
            session.send({"code": 1605, "message": "Successfully subscribed", "s": "ok"})

    def _on_order(self, record: EmulatedOrder, fill: EmulatedFill | None) -> None:
        frame = render.socket_order(self._render(record))
        for session in self.order_stream.sessions:
            if session.account == record.account and "orders" in session.topics:
                session.send(frame)


def _order_request(data: str) -> Any:
    """The order socket's requests: JSON, and the SDK's text `ping`."""
    return data if data == "ping" else json.loads(data)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise Refused(RejectReason.MALFORMED, "Invalid input") from None
    if not isinstance(body, dict):
        raise Refused(RejectReason.MALFORMED, "Invalid input")
    return body


def _optional(body: dict[str, Any], name: str) -> Decimal | None:
    if body.get(name) is None:
        return None
    try:
        return Decimal(str(body[name]))
    except InvalidOperation:
        raise Refused(RejectReason.MALFORMED, "Invalid input") from None


def _decimal(body: dict[str, Any], name: str) -> Decimal:
    value = _optional(body, name)
    if value is None:
        raise Refused(RejectReason.MALFORMED, "Invalid input")
    return value

