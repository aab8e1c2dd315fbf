"""Any ccxt exchange as a venue: REST through `ccxt.async_support`, streams through ccxt's
websocket (`pro`) classes, which serve both. One process per exchange and account.

Endpoints: `rebase` points every REST and websocket URL at one host (emulator, proxy);
`urls` overrides single keys; otherwise `testnet` selects the exchange's sandbox. Sandbox
mode is never switched on over overridden URLs: ccxt would copy its test URLs over them.

Orders: market and limit, GTC / IOC / FOK, post-only; client order ids are ccxt's unified
`clientOrderId`. Modify uses ccxt's `editOrder` where it amends the order in place; where
an exchange implements it as cancel-and-replace under a new client order id (Binance spot),
modify is not offered: the order's identity would change under the order manager.

Order groups: Binance spot holds OCO groups as its order lists (binance_lists.py: the request
through ccxt's implicit `private_post_orderlist_oco`, ccxt having no unified OCO). Our group
id is the list's client id and our client order ids the legs', so every report of a leg is
ours; its group id is added from `_group_ids` (set before the list is sent). A re-delivered
group is answered per known leg (the base class), else refused by Binance as a duplicate
(-2010 "Duplicate order sent.") or of unknown outcome, and then looked up by the legs' client
order ids: never placed twice. Other exchanges hold no groups.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import ccxt.pro as ccxt_pro
import msgspec
from ccxt.base.errors import ArgumentsRequired, BaseError

from tradebus.schemas.commands import ModifyOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import Balance, group_unsupported
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import GroupKind, MarketDataKind, OrderStatus, OrderType, RejectReason, TimeInForce
from tradebus.shared.retry import Backoff

from ...base import Capabilities, VenueEvent
from ...credentials import venue_credentials
from ...errors import OrderRefused, OutcomeUnknown, VenueBusy
from ...remote import MarketMessage, RemoteVenueConnector
from ...tracking import OrderSnapshot, TradeReport
from . import binance_lists, parsing
from .binance_stream import DEPTH_SNAPSHOT_LIMIT, DepthSnapshot
from .config import CcxtConfig
from .native_market import NATIVE_EXCHANGES, NativeMarketData
from .stream_ends import surface_stream_ends

T = TypeVar("T")

# Exchanges whose ccxt editOrder cancels and re-places under a new client order id.
CANCEL_REPLACE_EDITS = frozenset({"binance"})
# Exchanges that find an order by client order id only in their order lists, under their
# own parameter name (ccxt's unified `clientOrderId` works for fetchOrder elsewhere).
LISTED_CLIENT_IDS = {"bybit": "orderLinkId"}
ORDER_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT})
TIME_IN_FORCE = frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK})
# The order groups an exchange holds natively (binance_lists.py); the others hold none.
ORDER_GROUPS = {"binance": frozenset({GroupKind.OCO})}


def rebased(urls: dict[str, Any], rest: str, ws: str) -> dict[str, Any]:
    """Every URL of ccxt's urls['api'] tree moved to `rest` / `ws`, keeping its path."""
    moved: dict[str, Any] = {}
    for key, value in urls.items():
        if isinstance(value, dict):
            moved[key] = rebased(value, rest, ws)
        elif isinstance(value, str):
            scheme, _, remainder = value.partition("://")
            path = remainder[remainder.find("/"):] if "/" in remainder else ""
            moved[key] = (ws if scheme.startswith("ws") else rest).rstrip("/") + path
        else:
            moved[key] = value
    return moved


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


