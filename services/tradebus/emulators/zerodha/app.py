"""An emulated Zerodha venue: enough of Kite Connect v3 and its ticker websocket to run the
unmodified pykiteconnect KiteConnect (and KiteTicker's protocol) against it.

Served (paths as on api.kite.trade, bodies in the shapes of zerodha/kiteconnect-mocks):
    GET    /connect/login?api_key=&v=3                  the login page (KiteConnect.login_url()'s path): the
                                                        emulated user is logged in at once and redirected
                                                        with a request_token (../sessions.py)
    POST   /session/token                               the login's request_token -> access_token
                                                        (generate_session); DELETE invalidates it
    GET    /user/profile, /user/margins, /portfolio/positions, /portfolio/holdings
    GET    /instruments, /instruments/{exchange}        the instrument master (CSV)
    POST   /orders/{variety}                            regular / amo; MARKET, LIMIT, SL, SL-M; DAY / IOC
    PUT    /orders/{variety}/{order_id}, DELETE /orders/{variety}/{order_id}
    GET    /orders, /orders/{order_id} (its history), /orders/{order_id}/trades, /trades
    GET    /quote, /quote/ltp                           ?i=NSE:INFY
    WS     /?api_key=&access_token=                     binary ticks (ltp / quote / full with five-level
                                                        depth) and text order updates {"type": "order"}
Auth: header `Authorization: token <api_key>:<access_token>`; a bad or expired token answers
403 TokenException "Incorrect `api_key` or `access_token`." (the websocket refuses its
handshake with 403). Accounts are named by API key; the credential an account is created
with is the emulated app's API secret and its first access token (../sessions.py).

As on Kite, a place that passes validation is answered with its order id, and what the
exchange and risk checks make of it is the order's state: an order the engine refuses for
funds is a REJECTED order with its status message (orders.json holds such an order),
while bad parameters (tick, lot, unknown instrument) are an InputException. Instruments:
NSE:INFY, NSE:SBIN and one NIFTY future (NFO, lot 75). Simplifications: the market never
closes, holdings stay empty (delivery settles T+1 and the emulated day never ends: bought
shares show as the day's CNC position), no charges are stated (as in Kite's order and trade
answers: they are on the contract note), and an order's history is its current state.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import itertools
import json
import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSMsgType, web

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradebus.simulator.market import MarketUpdate
from tradebus.simulator.rules import FeeSchedule, InstrumentSpec

from ..server import Emulator
from ..sessions import DailySessions
from ..venue import EmulatedFill, EmulatedOrder, EmulatedVenue, Refused
from . import render
from .render import Listing

LISTINGS = {
    "NSE:INFY": (Listing("NSE", "INFY", 408065, "INFOSYS"), "1573.15", "0.05", "1"),
    "NSE:SBIN": (Listing("NSE", "SBIN", 779521, "STATE BANK OF INDIA"), "820.00", "0.05", "1"),
    "NFO:NIFTY26DECFUT": (Listing("NFO", "NIFTY26DECFUT", 13238786, "NIFTY", "FUT", "NFO-FUT", "2026-12-29"),
                          "26000.00", "0.10", "75"),
}
VALIDITY = {"DAY": TimeInForce.DAY, "IOC": TimeInForce.IOC}
VARIETIES = frozenset({"regular", "amo"})
PRODUCTS = frozenset({"CNC", "MIS", "NRML"})
# Refusals Kite's OMS answers as an order it then rejects (RMS checks), not as an HTTP error.
RMS_REJECTIONS = frozenset({RejectReason.INSUFFICIENT_FUNDS})
MODES = ("ltp", "quote", "full")


class _Terms:
    """What Kite shows of an order that the engine does not keep."""

    def __init__(self, tag: str | None, variety: str, product: str, validity: str) -> None:
        self.tag, self.variety, self.product, self.validity = tag, variety, product, validity


class _TickerSession:
    """One ticker client: its account, subscriptions (token -> mode) and ordered outbox."""

    def __init__(self, socket: web.WebSocketResponse, account: str) -> None:
        self.socket, self.account = socket, account
        self.modes: dict[int, str] = {}
        self.outbox: asyncio.Queue[bytes | str] = asyncio.Queue()

    async def write(self) -> None:
        while not self.socket.closed:
            message = await self.outbox.get()
            try:
                await (self.socket.send_bytes(message) if isinstance(message, bytes) else self.socket.send_str(message))
            except ConnectionError:
                return


class ZerodhaEmulator(Emulator):
    name = "zerodha"
    sessions: DailySessions  # its logins (../sessions.py)
    requests_per_second = 10  # Kite: 10 requests per second per API key
    fees = FeeSchedule(maker_bps=Decimal(0), taker_bps=Decimal(0))

    @classmethod
    def listed_instruments(cls) -> list[InstrumentSpec]:
        return [
            InstrumentSpec(symbol=symbol, base=listing.name if listing.instrument_type != "EQ" else listing.tradingsymbol,
                           quote="INR", tick_size=Decimal(tick), lot_size=Decimal(lot), min_quantity=Decimal(lot),
                           min_notional=Decimal(0), initial_price=Decimal(price),
                           asset_class="equity" if listing.instrument_type == "EQ" else "future")
            for symbol, (listing, price, tick, lot) in LISTINGS.items()
        ]

    @classmethod
    def create(cls, *, credentials: dict[str, str], seed: int | None = 1, tick_interval: float = 0.1) -> Emulator:
        venue = EmulatedVenue(credentials=credentials, instruments=cls.listed_instruments(), fees=cls.fees, seed=seed,
                              tick_interval=tick_interval, cash={"INR": Decimal("10000000")})
        return cls(venue)

    def __init__(self, venue: EmulatedVenue) -> None:
        super().__init__(venue)
        self._terms: dict[tuple[str, str], _Terms] = {}  # (account, engine client order id) -> terms
        self._rejected: dict[int, tuple[EmulatedOrder, str]] = {}  # orders the RMS rejected: record, message
        self._rejected_ids = itertools.count(9_000_000_001)
        self._engine_ids = itertools.count(1)
        self._tickers: list[_TickerSession] = []
        self._tape: dict[str, dict[str, Any]] = {}  # symbol -> the day's volume, ohlc, last trade, depth
        self.sessions = DailySessions(venue, lambda api_key: secrets.token_hex(16))  # Kite's tokens: 32 characters
        venue.on_order(self._on_order)
        venue.on_market(self._on_market)

    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        credentials = {"api_key": api_key, "access_token": api_secret} if api_key else {}
        return {"account": account, **credentials, "rest_url": self.url, "ws_url": self.url.replace("http://", "ws://"),
                "exchanges": sorted({listing.exchange for listing, *_ in LISTINGS.values()}),
                "symbols": sorted(LISTINGS), "subscribe": ["*"],
                "market_hours": False}  # the emulated venue trades around the clock: no sessions to refuse outside of

    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        return render.error(reason, message)

    def routes(self, app: web.Application) -> None:
        get, endpoint = app.router.add_get, self.endpoint
        get("/", self._ticker)
        get("/connect/login", endpoint("login", self._login_page, keyed=False))
        get("/connect/redirect", self._redirected)
        app.router.add_post("/session/token", endpoint("session", self._session, keyed=False))
        app.router.add_delete("/session/token", endpoint("session", self._logout, keyed=False))
        get("/user/profile", endpoint("profile", self._authed(self._profile)))
        get("/user/margins", endpoint("balance", self._authed(self._margins)))
        get("/portfolio/positions", endpoint("positions", self._authed(self._positions)))
        get("/portfolio/holdings", endpoint("holdings", self._authed(self._holdings)))
        get("/instruments", endpoint("markets", self._authed(self._instruments)))
        get("/instruments/{exchange}", endpoint("markets", self._authed(self._instruments)))
        app.router.add_post("/orders/{variety}", endpoint("place", self._authed(self._place)))
        app.router.add_put("/orders/{variety}/{order_id}", endpoint("amend", self._authed(self._modify)))
        app.router.add_delete("/orders/{variety}/{order_id}", endpoint("cancel", self._authed(self._cancel)))
        # Kite looks an order up by its tag only in the order book: this listing is the look-up.
        get("/orders", endpoint("lookup", self._authed(self._orders)))
        get("/orders/{order_id}", endpoint("lookup", self._authed(self._history)))
        get("/orders/{order_id}/trades", endpoint("trades", self._authed(self._order_trades)))
        get("/trades", endpoint("trades", self._authed(self._trades)))
        get("/quote", endpoint("quote", self._authed(self._quote), keyed=False))
        get("/quote/ltp", endpoint("quote", self._authed(self._ltp), keyed=False))

    # --- auth and rendering -----------------------------------------------------------------------
    def _authed(self, work: Any) -> Any:
        async def authed(request: web.Request) -> web.Response:
            key, _, token = request.headers.get("Authorization", "").removeprefix("token ").partition(":")
            result = await work(self._account(key, token), request)
            return result if isinstance(result, web.Response) else render.success(result)

        return authed

    def _account(self, api_key: str | None, access_token: str | None) -> str:
        """Kite answers an unknown, replaced or expired token alike (TokenException, 403)."""
        try:
            return self.sessions.check(api_key or "", access_token or "")
        except Refused as exc:
            raise Refused(exc.reason, "Incorrect `api_key` or `access_token`.") from None

    def _terms_of(self, record: EmulatedOrder) -> _Terms:
        """An order placed through the control API (as by another tool) shows its client
        order id as its tag, where Kite would take it."""
        terms = self._terms.get((record.account, record.client_order_id))
        if terms is None:
            tag = record.client_order_id if record.client_order_id.isalnum() and len(record.client_order_id) <= 20 else None
            terms = _Terms(tag, "regular", "CNC" if record.symbol.startswith(("NSE:", "BSE:")) else "NRML", "DAY")
        return terms

    def _render(self, record: EmulatedOrder, message: str | None = None) -> dict[str, Any]:
        terms = self._terms_of(record)
        return render.order(record, LISTINGS[record.symbol][0], tag=terms.tag, variety=terms.variety,
                            product=terms.product, validity=terms.validity,
                            message=message if message is not None else (record.reject_message or None))

    def _records(self, account: str) -> list[tuple[EmulatedOrder, str | None]]:
        placed: list[tuple[EmulatedOrder, str | None]] = [
            (o, None) for o in self.venue.orders.values() if o.account == account]
        rejected: list[tuple[EmulatedOrder, str | None]] = [
            (o, message) for o, message in self._rejected.values() if o.account == account]
        return sorted(placed + rejected, key=lambda pair: pair[0].created_ns)

    def _find(self, account: str, order_id: str) -> tuple[EmulatedOrder, str | None]:
        try:
            number = int(order_id)
        except ValueError:
            raise Refused(RejectReason.UNKNOWN_ORDER, "Invalid `order_id`.") from None
        if number in self._rejected and self._rejected[number][0].account == account:
            return self._rejected[number]
        return self.venue.find(account, order_id=number), None

    # --- session ------------------------------------------------------------------------------------
    async def _login_page(self, request: web.Request) -> web.Response:
        """GET /connect/login?api_key=&v=3: Kite's login redirects to the app's redirect URL
        with `request_token`, `action=login` and `status=success` (docs "Login flow"); the
        emulated app's redirect URL is this emulator's /connect/redirect."""
        request_token = self.sessions.login(request.query.get("api_key", ""))
        raise web.HTTPFound(f"/connect/redirect?request_token={request_token}&action=login&status=success")

    async def _redirected(self, request: web.Request) -> web.Response:
        """Where a browser lands: the request token, to be exchanged within minutes."""
        return web.Response(text=f"request_token={request.query.get('request_token', '')}\n"
                                 f"tradebus login zerodha --request-token <it>\n")

    async def _session(self, request: web.Request) -> web.Response:
        """POST /session/token: checksum = SHA-256(api_key + request_token + api_secret)."""
        form = await request.post()
        api_key, request_token = str(form.get("api_key", "")), str(form.get("request_token", ""))
        secret = self.sessions.app_secrets.get(api_key)
        expected = hashlib.sha256(f"{api_key}{request_token}{secret}".encode()).hexdigest()
        if secret is None or not request_token or form.get("checksum") != expected:
            raise Refused(RejectReason.AUTH_FAILED, "Token is invalid or has expired.")
        token = self.sessions.redeem(request_token, api_key)
        profile = await self._profile(api_key, request)
        return render.success({**profile, "api_key": api_key, "access_token": token, "public_token": "XXXXXXXX",
                               "enctoken": "XXXXXX", "refresh_token": "", "silo": "",
                               "login_time": render.timestamp(time.time_ns())})

    async def _logout(self, request: web.Request) -> web.Response:
        """DELETE /session/token: the access token no longer works (until a new login)."""
        account = self._account(request.query.get("api_key"), request.query.get("access_token"))
        self.sessions.expire(account)
        return render.success(True)

    # --- account ------------------------------------------------------------------------------------
    async def _profile(self, account: str, request: web.Request) -> dict[str, Any]:
        return {"user_id": "XX0000", "user_type": "individual", "email": "XXXXXX", "user_name": "Kite Connect",
                "user_shortname": "Connect", "broker": "ZERODHA", "exchanges": ["NSE", "NFO"],
                "products": sorted(PRODUCTS), "order_types": list(render.ORDER_TYPES), "avatar_url": None,
                "meta": {"demat_consent": "physical"}}

    async def _margins(self, account: str, request: web.Request) -> dict[str, Any]:
        free, locked = self.venue.balances(account).get("INR", (Decimal(0), Decimal(0)))
        cash = render.number(free + locked)

        def segment(net: Any, available: Any, used: Any) -> dict[str, Any]:
            return {"enabled": True, "net": net,
                    "available": {"adhoc_margin": 0, "cash": available, "opening_balance": available,
                                  "live_balance": net, "collateral": 0, "intraday_payin": 0},
                    "utilised": {"debits": used, "exposure": 0, "m2m_realised": 0, "m2m_unrealised": 0,
                                 "option_premium": 0, "payout": 0, "span": 0, "holding_sales": 0, "turnover": 0,
                                 "liquid_collateral": 0, "stock_collateral": 0, "delivery": 0}}

        return {"equity": segment(render.number(free), cash, render.number(locked)), "commodity": segment(0, 0, 0)}

    async def _positions(self, account: str, request: web.Request) -> dict[str, Any]:
        net = []
        for position in self.venue.positions(account):
            listing = LISTINGS[position.symbol][0]
            net.append({"tradingsymbol": listing.tradingsymbol, "exchange": listing.exchange,
                        "instrument_token": listing.token, "product": "CNC" if listing.exchange == "NSE" else "NRML",
                        "quantity": render.number(position.quantity), "overnight_quantity": 0, "multiplier": 1,
                        "average_price": render.number(position.avg_price), "close_price": 0, "last_price": 0,
                        "value": 0, "pnl": render.number(position.realized_pnl), "m2m": 0, "unrealised": 0,
                        "realised": render.number(position.realized_pnl)})
        return {"net": net, "day": net}

    async def _holdings(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        return []

    async def _instruments(self, account: str, request: web.Request) -> web.Response:
        exchange = request.match_info.get("exchange")
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry", "strike",
                         "tick_size", "lot_size", "instrument_type", "segment", "exchange"])
        for listing, _, tick, lot in LISTINGS.values():
            if exchange in (None, listing.exchange):
                writer.writerow([listing.token, listing.token >> 8, listing.tradingsymbol, listing.name, "0.0",
                                 listing.expiry, listing.strike, tick, lot, listing.instrument_type, listing.segment,
                                 listing.exchange])
        return web.Response(body=text.getvalue().encode(), content_type="text/csv")

    # --- orders ---------------------------------------------------------------------------------------
    async def _place(self, account: str, request: web.Request) -> dict[str, Any]:
        form = await request.post()
        variety = request.match_info["variety"]
        if variety not in VARIETIES:
            raise Refused(RejectReason.MALFORMED, "Invalid `variety`.")
        symbol = f"{form.get('exchange', '')}:{form.get('tradingsymbol', '')}"
        if symbol not in LISTINGS:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, "Invalid `tradingsymbol`.")
        kind = render.ORDER_TYPES.get(str(form.get("order_type")))
        validity = str(form.get("validity") or "DAY")
        product, tag = str(form.get("product")), form.get("tag")
        if kind is None or validity not in VALIDITY or product not in PRODUCTS:
            raise Refused(RejectReason.MALFORMED, "Invalid `order_type`, `validity` or `product`.")
        if tag is not None and len(str(tag)) > 20:
            raise Refused(RejectReason.MALFORMED, "`tag` is longer than 20 characters.")
        terms = _Terms(None if tag is None else str(tag), variety, product, validity)
        # The engine's id of the order: its tag where no order of the account has it yet
        # (Kite does not keep tags unique), so the control API finds it by our client order id.
        engine_id = str(tag) if tag and (account, str(tag)) not in self._terms else f"k{next(self._engine_ids)}"
        self._terms[account, engine_id] = terms
        fields: dict[str, Any] = {
            "client_order_id": engine_id, "symbol": symbol,
            "side": render.side_of(str(form.get("transaction_type"))), "order_type": kind,
            "quantity": _decimal(form, "quantity"), "price": _optional_decimal(form, "price") if kind in (
                OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
            "stop_price": _optional_decimal(form, "trigger_price") if kind in (
                OrderType.STOP, OrderType.STOP_LIMIT) else None,
            "time_in_force": VALIDITY[validity],
        }
        try:
            record = self.venue.place(account, **fields)
        except Refused as exc:
            if exc.reason not in RMS_REJECTIONS:
                raise
            return {"order_id": str(self._reject(account, fields, self._rms_message(account, fields, exc.message)).order_id)}
        return {"order_id": str(record.order_id)}

    def _rms_message(self, account: str, fields: dict[str, Any], engine_message: str) -> str:
        """A buy the account cannot pay for, in the words of Kite's RMS (the rejected order
        of kiteconnect-mocks orders.json); any other refusal keeps the engine's words."""
        tape = self._tape.get(fields["symbol"]) or {}
        price = fields["price"] or tape.get("price")
        if fields["side"] is not Side.BUY or price is None:
            return engine_message
        available = self.venue.balances(account).get("INR", (Decimal(0), Decimal(0)))[0]
        required = (fields["quantity"] * price).quantize(Decimal("0.01"))
        return (f"Insufficient funds. Required margin is {required} but available margin is "
                f"{available.quantize(Decimal('0.01'))}. Check the orderbook for open orders.")

    def _reject(self, account: str, fields: dict[str, Any], message: str) -> EmulatedOrder:
        now = time.time_ns()
        record = EmulatedOrder(order_id=next(self._rejected_ids), account=account, status=OrderStatus.REJECTED,
                               created_ns=now, updated_ns=now, reject_message=message, **fields)
        self._rejected[record.order_id] = (record, message)
        self._send_order(record)
        return record

    async def _modify(self, account: str, request: web.Request) -> dict[str, Any]:
        form = await request.post()
        record, _ = self._find(account, request.match_info["order_id"])
        if not record.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "Order cannot be modified as it is not open.")
        self.venue.modify(record, quantity=_optional_decimal(form, "quantity"), price=_optional_decimal(form, "price"),
                          stop_price=_optional_decimal(form, "trigger_price"))
        return {"order_id": str(record.order_id)}

    async def _cancel(self, account: str, request: web.Request) -> dict[str, Any]:
        record, _ = self._find(account, request.match_info["order_id"])
        if not record.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "Order cannot be cancelled as it is not open.")
        self.venue.cancel(record)
        return {"order_id": str(record.order_id)}

    async def _orders(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        return [self._render(record, message) for record, message in self._records(account)]

    async def _history(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        record, message = self._find(account, request.match_info["order_id"])
        return [self._render(record, message)]

    async def _order_trades(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        record, _ = self._find(account, request.match_info["order_id"])
        return [self._trade(record, fill) for fill in record.fills]

    async def _trades(self, account: str, request: web.Request) -> list[dict[str, Any]]:
        return [self._trade(record, fill) for record, fill in self.venue.fills(account)]

    def _trade(self, record: EmulatedOrder, fill: EmulatedFill) -> dict[str, Any]:
        return render.trade(record, fill, LISTINGS[record.symbol][0], self._terms_of(record).product)

    # --- quotes ----------------------------------------------------------------------------------------
    async def _ltp(self, account: str, request: web.Request) -> dict[str, Any]:
        return {symbol: {"instrument_token": LISTINGS[symbol][0].token, "last_price": tape["last"]}
                for symbol in request.query.getall("i", []) if (tape := self._quote_tape(symbol))}

    async def _quote(self, account: str, request: web.Request) -> dict[str, Any]:
        quotes = {}
        for symbol in request.query.getall("i", []):
            tape = self._quote_tape(symbol)
            if not tape:
                continue
            depth = {side: [{"price": render.number(p), "quantity": int(s), "orders": 1} for p, s in tape[side][:5]]
                     for side in ("buy", "sell")}
            quotes[symbol] = {"instrument_token": LISTINGS[symbol][0].token, "last_price": tape["last"],
                              "volume": tape["volume"], "ohlc": dict(zip(("open", "high", "low", "close"),
                                                                         map(render.number, tape["ohlc"]), strict=True)),
                              "depth": depth}
        return quotes

    def _quote_tape(self, symbol: str) -> dict[str, Any] | None:
        tape = self._tape.get(symbol)
        return None if tape is None else {**tape, "last": render.number(tape["price"])}

    # --- the ticker --------------------------------------------------------------------------------------
    async def _ticker(self, request: web.Request) -> web.StreamResponse:
        self.venue.record("ticker")  # every connection attempt, taken or refused
        try:
            account = self._account(request.query.get("api_key"), request.query.get("access_token"))
        except Refused:
            return web.Response(status=403, text="invalid access token")
        socket = await self.websocket(request)
        session = _TickerSession(socket, account)
        self._tickers.append(session)
        writer = asyncio.create_task(session.write())
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    self._ticker_request(session, message.data)
        finally:
            self._tickers.remove(session)
            writer.cancel()
        return socket

    @staticmethod
    def _ticker_request(session: _TickerSession, text: str) -> None:
        """{"a": "subscribe" | "unsubscribe", "v": [tokens]}, {"a": "mode", "v": [mode, [tokens]]}."""
        try:
            request = json.loads(text)
            action, value = request["a"], request["v"]
            if action == "subscribe":
                session.modes.update({int(token): session.modes.get(int(token), "quote") for token in value})
            elif action == "unsubscribe":
                for token in value:
                    session.modes.pop(int(token), None)
            elif action == "mode" and value[0] in MODES:
                session.modes.update({int(token): value[0] for token in value[1] if int(token) in session.modes})
        except (ValueError, KeyError, TypeError, IndexError):
            session.outbox.put_nowait(json.dumps({"type": "error", "data": "invalid message"}))

    def _on_order(self, record: EmulatedOrder, fill: EmulatedFill | None) -> None:
        self._send_order(record)

    def _send_order(self, record: EmulatedOrder) -> None:
        frame = json.dumps({"type": "order", "data": self._render(record)})
        for session in self._tickers:
            if session.account == record.account:
                session.outbox.put_nowait(frame)

    def _on_market(self, update: MarketUpdate) -> None:
        listing = LISTINGS[update.symbol][0]
        tape = self._tape.setdefault(update.symbol, {"volume": 0, "price": None, "ohlc": None, "buy": [], "sell": [],
                                                     "last_quantity": 0, "last_trade": 0})
        now = int(time.time())
        if update.bids is not None:
            tape["buy"] = [(level[0], level[1]) for level in update.bids[:5]]
        if update.asks is not None:
            tape["sell"] = [(level[0], level[1]) for level in update.asks[:5]]
        if update.trade is not None:
            size = max(1, int(update.trade.size))
            tape.update(volume=tape["volume"] + size, last_quantity=size, last_trade=now, price=update.trade.price)
            opened, high, low, close = tape["ohlc"] or (update.trade.price,) * 3 + (update.trade.price,)
            tape["ohlc"] = (opened, max(high, update.trade.price), min(low, update.trade.price), close)
        if tape["price"] is None and tape["buy"] and tape["sell"]:
            tape["price"] = tape["buy"][0][0]
            tape["ohlc"] = (tape["price"],) * 4
        if tape["price"] is None:
            return
        full = render.full_packet(listing.token, last=tape["price"], last_quantity=tape["last_quantity"],
                                  average=tape["price"], volume=tape["volume"], ohlc=tape["ohlc"],
                                  last_trade_time=tape["last_trade"], exchange_time=now, bids=tape["buy"],
                                  asks=tape["sell"])
        packets = {"full": full, "quote": render.quote_packet(full), "ltp": render.ltp_packet(full)}
        for session in self._tickers:
            mode = session.modes.get(listing.token)
            if mode is not None:
                session.outbox.put_nowait(render.frame([packets[mode]]))


def _decimal(form: Any, name: str) -> Decimal:
    value = _optional_decimal(form, name)
    if value is None:
        raise Refused(RejectReason.MALFORMED, f"`{name}` is required.")
    return value


def _optional_decimal(form: Any, name: str) -> Decimal | None:
    raw = form.get(name)
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise Refused(RejectReason.MALFORMED, f"Invalid `{name}`.") from None
    return value if value else None
