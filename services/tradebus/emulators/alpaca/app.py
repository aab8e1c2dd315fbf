"""An emulated Alpaca venue: enough of Alpaca's trading API v2 and its trade_updates
stream to run the unmodified alpaca-py TradingClient / TradingStream against it.

Served (paths as on paper-api.alpaca.markets):
    GET    /v2/account, /v2/clock, /v2/assets, /v2/positions
    POST   /v2/orders                      market, limit, stop, stop_limit, trailing_stop; day, gtc, ioc, fok;
                                           order_class simple, bracket, oco, oto (classes.py, trailing.py)
    GET    /v2/orders, /v2/orders/{id}, /v2/orders:by_client_order_id
    PATCH  /v2/orders/{id}                 replace: the order gets a new id (as on Alpaca)
    DELETE /v2/orders/{id}
    WS     /stream                         authenticate, listen trade_updates (JSON frames)
    WS     /v2/{feed}, /v1beta3/crypto/us  market data (msgpack): auth, subscribe quotes / trades
Auth: headers APCA-API-KEY-ID / APCA-API-SECRET-KEY; bad keys get 401 {"code": 40110000}.

Simplifications: the market never closes (equities trade 24/7 here, so the conformance
suite can run at any hour); opg / cls, notional orders and extended hours are refused with
422; positions are the account's non-cash balances.

Order lifecycle (alpaca.markets/docs/trading/orders "Order Lifecycle"; alpaca-py's
OrderStatus and TradeEvent enums): an order is answered `accepted` ("received by Alpaca,
but hasn't yet been routed"); `ROUTING_DELAY` later the trade_updates stream says `new`
("routed to exchanges for execution") and then its fills: a market order never fills
inside the POST answer. POST /__emulator/alpaca/done-for-day sends `done_for_day` for
every open order of the account ("done executing for the day, and will not receive further
updates until the next trading day"); the orders stay open and can still fill or be
cancelled (the emulated market opens again at once).
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from tradebus.schemas.values import OrderType, RejectReason, Side
from tradebus.simulator.market import MarketUpdate
from tradebus.simulator.rules import FeeSchedule, InstrumentSpec

from ..server import Emulator
from ..streams import Stream, StreamSession
from ..venue import EmulatedFill, EmulatedOrder, Refused
from . import render
from .classes import OrderClasses
from .trailing import TrailingStops

ROUTING_DELAY = 0.05  # seconds from the `accepted` answer to routing (stream `new`, then fills)


def _equity(symbol: str, price: str) -> InstrumentSpec:
    return InstrumentSpec(symbol=symbol, base=symbol, quote="USD", tick_size=Decimal("0.01"), lot_size=Decimal(1),
                          min_quantity=Decimal(1), min_notional=Decimal(1), initial_price=Decimal(price),
                          asset_class="equity")


class AlpacaEmulator(Emulator):
    name = "alpaca"
    requests_per_second = 10  # Alpaca: 200 requests per minute per key, enforced per second here
    # US equities trade without commission, and Alpaca's fill events carry no fee. Alpaca's
    # crypto fee, taken from the credited asset and reported only as an end-of-day CFEE
    # account activity without an order id, is not emulated (docs/venues.md "Fees and account
    # state"): the emulated crypto pair trades without a fee too.
    fees = FeeSchedule(maker_bps=Decimal(0), taker_bps=Decimal(0))

    @classmethod
    def listed_instruments(cls) -> list[InstrumentSpec]:
        return [
            _equity("AAPL", "190.00"), _equity("BRK.B", "410.00"),
            InstrumentSpec(symbol="BTC/USD", base="BTC", quote="USD", tick_size=Decimal("0.01"),
                           lot_size=Decimal("0.0001"), min_quantity=Decimal("0.0001"), min_notional=Decimal(1),
                           initial_price=Decimal("60000")),
        ]

    def __init__(self, venue: Any) -> None:
        super().__init__(venue)
        self._generation: dict[int, int] = {}  # engine order id -> times replaced
        self._by_uuid: dict[str, int] = {}  # every id ever shown -> engine order id
        self._trade_sockets: dict[str, list[StreamSession]] = {}  # api key -> listening sockets
        # trade_updates: JSON, in text or binary frames; market data: msgpack, binary frames only
        self.trade_stream = Stream(self._trade_request, session=StreamSession, frames=(WSMsgType.TEXT, WSMsgType.BINARY),
                                   closed=self._trade_closed)
        self.data_stream = Stream(self._data_request, session=DataSession, decode=msgpack.unpackb,
                                  frames=(WSMsgType.BINARY,), greeting=_greet)
        self.classes = OrderClasses(venue, lambda record, event: self._publish(record.account, event, self._render(record)))
        self.trailing = TrailingStops(venue)
        venue.on_order(self._on_order)
        venue.on_market(self._on_market)

    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        ws = self.url.replace("http://", "ws://")
        return {
            "account": account, "api_key": api_key, "api_secret": api_secret, "paper": True,
            "trading_url": self.url, "data_url": self.url, "trading_stream_url": f"{ws}/stream",
            "stock_stream_url": f"{ws}/v2", "crypto_stream_url": f"{ws}/v1beta3/crypto/us",
            "symbols": sorted(self.venue.instruments), "subscribe": ["*"],
        }

    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        return render.error(reason, message, retry_after=retry_after)

    def trade_stream_listening(self, api_key: str) -> bool:
        """Whether a client of this key listens to trade_updates (tests wait on it)."""
        return bool(self._trade_sockets.get(api_key))

    def routes(self, app: web.Application) -> None:
        get, post, endpoint = app.router.add_get, app.router.add_post, self.endpoint
        get("/v2/account", endpoint("balance", self._authed(self._account)))
        get("/v2/clock", endpoint("clock", self._authed(self._clock)))
        get("/v2/assets", endpoint("markets", self._authed(self._assets)))
        get("/v2/positions", endpoint("positions", self._authed(self._positions)))
        post("/v2/orders", endpoint("place", self._authed(self._place)))
        get("/v2/orders", endpoint("open_orders", self._authed(self._orders)))
        get("/v2/orders:by_client_order_id", endpoint("lookup", self._authed(self._by_client_id)))
        get("/v2/orders/{order_id}", endpoint("lookup", self._authed(self._lookup)))
        app.router.add_patch("/v2/orders/{order_id}", endpoint("amend", self._authed(self._replace)))
        app.router.add_delete("/v2/orders/{order_id}", endpoint("cancel", self._authed(self._cancel)))
        get("/stream", self.stream_endpoint(self.trade_stream))
        get("/v2/{feed}", self.stream_endpoint(self.data_stream))
        get("/v1beta3/crypto/us", self.stream_endpoint(self.data_stream))
        post("/__emulator/alpaca/done-for-day", self._done_for_day)

    # --- auth -------------------------------------------------------------------------------
    def _authed(self, work: Any) -> Any:
        """A handler that checks Alpaca's key headers, then answers `await work(account, request)`."""

        async def authed(request: web.Request) -> web.Response:
            account = self._authenticate(request.headers.get("APCA-API-KEY-ID"),
                                         request.headers.get("APCA-API-SECRET-KEY"))
            result = await work(account, request)
            return result if isinstance(result, web.Response) else web.json_response(result)

        return authed

    def _authenticate(self, key: str | None, secret: str | None) -> str:
        account = self.venue.authenticate(key)
        if self.venue.credentials[account] != secret:
            raise Refused(RejectReason.AUTH_FAILED, "request is not authorized")
        return account

    # --- rendering --------------------------------------------------------------------------
    def _id(self, record: EmulatedOrder) -> str:
        generation = self._generation.get(record.order_id, 0)
        leg_id = self.classes.leg_ids.get((record.account, record.client_order_id))
        if leg_id is not None and not generation:  # a leg keeps the id Alpaca gave it at submission
            order_id = leg_id
        else:
            order_id = render.order_uuid(record.order_id, generation)
        if record.order_id:  # not a held leg (the engine has none yet)
            self._by_uuid[order_id] = record.order_id
        return order_id

    def _render(self, record: EmulatedOrder, *, nested: bool = False, **extra: Any) -> dict[str, Any]:
        """`nested`: a parent's children under `legs` (POST answers, and reads asking nested=true)."""
        generation = self._generation.get(record.order_id, 0)
        replaces = render.order_uuid(record.order_id, generation - 1) if generation else None
        asset_class = "crypto" if self.venue.instruments[record.symbol].asset_class == "crypto" else "us_equity"
        group = self.classes.group_of(record)
        if group is not None:
            extra.setdefault("order_class", group.order_class)
            if group.held and record in group.legs and record.is_open:
                extra.setdefault("status", "held")
            if nested and record is group.parent:
                extra["legs"] = [self._render(leg) for leg in group.legs]
        return render.order(record, order_id=self._id(record), asset_class=asset_class, replaces=replaces,
                            trail=self.trailing.fields(record), **extra)

    def _find(self, account: str, order_id: str) -> EmulatedOrder:
        leg = self.classes.find_leg(account, order_id=order_id)
        if leg is not None:
            return leg
        if order_id not in self._by_uuid:
            raise Refused(RejectReason.UNKNOWN_ORDER, "order not found")
        return self.venue.find(account, order_id=self._by_uuid[order_id])

    # --- account ----------------------------------------------------------------------------
    async def _account(self, account: str, request: web.Request) -> dict[str, Any]:
        cash = render.number(self.venue.balances(account).get("USD", (Decimal(0), Decimal(0)))[0]) or "0"
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-emulator/account/{account}")),
            "account_number": "PA0000000000", "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
            "buying_power": cash, "regt_buying_power": cash, "daytrading_buying_power": cash,
            "non_marginable_buying_power": cash, "cash": cash, "portfolio_value": cash, "equity": cash,
            "last_equity": cash, "long_market_value": "0", "short_market_value": "0", "initial_margin": "0",
            "maintenance_margin": "0", "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
            "multiplier": "1", "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
            "account_blocked": False, "trade_suspended_by_user": False, "shorting_enabled": False,
            "created_at": render.timestamp(0),
        }

    async def _clock(self, account: str, request: web.Request) -> dict[str, Any]:
        now = render.timestamp(time.time_ns())
        return {"timestamp": now, "is_open": True, "next_open": now, "next_close": now}

    async def _assets(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        return [
            {"id": render.asset_uuid(symbol), "class": "crypto" if spec.asset_class == "crypto" else "us_equity",
             "exchange": "CRYPTO" if spec.asset_class == "crypto" else "NYSE", "symbol": symbol, "name": symbol,
             "status": "active", "tradable": True, "marginable": False, "shortable": False, "easy_to_borrow": False,
             "fractionable": spec.asset_class == "crypto", "min_order_size": render.number(spec.min_quantity),
             "min_trade_increment": render.number(spec.lot_size), "price_increment": render.number(spec.tick_size)}
            for symbol, spec in sorted(self.venue.instruments.items())
        ]

    async def _positions(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        """GET /v2/positions: the open ones, crypto named without the slash, qty signed."""
        positions = []
        for position in self.venue.positions(account):
            if not position.quantity:
                continue
            crypto = self.venue.instruments[position.symbol].asset_class == "crypto"
            cost = abs(position.quantity) * position.avg_price
            positions.append({
                "asset_id": render.asset_uuid(position.symbol), "symbol": position.symbol.replace("/", ""),
                "exchange": "CRYPTO" if crypto else "NYSE", "asset_class": "crypto" if crypto else "us_equity",
                "asset_marginable": False, "qty": render.number(position.quantity),
                "qty_available": render.number(position.quantity), "side": "long" if position.quantity > 0 else "short",
                "avg_entry_price": render.number(position.avg_price), "market_value": render.number(cost),
                "cost_basis": render.number(cost), "unrealized_pl": "0", "unrealized_plpc": "0",
                "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0", "current_price": None,
                "lastday_price": None, "change_today": None,
            })
        return positions

    # --- orders -------------------------------------------------------------------------------
    async def _place(self, account: str, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        kind, tif = str(body.get("type", "")), str(body.get("time_in_force", ""))
        if kind not in render.ORDER_TYPES:
            raise Refused(RejectReason.UNSUPPORTED_ORDER_TYPE, f"invalid order type {kind}")
        if tif not in render.TIME_IN_FORCE:
            raise Refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, f"invalid time_in_force {tif}")
        if body.get("notional") is not None or body.get("extended_hours"):
            raise Refused(RejectReason.MALFORMED, "notional and extended hours orders are not emulated")
        symbol = str(body.get("symbol", ""))
        if symbol not in self.venue.instruments:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, f"asset {symbol} not found")
        side, order_type = Side.BUY if body.get("side") == "buy" else Side.SELL, render.ORDER_TYPES[kind]
        limit, stop = _optional_decimal(body, "limit_price"), _optional_decimal(body, "stop_price")
        order_class = str(body.get("order_class") or "simple")
        advanced = order_class != "simple"
        if self.venue.instruments[symbol].asset_class == "crypto" and (advanced or kind == "trailing_stop"):
            raise Refused(RejectReason.UNSUPPORTED_ORDER_TYPE, f"{order_class} {kind} orders are not supported for crypto")
        trail = None
        if order_type is OrderType.TRAILING_STOP:  # the engine holds a stop at the trail's price (trailing.py)
            trail = self.trailing.terms(body, side, symbol, tif, lambda name: _optional_decimal(body, name))
            order_type, stop = OrderType.STOP, trail.stop()
        if order_class == "oco" and limit is None and isinstance(body.get("take_profit"), dict):
            limit = _optional_decimal(body["take_profit"], "limit_price")  # the oco's own order is its take-profit
        quantity = _decimal(body, "qty")
        exits = self.classes.check(order_class, body, account=account, symbol=symbol, entry=order_type, side=side,
                                   quantity=quantity, tif=tif, limit=limit, read=_optional_decimal) if advanced else []
        record = self.venue.place(
            account, client_order_id=str(body.get("client_order_id") or uuid.uuid4()), symbol=symbol,
            side=side, order_type=order_type, quantity=quantity, price=limit, stop_price=stop,
            time_in_force=render.TIME_IN_FORCE[tif], report_after=ROUTING_DELAY,
        )
        if trail is not None:
            self.trailing.hold(record, trail)
        if advanced:
            self.classes.hold(order_class, record, exits, _optional_decimal)
        return self._render(record, status="accepted", nested=True)

    async def _orders(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        status = request.query.get("status", "open")
        nested = _nested(request)
        records = [o for o in [*self.venue.orders.values(), *self.classes.held(account)] if o.account == account
                   and (status == "all" or o.is_open == (status == "open"))]
        if nested:  # the children appear under their parent's `legs` only
            records = [o for o in records if (g := self.classes.group_of(o)) is None or o is g.parent]
        records.sort(key=lambda o: o.created_ns, reverse=request.query.get("direction", "desc") == "desc")
        return [self._render(o, nested=nested) for o in records[: int(request.query.get("limit", 50))]]

    async def _by_client_id(self, account: str, request: web.Request) -> dict[str, Any]:
        coid = request.query.get("client_order_id", "")
        leg = self.classes.find_leg(account, client_order_id=coid)
        return self._render(leg if leg is not None else self.venue.find(account, client_order_id=coid))

    async def _lookup(self, account: str, request: web.Request) -> dict[str, Any]:
        record = self._find(account, request.match_info["order_id"])
        if self._id(record) != request.match_info["order_id"]:
            return self._render(record, status="replaced")  # an id a replace superseded
        return self._render(record, nested=_nested(request))

    async def _replace(self, account: str, request: web.Request) -> dict[str, Any]:
        record = self._find(account, request.match_info["order_id"])
        if not record.is_open or self._id(record) != request.match_info["order_id"]:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "order is not open")
        body = await _body(request)
        old = self._render(record, status="replaced")
        self._generation[record.order_id] = self._generation.get(record.order_id, 0) + 1
        try:
            self.venue.modify(record, quantity=_optional_decimal(body, "qty"),
                              price=_optional_decimal(body, "limit_price"),
                              stop_price=_optional_decimal(body, "stop_price"))
        except Refused:
            self._generation[record.order_id] -= 1
            raise
        old["replaced_by"] = self._id(record)
        self._publish(account, "replaced", old)
        return self._render(record)

    async def _cancel(self, account: str, request: web.Request) -> web.Response:
        record = self._find(account, request.match_info["order_id"])
        if not record.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "order is not cancelable")
        if not record.order_id:  # a held leg: cancelling it cancels its group
            self.classes.cancel_held(record)
        else:
            self.venue.cancel(record)
        return web.Response(status=204)

    # --- trade_updates stream ---------------------------------------------------------------------
    def _trade_request(self, session: StreamSession, frame: dict[str, Any]) -> None:
        data = frame.get("data") or {}
        if frame.get("action") in ("authenticate", "auth"):
            try:
                session.account = self._authenticate(data.get("key_id"), data.get("secret_key"))
                status = "authorized"
            except Refused:
                session.account, status = None, "unauthorized"
            session.send({"stream": "authorization", "data": {"action": "authenticate", "status": status}})
        elif frame.get("action") == "listen" and session.account is not None:
            streams = [s for s in data.get("streams", []) if s == "trade_updates"]
            if streams and session not in self._trade_sockets.setdefault(session.account, []):
                self._trade_sockets[session.account].append(session)
            session.send({"stream": "listening", "data": {"streams": streams}})
        else:
            session.send({"stream": "listening", "data": {"error": "unauthorized or unknown action"}})

    def _trade_closed(self, session: StreamSession) -> None:
        if session.account is not None and session in self._trade_sockets.get(session.account, []):
            self._trade_sockets[session.account].remove(session)

    def _on_order(self, record: EmulatedOrder, fill: EmulatedFill | None) -> None:
        event = _event(record, fill)
        if event is None or self.trailing.adjusting:
            return
        extra: dict[str, Any] = {}
        if fill is not None:
            # position_qty: "the total size of your position after this event" (signed), not the order's
            position = next((p.quantity for p in self.venue.positions(record.account) if p.symbol == record.symbol),
                            Decimal(0))
            extra = {"execution_id": str(uuid.UUID(int=fill.trade_id)), "price": render.number(fill.price),
                     "qty": render.number(fill.quantity), "position_qty": render.number(position)}
        self._publish(record.account, event, self._render(record), **extra)
        self.classes.changed(record)

    async def _done_for_day(self, request: web.Request) -> web.Response:
        open_orders = [o for o in self.venue.orders.values() if o.is_open]
        for record in open_orders:
            self._publish(record.account, "done_for_day", self._render(record, status="done_for_day"))
        return web.json_response({"done_for_day": len(open_orders)})

    def _publish(self, account: str, event: str, order: dict[str, Any], **extra: Any) -> None:
        """Every event carries an execution id, as Alpaca's documented `new` event does
        (tests/venues/alpaca/corpus/fills/trade-updates-new-documented.json); a fill's is its trade's."""
        data = {"event": event, "execution_id": str(uuid.uuid4()), "timestamp": render.timestamp(time.time_ns()),
                "order": order, **extra}
        frame = {"stream": "trade_updates", "data": data}
        for session in self._trade_sockets.get(account, []):
            session.send(frame)


    # --- market data streams (msgpack) ------------------------------------------------------------
    def _data_request(self, session: DataSession, frame: dict[str, Any]) -> None:
        if frame.get("action") == "auth":
            try:
                session.account = self._authenticate(frame.get("key"), frame.get("secret"))
                session.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
            except Refused:
                session.send_bytes(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
        elif frame.get("action") == "subscribe" and session.account is not None:
            for channel, symbols in session.channels.items():
                symbols.update(frame.get(channel) or [])
            session.send_bytes(msgpack.packb([{"T": "subscription", "quotes": sorted(session.channels["quotes"]),
                                               "trades": sorted(session.channels["trades"]), "bars": []}]))

    def _on_market(self, update: MarketUpdate) -> None:
        if update.trade is not None:
            self.trailing.on_trade(update.symbol, update.trade.price)
        now = msgpack.Timestamp.from_unix_nano(time.time_ns())
        frames: dict[str, dict[str, Any]] = {}
        if update.bids and update.asks:
            (bid, bid_size), (ask, ask_size) = update.bids[0], update.asks[0]
            frames["quotes"] = {"T": "q", "S": update.symbol, "bp": float(bid), "bs": float(bid_size),
                                "ap": float(ask), "as": float(ask_size), "t": now}
        if update.trade is not None:
            frames["trades"] = {"T": "t", "S": update.symbol, "p": float(update.trade.price),
                                "s": float(update.trade.size), "t": now, "i": time.time_ns()}
        for session in self.data_stream.sessions:
            for channel, frame in frames.items():
                if update.symbol in session.channels[channel]:
                    session.send_bytes(msgpack.packb([frame]))


class DataSession(StreamSession):
    """A market data client: the symbols it follows on each channel."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        super().__init__(socket)
        self.channels: dict[str, set[str]] = {"quotes": set(), "trades": set()}


def _greet(session: StreamSession) -> None:
    """Alpaca's first frame on a market data connection, before any request."""
    session.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))


def _event(record: EmulatedOrder, fill: EmulatedFill | None) -> str | None:
    if fill is not None:
        return "fill" if record.filled >= record.quantity else "partial_fill"
    return {"new": "new", "canceled": "canceled", "expired": "expired", "rejected": "rejected"}.get(
        render.STATUS[record.status])


def _nested(request: web.Request) -> bool:
    """`nested=true` (alpaca-py sends Python's `True`; Alpaca's Go server parses booleans either way)."""
    return request.query.get("nested", "").lower() in ("true", "1")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise Refused(RejectReason.MALFORMED, "request body format is invalid") from None
    if not isinstance(body, dict):
        raise Refused(RejectReason.MALFORMED, "request body format is invalid")
    return body


def _decimal(body: dict[str, Any], name: str) -> Decimal:
    value = _optional_decimal(body, name)
    if value is None:
        raise Refused(RejectReason.MALFORMED, f"{name} is required")
    return value


def _optional_decimal(body: dict[str, Any], name: str) -> Decimal | None:
    if body.get(name) is None:
        return None
    try:
        return Decimal(str(body[name]))
    except InvalidOperation:
        raise Refused(RejectReason.MALFORMED, f"invalid {name}") from None