class CcxtConnector(RemoteVenueConnector[CcxtConfig]):

    def __init__(self, **kwargs: Any) -> None:
        config: CcxtConfig = kwargs["config"]
        venue: str = kwargs["venue"]
        self.exchange_id = config.exchange or venue
        credentials = venue_credentials(venue, api_key=config.api_key, api_secret=config.api_secret,
                                        passphrase=config.passphrase)
        exchange_class = getattr(ccxt_pro, self.exchange_id)
        self.exchange = exchange_class({
            "apiKey": credentials.api_key.reveal(), "secret": credentials.api_secret.reveal(),
            "password": credentials.passphrase.reveal() if credentials.passphrase else None,
            "enableRateLimit": True,
            "options": {"warnOnFetchOpenOrdersWithoutSymbol": False, **config.options},
        })
        surface_stream_ends(self.exchange, self.exchange_id)
        if config.rebase is not None:
            self.exchange.urls["api"] = rebased(self.exchange.urls["api"], config.rebase.rest, config.rebase.ws)
        if config.urls:
            self.exchange.urls["api"] = merged(self.exchange.urls["api"], config.urls)
        elif config.rebase is None and config.use_testnet(venue):
            self.exchange.set_sandbox_mode(True)
        self.default_requests_per_second = 1000 / self.exchange.rateLimit
        super().__init__(**kwargs)
        has = self.exchange.has
        streams = {MarketDataKind.QUOTE: "watchBidsAsks", MarketDataKind.TRADE: "watchTrades",
                   MarketDataKind.BOOK: "watchOrderBook"}
        self.capabilities = Capabilities(
            order_types=ORDER_TYPES, time_in_force=TIME_IN_FORCE,
            modify=bool(has.get("editOrder")) and self.exchange_id not in CANCEL_REPLACE_EDITS,
            market_data=frozenset(kind for kind, feature in streams.items() if has.get(feature)),
            order_groups=ORDER_GROUPS.get(self.exchange_id, frozenset()),
        )
        self._group_ids: dict[str, str] = {}  # a leg's client order id -> its group id
        self._instruments: list[Instrument] = []
        self._native = NativeMarketData(
            self.exchange_id, self.exchange.urls["api"], self.exchange.implode_hostname, self._depth_snapshot,
        ) if config.native_market_data and self.exchange_id in NATIVE_EXCHANGES else None

    # --- symbology --------------------------------------------------------------------------
    def instruments(self) -> list[Instrument]:
        return self._instruments

    def venue_symbol(self, symbol: str) -> str:
        return str(self.exchange.market(symbol)["id"])

    def unified_symbol(self, venue_symbol: str) -> str:
        return str(self.exchange.safe_symbol(venue_symbol))

    # --- primitives -----------------------------------------------------------------------------
    async def connect(self) -> None:
        markets = await self._request(self.exchange.load_markets(), changes_state=False)
        wanted = self.config.symbols or sorted(markets)
        self._instruments = [
            parsing.instrument(self.venue, markets[symbol], self.exchange.precisionMode) for symbol in wanted if symbol in markets
        ]
        await self._request(self.exchange.fetch_balance(), changes_state=False)  # proves the credentials

    async def order_trades(self, snapshot: OrderSnapshot) -> list[TradeReport]:
        if not self.exchange.has.get("fetchOrderTrades"):
            return []
        trades = await self._request(self.exchange.fetch_order_trades(snapshot.venue_order_id, snapshot.symbol),
                                     changes_state=False)
        return [parsing.trade_report(trade) for trade in trades]

    async def balances(self) -> list[Balance]:
        return parsing.balances(await self._request(self.exchange.fetch_balance(), changes_state=False))

    def watch_balances(self) -> AsyncIterator[list[Balance]] | None:
        return self._balance_updates() if self.exchange.has.get("watchBalance") else None

    async def _balance_updates(self) -> AsyncIterator[list[Balance]]:
        """ccxt's watchBalance: its balance as the stream left it (Binance
        outboundAccountPosition, Bybit `wallet`); the account book publishes what changed."""
        while True:
            yield parsing.balances(await self._request(self.exchange.watch_balance(), changes_state=False))

    async def disconnect(self) -> None:
        if self._native is not None:
            await self._native.close()
        await self.exchange.close()

    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        if command.order_type not in self.capabilities.order_types:
            raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, f"{command.order_type.value} orders are not supported")
        if command.time_in_force not in self.capabilities.time_in_force:
            raise OrderRefused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, f"{command.time_in_force.value} is not supported")
        params: dict[str, Any] = {"clientOrderId": command.client_order_id}
        if command.time_in_force is not TimeInForce.GTC:
            params["timeInForce"] = command.time_in_force.value
        if command.post_only:
            params["postOnly"] = True
        if command.reduce_only:
            params["reduceOnly"] = True
        order = await self._request(self.exchange.create_order(
            command.symbol, command.order_type.value, command.side.value, float(command.quantity),
            float(command.price) if command.price is not None else None, params,
        ), changes_state=True)
        requested = OrderSnapshot(
            client_order_id=command.client_order_id, venue_order_id="", symbol=command.symbol, side=command.side,
            order_type=command.order_type, quantity=command.quantity, status=OrderStatus.ACCEPTED, price=command.price,
            stop_price=command.stop_price, time_in_force=command.time_in_force, post_only=command.post_only,
            reduce_only=command.reduce_only,
        )
        return parsing.order_snapshot(order, requested)

    async def place_group(self, group: PlaceOrderGroup) -> list[VenueEvent]:
        """An OCO as a Binance spot order list (the only group `capabilities` name)."""
        legs = group.placed_orders()
        market = self.exchange.market(group.first.symbol)
        try:
            if not market.get("spot"):
                raise binance_lists.Unexpressible("Binance holds order lists on spot markets only")
            request = binance_lists.oco_request(group, str(market["id"]))
        except binance_lists.Unexpressible as exc:
            return list(group_unsupported(group, f"{self.venue}: {exc}", time.time_ns()))
        for leg in legs:
            self._group_ids[leg.client_order_id] = group.group_id
            self.tracker.submitting(leg)
        try:
            reports = await self._placed_list(request, legs)
        except (OrderRefused, VenueBusy) as exc:  # Binance placed neither leg
            reason = exc.reason if isinstance(exc, OrderRefused) else RejectReason.VENUE_UNAVAILABLE
            for leg in legs:
                self.tracker.forget(leg.client_order_id)
            return [event for leg in legs for event in self.tracker.rejected(leg, reason, exc.message, time.time_ns())]
        events: list[VenueEvent] = []
        for snapshot in reports:
            events += await self._track(snapshot)
        return events  # none found: the outcome stays unknown, left for reconciliation

    async def _placed_list(self, request: dict[str, Any], legs: list[PlaceOrder]) -> list[OrderSnapshot]:
        """The legs as Binance holds them. Binance refuses a client order id only while an
        order holding it is open, so the list is looked up (its first leg: a list is placed
        whole or not at all) before it is sent, and again after a duplicate refusal or a
        lost answer: a re-delivered group is never placed twice."""
        backoff = Backoff(self.settings.lookup_interval)
        for _ in range(self.settings.lookup_attempts):
            first = await self._call(functools.partial(self.lookup, legs[0].client_order_id, legs[0].symbol))
            if first is not None:
                rest = [await self._call(functools.partial(self.lookup, leg.client_order_id, leg.symbol))
                        for leg in legs[1:]]
                return [first, *(snapshot for snapshot in rest if snapshot is not None)]
            try:
                answer = await self._call(lambda: self._request(self.exchange.private_post_orderlist_oco(request),
                                                                changes_state=True))
            except OrderRefused as exc:
                if exc.reason is not RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                    raise
                continue
            except OutcomeUnknown:
                await backoff.wait()
                continue
            market = self.exchange.market(legs[0].symbol)
            return [parsing.order_snapshot(self.exchange.parse_order(report, market)) for report in answer["orderReports"]]
        return []

    async def _track(self, snapshot: OrderSnapshot, now: int | None = None) -> list[VenueEvent]:
        """Every report of a leg, from any path (the stream's may come before the list's
        answer), carries its group id: it goes on the leg's OrderAccepted."""
        group_id = self._group_ids.get(snapshot.client_order_id)
        if group_id is not None:
            snapshot = msgspec.structs.replace(snapshot, group_id=group_id)
        return await super()._track(snapshot, now)

    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        if not self.capabilities.modify:
            raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, f"{self.exchange_id} cannot modify an order in place")
        current = await self.lookup(command.client_order_id, self.tracker.symbol(command.client_order_id))
        if current is None:
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
        quantity = command.quantity if command.quantity is not None else current.quantity
        price = command.price if command.price is not None else current.price
        order = await self._request(self.exchange.edit_order(
            venue_order_id or current.venue_order_id, current.symbol, current.order_type.value, current.side.value,
            float(quantity), float(price) if price is not None else None,
        ), changes_state=True)
        return parsing.order_snapshot(order, msgspec.structs.replace(current, quantity=quantity, price=price))

    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        params = {} if venue_order_id else {"clientOrderId": client_order_id}
        order = await self._request(self.exchange.cancel_order(venue_order_id, symbol, params), changes_state=True)
        if order.get("side") is None:  # an answer with ids only: the caller looks the order up
            return None
        snapshot = parsing.order_snapshot(order)
        return snapshot if snapshot.client_order_id == client_order_id else None

    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        for candidate in [symbol] if symbol else [i.symbol for i in self._instruments]:
            order = await self._find(client_order_id, candidate)
            if order is not None:
                return parsing.order_snapshot(order)
        return None

    async def _find(self, client_order_id: str, symbol: str) -> dict[str, Any] | None:
        list_parameter = LISTED_CLIENT_IDS.get(self.exchange_id)
        if list_parameter is None:
            try:
                return await self._request(
                    self.exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id}), changes_state=False
                )
            except OrderRefused as exc:
                if exc.reason is RejectReason.UNKNOWN_ORDER:
                    return None
                raise
        query = {list_parameter: client_order_id}
        for listing in (self.exchange.fetch_open_orders, self.exchange.fetch_canceled_and_closed_orders):
            orders: list[dict[str, Any]] = await self._request(listing(symbol, None, None, query), changes_state=False)
            found = [order for order in orders if order.get("clientOrderId") == client_order_id]
            if found:
                return found[0]
        return None

    async def open_orders(self) -> list[OrderSnapshot]:
        try:
            orders = await self._request(self.exchange.fetch_open_orders(), changes_state=False)
        except ArgumentsRequired:  # exchanges that list open orders one symbol at a time
            orders = []
            for instrument in self._instruments:
                orders += await self._request(self.exchange.fetch_open_orders(instrument.symbol), changes_state=False)
        return [parsing.order_snapshot(order) for order in orders if order.get("clientOrderId")]

    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        since = since_ns // 1_000_000
        listings = [self.exchange.fetch_orders] if self.exchange.has.get("fetchOrders") else [
            self.exchange.fetch_open_orders, self.exchange.fetch_canceled_and_closed_orders,
        ]
        orders: list[dict[str, Any]] = []
        for listing in listings:
            try:
                orders += await self._request(listing(None, since), changes_state=False)
            except ArgumentsRequired:  # exchanges that list orders one symbol at a time
                for instrument in self._instruments:
                    orders += await self._request(listing(instrument.symbol, since), changes_state=False)
        return [parsing.order_snapshot(order) for order in orders if order.get("clientOrderId")]

    async def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        while True:
            orders = await self._request(self.exchange.watch_orders(), changes_state=False)
            for order in orders:
                if order.get("clientOrderId"):
                    yield parsing.order_snapshot(order)

    def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        if self._native is not None and self.exchange.market(symbol).get("spot"):
            return self._native.watch(kind, self.venue, symbol, self.venue_symbol(symbol), self.config.book_depth)
        return self._ccxt_market(kind, symbol)

    async def _ccxt_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        while True:
            if kind is MarketDataKind.QUOTE:
                tickers = await self._request(self.exchange.watch_bids_asks([symbol]), changes_state=False)
                quote = parsing.quote(self.venue, symbol, tickers.get(symbol, {}), time.time_ns())
                yield [quote] if quote is not None else []
            elif kind is MarketDataKind.TRADE:
                trades = await self._request(self.exchange.watch_trades(symbol), changes_state=False)
                now = time.time_ns()
                yield [parsing.trade(self.venue, symbol, trade, now) for trade in trades]
            else:
                book = await self._request(self.exchange.watch_order_book(symbol), changes_state=False)
                yield [parsing.book(self.venue, symbol, book, self.config.book_depth, time.time_ns())]

    async def _depth_snapshot(self, venue_id: str) -> DepthSnapshot:
        """Binance's REST book, where its diff depth stream starts (native market data)."""
        answer = await self._call(lambda: self._request(
            self.exchange.public_get_depth({"symbol": venue_id, "limit": DEPTH_SNAPSHOT_LIMIT}), changes_state=False))
        return msgspec.convert(answer, DepthSnapshot)

    # --- helpers ----------------------------------------------------------------------------------
    async def _request(self, call: Awaitable[T], *, changes_state: bool) -> T:
        """Await one ccxt call; its exceptions become the taxonomy's."""
        try:
            return await call
        except ArgumentsRequired:  # a usage answer ("needs a symbol") the caller handles
            raise
        except BaseError as exc:
            # ccxt stores the answer before raising, in the same task step: it is this request's
            raise parsing.venue_error(exc, changes_state=changes_state, retry_after=self._retry_after(),
                                      exchange_id=self.exchange_id, last_body=self.exchange.last_http_response) from None

    def _retry_after(self) -> float | None:
        headers = self.exchange.last_response_headers or {}
        value = headers.get("Retry-After") or headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None
