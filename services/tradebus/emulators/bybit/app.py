"""An emulated Bybit v5 venue (spot, unified trading account): enough of Bybit's REST API
and websockets to run the unmodified ccxt SDK (`bybit`, async_support and pro) against it.

Served (paths as on api.bybit.com / stream.bybit.com):
    GET  /v5/market/time, instruments-info (spot), tickers, orderbook, kline
    GET  /v5/user/query-api, /v5/account/info, /v5/asset/coin/query-info     (signed)
    GET  /v5/account/wallet-balance                                          (signed)
    POST /v5/order/create   Limit, Market, conditional (triggerPrice, orderFilter=StopOrder);
                            GTC, IOC, FOK, PostOnly; spot market buys sized in quote coin
                            (Bybit's default) or in base coin (marketUnit=baseCoin)
    POST /v5/order/amend, /v5/order/cancel, /v5/order/cancel-all            (signed)
    GET  /v5/order/realtime, /v5/order/history, /v5/execution/list          (signed)
    WS   /v5/public/spot, /v5/private                                        (see streams.py)
Signed requests are checked as Bybit checks them: X-BAPI-API-KEY, X-BAPI-TIMESTAMP,
X-BAPI-RECV-WINDOW and X-BAPI-SIGN = hex HMAC-SHA256 of timestamp + key + recv window +
(query string | JSON body) with the API secret; 10003 unknown key, 10004 bad signature,
10002 timestamp outside the window.

A crossing PostOnly order is accepted (retCode 0, its ids) and `POST_ONLY_CHECK` seconds
later cancelled on the `order` topic with rejectReason EC_PostOnlyWillTakeLiquidity, as
Bybit reports it (docs/v5/order/order-list.mdx, docs/v5/enum.mdx; see render.py).

Every answer to a keyed request carries Bybit's rate-limit headers (docs/v5/rate-limit/
rate-limit.mdx "Every request to the API returns response header"): X-Bapi-Limit (the
limit per second), X-Bapi-Limit-Status (what remains of it), X-Bapi-Limit-Reset-Timestamp
(now, or when the limit resets once exceeded). A signed request is processed only if
server_time - recv_window <= timestamp < server_time + 1000 (docs/v5/guide.mdx), else 10002.

Fees: 0.1% of each fill, in the coin received (buy: base coin, sell: quote coin), reported
as `execFee` / `feeCurrency` / `feeRate` on executions and `cumFeeDetail` on orders, and
taken from that coin's wallet balance.

Not emulated: derivatives, options, margin, batch endpoints, TP/SL orders, the websocket
trade API (`/v5/trade`), per-endpoint limits (one limit per key), pagination
cursors (one page of up to `limit` items).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from tradebus.schemas.values import OrderType, RejectReason, Side
from tradebus.simulator.rules import FeeSchedule

from ..server import Emulator
from ..venue import EmulatedOrder, EmulatedVenue, FeeAsset, Refused
from . import render
from .candles import INTERVALS, Candles
from .streams import BybitStreams

Params = dict[str, Any]
DEFAULT_RECV_WINDOW_MS = 5000
AHEAD_TOLERANCE_MS = 1000  # docs/v5/guide.mdx: timestamp < server_time + 1000
POST_ONLY_CHECK = 0.02  # seconds from a crossing PostOnly's acceptance to its cancellation


class BybitEmulator(Emulator):
    name = "bybit"
    requests_per_second = 20  # Bybit spot: 20 requests per second per UID on private endpoints
    # The non-VIP spot rates, 0.1% maker and taker, charged in the coin received (buy: base,
    # sell: quote; docs/v5/enum.mdx "Spot Fee Currency Instruction").
    fees = FeeSchedule(maker_bps=Decimal(10), taker_bps=Decimal(10))
    fee_asset = FeeAsset.RECEIVED

    def __init__(self, venue: EmulatedVenue) -> None:
        super().__init__(venue)
        self.symbols = {render.venue_symbol(symbol): symbol for symbol in venue.instruments}
        self.candles = {symbol: Candles() for symbol in venue.instruments}
        self.streams = BybitStreams(venue, self.symbols, self.candles)

    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        host = self.url.removeprefix("http://")
        return {
            "account": account, "exchange": "bybit", "api_key": api_key, "api_secret": api_secret,
            "rebase": {"rest": self.url, "ws": f"ws://{host}"},
            # spot only; a unified trading account, as every new Bybit account is;
            # fetchOrder by id is the realtime endpoint's last-500-orders lookup, acknowledged
            "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                        "enableUnifiedAccount": True, "enableUnifiedMargin": False,
                        "fetchOrder": {"acknowledged": True}},
            "subscribe": ["*"],
        }

    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        return render.error(reason, message, limit=self.requests_per_second, retry_after=retry_after)

    def limit_headers(self, operation: str, response: web.StreamResponse, *, keyed: bool) -> dict[str, str]:
        if not keyed or "X-Bapi-Limit" in response.headers:  # public data: limited per IP, no headers
            return {}
        return {"X-Bapi-Limit": str(self.requests_per_second), "X-Bapi-Limit-Status": str(self.limit.remaining()),
                "X-Bapi-Limit-Reset-Timestamp": str(render.now_ms())}

    def routes(self, app: web.Application) -> None:
        get, post, endpoint = app.router.add_get, app.router.add_post, self.endpoint
        get("/v5/market/time", endpoint("time", _server_time, keyed=False))
        get("/v5/market/instruments-info", endpoint("markets", self._instruments, keyed=False))
        get("/v5/market/tickers", endpoint("quote", self._tickers, keyed=False))
        get("/v5/market/orderbook", endpoint("depth", self._orderbook, keyed=False))
        get("/v5/market/kline", endpoint("klines", self._klines, keyed=False))
        get("/v5/user/query-api", endpoint("account", self._signed(self._api_key_info)))
        get("/v5/account/info", endpoint("account", self._signed(self._account_info)))
        get("/v5/asset/coin/query-info", endpoint("currencies", self._signed(self._coins)))
        get("/v5/account/wallet-balance", endpoint("balance", self._signed(self._wallet_balance)))
        post("/v5/order/create", endpoint("place", self._signed(self._place)))
        post("/v5/order/amend", endpoint("amend", self._signed(self._amend)))
        post("/v5/order/cancel", endpoint("cancel", self._signed(self._cancel)))
        post("/v5/order/cancel-all", endpoint("cancel_all", self._signed(self._cancel_all)))
        get("/v5/order/realtime", self._realtime_endpoint)
        get("/v5/order/history", endpoint("history", self._signed(self._history)))
        get("/v5/execution/list", endpoint("trades", self._signed(self._executions)))
        get("/v5/public/spot", self.stream_endpoint(self.streams.public))
        get("/v5/private", self.stream_endpoint(self.streams.private))

    async def _realtime_endpoint(self, request: web.Request) -> web.StreamResponse:
        """One path, two operations for fault injection: a look-up by id, or the open orders."""
        by_id = bool(request.query.get("orderId") or request.query.get("orderLinkId"))
        realtime = self._signed(self._realtime)
        return await self.handle(request, "lookup" if by_id else "open_orders", lambda: realtime(request))

    # --- signing ------------------------------------------------------------------------------
    def _signed(self, work: Callable[[str, Params], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A handler that checks the key, timestamp and signature, then answers `work(account, params)`."""

        async def signed(request: web.Request) -> web.Response:
            payload = request.query_string if request.method == "GET" else await request.text()
            headers = request.headers
            account = self.venue.authenticate(headers.get("X-BAPI-API-KEY"))
            timestamp, window = headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW", "")
            signed_text = f"{timestamp}{account}{window}{payload}"
            expected = hmac.new(self.venue.credentials[account].encode(), signed_text.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
                return render.refusal(render.BAD_SIGNATURE)
            if not _in_time_window(timestamp, window):
                return render.refusal(render.STALE_TIMESTAMP)
            params: Params = dict(request.query) if request.method == "GET" else _json_body(payload)
            return render.ok(work(account, params))

        return signed

    # --- public -------------------------------------------------------------------------------
    async def _instruments(self, request: web.Request) -> web.Response:
        _require_spot(request.query)
        wanted = request.query.get("symbol")
        listed = []
        for venue_id, symbol in self.symbols.items():
            if wanted not in (None, venue_id):
                continue
            spec = self.venue.instruments[symbol]
            listed.append({
                "symbol": venue_id, "baseCoin": spec.base, "quoteCoin": spec.quote, "innovation": "0",
                "status": "Trading", "marginTrading": "none", "stTag": "0",
                "lotSizeFilter": {"basePrecision": render.number(spec.lot_size), "quotePrecision": render.number(spec.tick_size),
                                  "minOrderQty": render.number(spec.min_quantity), "maxOrderQty": "1000000",
                                  "minOrderAmt": render.number(spec.min_notional), "maxOrderAmt": "100000000"},
                "priceFilter": {"tickSize": render.number(spec.tick_size)},
                "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
            })
        return render.ok({"category": render.CATEGORY, "list": listed, "nextPageCursor": ""})

    async def _tickers(self, request: web.Request) -> web.Response:
        _require_spot(request.query)
        wanted = [self._symbol(request.query["symbol"])] if "symbol" in request.query else list(self.venue.instruments)
        listed = []
        for symbol in wanted:
            book = self.streams.books[symbol]
            (bid, bid_size), (ask, ask_size) = book.bids[0], book.asks[0]
            listed.append({**self.streams.ticker(symbol), "bid1Price": render.number(bid), "bid1Size": render.number(bid_size),
                           "ask1Price": render.number(ask), "ask1Size": render.number(ask_size)})
        return render.ok({"category": render.CATEGORY, "list": listed})

    async def _orderbook(self, request: web.Request) -> web.Response:
        _require_spot(request.query)
        symbol = self._symbol(request.query.get("symbol", ""))
        depth = _integer(request.query, "limit", 1)
        book = self.streams.books[symbol]
        return render.ok({
            "s": render.venue_symbol(symbol), "u": book.update_id, "seq": book.seq, "ts": book.ts, "cts": book.ts,
            "b": [[render.number(p), render.number(s)] for p, s in book.bids[:depth]],
            "a": [[render.number(p), render.number(s)] for p, s in book.asks[:depth]],
        })

    async def _klines(self, request: web.Request) -> web.Response:
        _require_spot(request.query)
        symbol = self._symbol(request.query.get("symbol", ""))
        interval = request.query.get("interval", "")
        if interval not in INTERVALS:
            raise Refused(RejectReason.MALFORMED, "Invalid period!")
        start, end = _integer(request.query, "start", 0), _integer(request.query, "end", render.now_ms())
        bars = [bar for bar in self.candles[symbol].bars(interval) if start <= bar.start <= end]
        newest_first = [
            [str(bar.start), render.number(bar.open), render.number(bar.high), render.number(bar.low),
             render.number(bar.close), render.number(bar.volume), render.number(bar.turnover)]
            for bar in reversed(bars)
        ][:_integer(request.query, "limit", 200)]
        return render.ok({"category": render.CATEGORY, "symbol": render.venue_symbol(symbol), "list": newest_first})

    # --- account --------------------------------------------------------------------------------
    def _api_key_info(self, account: str, params: Params) -> dict[str, Any]:
        user_id = zlib.crc32(account.encode()) % 10**8  # stable per key, as a Bybit UID is
        return {
            "id": str(user_id), "note": "emulated", "apiKey": account, "readOnly": 0, "secret": "",
            "permissions": {"Spot": ["SpotTrade"], "Wallet": ["AccountTransfer"], "ContractTrade": [], "Options": [],
                            "Derivatives": [], "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "", "unified": 0, "uta": 1,
            "userID": user_id, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
            "affiliateID": 0, "rsaPublicKey": "", "isMaster": True,
        }

    def _account_info(self, account: str, params: Params) -> dict[str, Any]:
        return {"marginMode": "REGULAR_MARGIN", "updatedTime": str(render.now_ms()), "unifiedMarginStatus": 5,
                "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False,
                "spotHedgingStatus": "OFF"}

    def _coins(self, account: str, params: Params) -> dict[str, Any]:
        coins = sorted({c for spec in self.venue.instruments.values() for c in (spec.base, spec.quote)})
        return {"rows": [{"name": coin, "coin": coin, "remainAmount": "0", "chains": []} for coin in coins]}

    def _wallet_balance(self, account: str, params: Params) -> dict[str, Any]:
        if params.get("accountType", "UNIFIED") != "UNIFIED":
            raise Refused(RejectReason.MALFORMED, "accountType only support UNIFIED.")
        return {"list": [render.wallet(self.venue.balances(account))]}

    # --- trading --------------------------------------------------------------------------------
    def _place(self, account: str, params: Params) -> dict[str, str]:
        _require_spot(params)
        symbol = self._symbol(str(params.get("symbol", "")))
        kind = params.get("orderType")
        if kind not in ("Limit", "Market"):
            raise Refused(RejectReason.UNSUPPORTED_ORDER_TYPE, "Invalid orderType.")
        tif_name = str(params.get("timeInForce") or ("IOC" if kind == "Market" else "GTC"))
        if tif_name not in render.TIME_IN_FORCE:
            raise Refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, "Invalid timeInForce.")
        side = {"Buy": Side.BUY, "Sell": Side.SELL}.get(str(params.get("side")))
        if side is None:
            raise Refused(RejectReason.MALFORMED, "Invalid side.")
        stop_price = _decimal(params, "triggerPrice") if params.get("orderFilter") == "StopOrder" else None
        order_type = {("Limit", False): OrderType.LIMIT, ("Market", False): OrderType.MARKET,
                      ("Limit", True): OrderType.STOP_LIMIT, ("Market", True): OrderType.STOP}[kind, stop_price is not None]
        quantity = _decimal(params, "qty")
        if kind == "Market" and side is Side.BUY and params.get("marketUnit", "quoteCoin") == "quoteCoin":
            quantity = self._base_quantity(symbol, quantity, stop_price)
        order = self.venue.place(
            account, client_order_id=str(params.get("orderLinkId") or f"emu{time.time_ns()}"), symbol=symbol,
            side=side, order_type=order_type, quantity=quantity,
            price=_decimal(params, "price") if kind == "Limit" else None, stop_price=stop_price,
            time_in_force=render.TIME_IN_FORCE[tif_name], post_only=tif_name == "PostOnly",
            cancel_after_acceptance=render.REJECT_REASONS, report_after=POST_ONLY_CHECK if tif_name == "PostOnly" else 0.0,
        )
        return render.order_ids(order)

    def _base_quantity(self, symbol: str, quote_amount: Decimal, stop_price: Decimal | None) -> Decimal:
        """A market buy sized in quote coin (Bybit spot's default): the base quantity that
        amount buys at the current ask (or the trigger price), down to the lot size."""
        spec = self.venue.instruments[symbol]
        asks = self.streams.books[symbol].asks
        price = stop_price or (asks[0][0] if asks else None)
        if price is None:
            raise Refused(RejectReason.NO_LIQUIDITY, "no ask to size a market buy")
        return (quote_amount / price / spec.lot_size).to_integral_value(ROUND_DOWN) * spec.lot_size

    def _find(self, account: str, params: Params) -> EmulatedOrder:
        if params.get("orderId"):
            order = self.venue.find(account, order_id=_order_id(params["orderId"]))
        elif params.get("orderLinkId"):
            order = self.venue.find(account, client_order_id=str(params["orderLinkId"]))
        else:
            raise Refused(RejectReason.MALFORMED, "orderId or orderLinkId is required")
        if "symbol" in params and render.venue_symbol(order.symbol) != params["symbol"]:
            raise Refused(RejectReason.UNKNOWN_ORDER, "Order does not exist.")
        return order

    def _amend(self, account: str, params: Params) -> dict[str, str]:
        _require_spot(params)
        order = self._find(account, params)
        if not order.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "Order does not exist.")
        self.venue.modify(
            order, quantity=_decimal(params, "qty") if params.get("qty") else None,
            price=_decimal(params, "price") if params.get("price") else None,
            stop_price=_decimal(params, "triggerPrice") if params.get("triggerPrice") else None,
        )
        return render.order_ids(order)

    def _cancel(self, account: str, params: Params) -> dict[str, str]:
        _require_spot(params)
        order = self._find(account, params)
        if not order.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "Order does not exist.")
        return render.order_ids(self.venue.cancel(order))

    def _cancel_all(self, account: str, params: Params) -> dict[str, Any]:
        _require_spot(params)
        symbol = self._symbol(str(params["symbol"])) if params.get("symbol") else None
        cancelled = [render.order_ids(self.venue.cancel(o)) for o in self.venue.open_orders(account, symbol)]
        return {"list": cancelled, "success": "1"}

    def _realtime(self, account: str, params: Params) -> dict[str, Any]:
        """Open orders; with an order id or link id, that order whatever its state (Bybit
        keeps the last 500 of the account here); openOnly=1: recently closed orders."""
        _require_spot(params)
        if params.get("orderId") or params.get("orderLinkId"):
            try:
                orders = [self._find(account, params)]
            except Refused:
                orders = []  # Bybit answers an unknown id with an empty list
        else:
            closed = params.get("openOnly") == "1"
            orders = [o for o in self._orders(account, params) if o.is_open != closed]
        return {"list": [render.order(o) for o in orders], "nextPageCursor": "", "category": render.CATEGORY}

    def _history(self, account: str, params: Params) -> dict[str, Any]:
        _require_spot(params)
        if params.get("orderId") or params.get("orderLinkId"):
            try:
                orders = [self._find(account, params)]
            except Refused:
                orders = []
        else:
            orders = [o for o in self._orders(account, params) if not o.is_open]
        return {"list": [render.order(o) for o in orders], "nextPageCursor": "", "category": render.CATEGORY}

    def _orders(self, account: str, params: Params) -> list[EmulatedOrder]:
        """The account's orders matching the query's symbol and creation window (startTime,
        endTime in ms), newest first, at most `limit`."""
        symbol = self._symbol(str(params["symbol"])) if params.get("symbol") else None
        start, end = _integer(params, "startTime", 0), _integer(params, "endTime", render.now_ms())
        orders = [o for o in self.venue.orders.values()
                  if o.account == account and symbol in (None, o.symbol) and start <= o.created_ns // 1_000_000 <= end]
        orders.sort(key=lambda o: o.order_id, reverse=True)
        return orders[:_integer(params, "limit", 50)]

    def _executions(self, account: str, params: Params) -> dict[str, Any]:
        _require_spot(params)
        symbol = self._symbol(str(params["symbol"])) if params.get("symbol") else None
        fills = [(o, f) for o, f in self.venue.fills(account, symbol)
                 if params.get("orderId") in (None, "", str(o.order_id))
                 and _integer(params, "startTime", 0) <= f.ts // 1_000_000 <= _integer(params, "endTime", render.now_ms())]
        fills.sort(key=lambda pair: pair[1].trade_id, reverse=True)
        listed = [render.execution(o, f) for o, f in fills[:_integer(params, "limit", 50)]]
        return {"list": listed, "nextPageCursor": "", "category": render.CATEGORY}

    def _symbol(self, venue_id: str) -> str:
        try:
            return self.symbols[venue_id]
        except KeyError:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, "Invalid symbol.") from None


def _in_time_window(timestamp: str, window: str) -> bool:
    """docs/v5/guide.mdx: server_time - recv_window <= timestamp < server_time + 1000."""
    if not timestamp.isdigit() or not (window or "0").isdigit():
        return False
    server_time = render.now_ms()
    return server_time - int(window or DEFAULT_RECV_WINDOW_MS) <= int(timestamp) < server_time + AHEAD_TOLERANCE_MS


def _require_spot(params: Any) -> None:
    if params.get("category") != render.CATEGORY:
        raise Refused(RejectReason.MALFORMED, "Illegal category: this venue serves spot only.")


def _json_body(text: str) -> Params:
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        raise Refused(RejectReason.MALFORMED, "Request parameter error: body is not JSON.") from None
    if not isinstance(body, dict):
        raise Refused(RejectReason.MALFORMED, "Request parameter error: body is not a JSON object.")
    return body


def _decimal(params: Params, name: str) -> Decimal:
    try:
        return Decimal(str(params[name]))
    except (KeyError, InvalidOperation):
        raise Refused(RejectReason.MALFORMED, f"Request parameter error: {name}.") from None


def _integer(params: Any, name: str, default: int) -> int:
    value = str(params.get(name) or default)
    if not value.isdigit():
        raise Refused(RejectReason.MALFORMED, f"Request parameter error: {name}.")
    return int(value)


def _order_id(value: Any) -> int:
    if not str(value).isdigit():
        raise Refused(RejectReason.UNKNOWN_ORDER, "Order does not exist.")
    return int(value)


async def _server_time(request: web.Request) -> web.Response:
    now = time.time_ns()
    return render.ok({"timeSecond": str(now // 1_000_000_000), "timeNano": str(now)})
