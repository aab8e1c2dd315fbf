"""Fyers (Indian equities and derivatives) as a venue, through fyers-apiv3.

fyers-apiv3 needs its own environment (.venv-fyers: it pins requests, aiohttp and
websocket-client below what ccxt needs); the fleet runs this connector from it
(`.venv-fyers/bin/tradebus run connector --venue fyers`, docs/venues.md "Fyers").

REST: FyersModel is synchronous (requests): every call runs in a worker thread. The SDK never
raises: it answers Fyers' body, or its own error dict when no answer came (parsing.checked
tells them apart). Its base URLs are class attributes (`fyersModel.Config.API`, `.DATA_API`),
read on every request: an override is set on the class, which is fine because a connector
is one process for one venue account. Its log files go to `log_dir`, not the working directory.

Orders: limit (1), market (2), stop SL-M (3), stop-limit SL-L (4); DAY and IOC; the product
type (INTRADAY, CNC, MARGIN) is a setting. Our client order id travels as the order's tag
(parsing.order_tag). Fyers answers a place, modify or cancel with the order id only: the
order's state comes from the order book and the order socket.

Order socket: FyersOrderSocket runs websocket-client in its own threads and reconnects by
itself, which would hide a gap from the base class; it is built with reconnect=False, its
callbacks hand frames to our loop, and a close ends the iteration (VenueBusy): the base then
reconnects and reconciles. The class is a singleton (`_instance`), reset before each
connection; its URL is a name-mangled attribute, set after construction for an override.

Market data: Fyers' data socket (HSM, datasocket.py): quotes and trades from a symbol's
SymbolUpdate feed, five-level books from its DepthUpdate feed, streamed as they change.

Duplicate tags: Fyers takes a second order under a tag it already holds, where other venues
refuse a duplicate client order id. The connector keeps the tags of the day's orders (its
own places, the order socket's updates, and the order book, read at every reconciliation and
once each order socket has acknowledged its subscription, so that no order falls between the
two) and refuses a place whose tag the venue holds as such a duplicate, without a request:
the shared placement path (placement.py) then looks the order up and recognizes it by its
terms. While the order socket is not subscribed (starting, reconnecting), a place reads the
order book first. A place whose outcome was unknown adds no tag, so its look-up may still
re-send it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from fyers_apiv3 import fyersModel
from fyers_apiv3.FyersWebsocket import order_ws
from requests.adapters import HTTPAdapter

from tradebus.markets import india
from tradebus.schemas.commands import ModifyOrder, PlaceOrder
from tradebus.schemas.events import Balance
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import MarketDataKind, OrderStatus, RejectReason

from ...accounts import ReportedPosition
from ...base import Capabilities
from ...credentials import venue_credentials
from ...errors import OrderRefused, OutcomeUnknown, VenueBusy
from ...remote import MarketMessage, RemoteVenueConnector
from ...tracking import OrderSnapshot, TradeReport
from . import parsing, rules, session
from .config import FyersConfig
from .datasocket import DataSocket

SOCKET_CHANNELS = "OnOrders"  # the order socket's order updates (fills show as filledQty / tradedPrice)
SUBSCRIBED = 1605  # the order socket's answer to a subscription (docs "Order Websocket": "Successfully subscribed")


class FyersConnector(RemoteVenueConnector[FyersConfig]):
    # Fyers: 10 requests per second and 200 per minute (docs "Rate Limit"); the minute is the
    # tighter one, and exceeding it three times in a day blocks the user for the day.
    default_requests_per_second = 200 / 60
    capabilities = Capabilities(
        order_types=frozenset(parsing.ORDER_TYPES), time_in_force=frozenset(parsing.TIME_IN_FORCE), modify=True,
        market_data=frozenset({MarketDataKind.QUOTE, MarketDataKind.TRADE, MarketDataKind.BOOK}),
    )

    def __init__(self, **kwargs: Any) -> None:
        config: FyersConfig = kwargs["config"]
        india.use_calendars(config.calendar_dir)  # a malformed calendar stops the start (ConfigError)
        credentials = venue_credentials(kwargs["venue"], api_key=config.api_key, api_secret=config.access_token)
        self._app_id = credentials.api_key.reveal()
        if config.api_url:
            fyersModel.Config.API = config.api_url.rstrip("/")
        if config.data_url:
            fyersModel.Config.DATA_API = config.data_url.rstrip("/")
        Path(config.log_dir).mkdir(parents=True, exist_ok=True)
        self._deadline, self._log_dir = _Deadline(config.request_timeout), config.log_dir
        self._token = credentials.api_secret.reveal()
        self.client = self._client(self._token)
        super().__init__(**kwargs)
        self.data_socket = DataSocket(config.data_socket_url, fyersModel.Config.DATA_API, self._app_id, self._token,
                                      self.limiter.acquire)
        self._instruments: list[Instrument] = []
        self._ours: dict[str, str] = {}  # order tag -> our client order id
        self._venue_tags: set[str] = set()  # the tags of the orders Fyers holds today (see the module's notes)
        self._tags_known = asyncio.Event()  # the order socket reports every new tag and the book gave the rest
        self._start_session(self, credentials.api_secret, given=config.access_token, rules=session.RULES,
                            settings=config.session)

    # --- the day's session (session.py) ------------------------------------------------------------
    def use_token(self, token: str) -> None:
        """Sign with `token` from now on: the REST client (the SDK reads it once, when built),
        the data socket (a connection made with the old one is closed) and the order socket
        at its next connection."""
        self._token = token
        self.client = self._client(token)
        self.data_socket.use_token(token)

    async def check_session(self) -> None:
        await self._sdk(self.client.get_profile, changes_state=False)

    def _client(self, token: str) -> fyersModel.FyersModel:
        client = fyersModel.FyersModel(client_id=self._app_id, token=token, log_path=self._log_dir)
        for scheme in ("https://", "http://"):
            client.service.session.mount(scheme, self._deadline)
        return client

    # --- symbology (Fyers' symbols are ours: see parsing.py) ---------------------------------
    def instruments(self) -> list[Instrument]:
        return self._instruments

    def venue_symbol(self, symbol: str) -> str:
        return symbol

    def unified_symbol(self, venue_symbol: str) -> str:
        return venue_symbol

    # --- primitives -----------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.check_session()
        for coid in self.tracker.client_order_ids():
            self._ours.setdefault(parsing.order_tag(coid), coid)
        self._instruments = [self._instrument(symbol) for symbol in self.config.symbols]

    def _instrument(self, symbol: str) -> Instrument:
        exchange, _, name = symbol.partition(":")
        return Instrument(
            venue=self.venue, symbol=symbol, seq=0, ts_event=0, ts_recv=0, venue_symbol=symbol,
            asset_class="equity", base=name.rsplit("-", 1)[0] or symbol, quote=parsing.CURRENCY,
            tick_size=self.config.tick_size, lot_size=self.config.lot_size, min_quantity=self.config.lot_size,
            min_notional=parsing.ZERO,
        )

    async def disconnect(self) -> None:
        """REST sessions close with the process, the order socket with its iteration."""
        await self.data_socket.close()

    async def balances(self) -> list[Balance]:
        return parsing.balances(await self._sdk(self.client.funds, changes_state=False))

    async def positions(self) -> list[ReportedPosition] | None:
        return parsing.positions(await self._sdk(self.client.positions, changes_state=False))

    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        if command.order_type not in parsing.ORDER_TYPES or command.post_only or command.reduce_only:
            raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, "Fyers does not take this order")
        if command.time_in_force not in parsing.TIME_IN_FORCE:
            raise OrderRefused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, f"{command.time_in_force.value}: DAY or IOC")
        if command.quantity != int(command.quantity):
            raise OrderRefused(RejectReason.LOT_SIZE, "Fyers takes whole quantities")
        self._check_rules(command.symbol, command.quantity, command.price, command.stop_price)
        tag = parsing.order_tag(command.client_order_id)
        if not self._tags_known.is_set():  # the order socket is not subscribed: only the book knows them all
            await self.limiter.acquire()
            await self._order_book()
        if tag in self._venue_tags:
            raise OrderRefused(RejectReason.DUPLICATE_CLIENT_ORDER_ID, f"Fyers holds an order tagged {tag} today")
        self._ours[tag] = command.client_order_id
        body = {
            "symbol": command.symbol, "qty": int(command.quantity), "type": parsing.ORDER_TYPES[command.order_type],
            "side": parsing.SIDES[command.side], "productType": self.config.product_type.value,
            # the SDK sends json.dumps(body): prices go as floats, whose repr gives back the
            # decimals of a tick-sized price (checked against the instrument before sending)
            "limitPrice": float(command.price or 0), "stopPrice": float(command.stop_price or 0),
            "validity": parsing.TIME_IN_FORCE[command.time_in_force], "disclosedQty": 0, "offlineOrder": False,
            "stopLoss": 0, "takeProfit": 0, "orderTag": tag,
        }
        answer = await self._sdk(self.client.place_order, body, changes_state=True)
        self._venue_tags.add(tag)
        return OrderSnapshot(
            client_order_id=command.client_order_id, venue_order_id=str(answer["id"]), symbol=command.symbol,
            side=command.side, order_type=command.order_type, quantity=command.quantity,
            status=OrderStatus.ACCEPTED, price=command.price, stop_price=command.stop_price,
            time_in_force=command.time_in_force, ts=time.time_ns(),
        )

    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        current = await self.lookup(command.client_order_id, "")
        if current is None:
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
        self._check_rules(current.symbol, command.quantity, command.price, command.stop_price)
        body: dict[str, Any] = {"id": current.venue_order_id, "type": parsing.ORDER_TYPES[current.order_type]}
        if command.quantity is not None:
            body["qty"] = int(command.quantity)
        if command.price is not None:
            body["limitPrice"] = float(command.price)
        if command.stop_price is not None:
            body["stopPrice"] = float(command.stop_price)
        await self._sdk(self.client.modify_order, body, changes_state=True)
        changed = await self.lookup(command.client_order_id, "")
        if changed is None:
            raise OutcomeUnknown("the modified order is not in the order book")
        return changed

    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        if venue_order_id is None:
            current = await self.lookup(client_order_id, symbol)
            if current is None:
                raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
            venue_order_id = current.venue_order_id
        await self._sdk(self.client.cancel_order, {"id": venue_order_id}, changes_state=True)
        return None  # Fyers answers the id only: the caller looks the order up

    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        tag = parsing.USER_TAG + parsing.order_tag(client_order_id)
        try:
            answer = await self._sdk(self.client.orderbook, {"order_tag": tag}, changes_state=False)
        except OrderRefused as exc:
            if exc.reason is RejectReason.UNKNOWN_ORDER:
                return None
            raise
        orders = [self._snapshot(o) for o in answer.get("orderBook") or []]
        return orders[-1] if orders else None

    async def open_orders(self) -> list[OrderSnapshot]:
        return [o for o, code in await self._order_book() if code in parsing.WORKING]

    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        """Fyers' order book holds the current trading day only: that is as far back as it goes."""
        return [o for o, code in await self._order_book() if o.ts >= since_ns or code in parsing.WORKING]

    async def _order_book(self) -> list[tuple[OrderSnapshot, int]]:
        answer = await self._sdk(self.client.orderbook, changes_state=False)
        return [(self._snapshot(o), int(o.get("status") or 0)) for o in answer.get("orderBook") or []]

    async def order_trades(self, snapshot: OrderSnapshot) -> list[TradeReport]:
        answer = await self._sdk(self.client.tradebook, changes_state=False)
        return [parsing.trade_report(t) for t in answer.get("tradeBook") or []
                if str(t.get("orderNumber")) == snapshot.venue_order_id]

    async def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        loop = asyncio.get_running_loop()
        frames: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def to_loop(kind: str) -> Callable[..., None]:
            def hand_over(message: Any = None) -> None:
                # the SDK's threads may still report after this iteration (and its loop) ended
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(frames.put_nowait, (kind, message))

            return hand_over

        order_ws.FyersOrderSocket._instance = None  # a singleton: each connection needs a new one
        socket = order_ws.FyersOrderSocket(
            access_token=f"{self._app_id}:{self._token}", log_path=self.config.log_dir, reconnect=False,
            on_orders=to_loop("order"), on_error=to_loop("error"), on_close=to_loop("close"),
            on_general=to_loop("general"),
        )
        if self.config.order_socket_url:
            socket._FyersOrderSocket__url = self.config.order_socket_url
        try:
            await asyncio.to_thread(socket.connect)
            if not socket.is_connected():
                raise VenueBusy("order socket: not connected")
            await asyncio.to_thread(socket.subscribe, SOCKET_CHANNELS)
            while True:
                kind, message = await frames.get()
                if kind == "general":
                    if isinstance(message, dict) and message.get("code") == SUBSCRIBED and not self._tags_known.is_set():
                        # from now on the socket reports every order: the book read after it
                        # holds every tag placed before
                        await self._order_book()
                        self._tags_known.set()
                    continue
                if kind != "order":
                    raise VenueBusy(f"order socket {kind}: {str(message)[:200]}")
                if isinstance(message, dict) and isinstance(message.get("orders"), dict):
                    yield self._snapshot(message["orders"])
        finally:
            self._tags_known.clear()
            await asyncio.to_thread(_close, socket)

    async def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        last: MarketMessage | None = None
        volume: int | None = None  # the day's volume at the last feed: a trade is what it grew by
        async for feed in self.data_socket.feeds(symbol, depth=kind is MarketDataKind.BOOK):
            now = time.time_ns()
            message: MarketMessage | None
            if kind is MarketDataKind.TRADE:
                message = parsing.trade(self.venue, symbol, feed, volume, now)
                volume = parsing.volume(feed, volume)
            elif kind is MarketDataKind.QUOTE:
                message = parsing.quote(self.venue, symbol, feed, now)
            else:
                message = parsing.book(self.venue, symbol, feed, now, self.config.book_depth)
            if message is None:
                continue
            if kind is not MarketDataKind.TRADE:  # a feed that changed nothing this stream shows publishes nothing
                if _content(message) == _content(last):
                    continue
                last = message
            yield [message]

    # --- helpers ----------------------------------------------------------------------------------
    def _check_rules(self, symbol: str, quantity: Decimal | None, *prices: Decimal | None) -> None:
        """The Indian exchange rules, before sending (tradebus.markets.india.orders says why
        here): tick and lot (the settings'), freeze quantity, the segment's sessions. The
        connector places no Schedule Orders (AMOs), so outside the sessions an order is refused."""
        found = rules.listing(symbol, self.config.tick_size, self.config.lot_size)
        if found is None:
            return
        refused = india.check_order(found, quantity, prices, when_ns=time.time_ns(), clock=self.config.market_hours)
        if refused is not None:
            raise OrderRefused(*refused)

    def _snapshot(self, order: dict[str, Any]) -> OrderSnapshot:
        """An order of the order book or the order socket; its tag is one Fyers holds."""
        tag = parsing.user_tag(order)
        if tag is not None:
            self._venue_tags.add(tag)
        return parsing.order_snapshot(order, self._ours)

    async def _sdk(self, call: Callable[..., Any], *args: Any, changes_state: bool) -> dict[str, Any]:
        """One synchronous SDK call in a worker thread; a failed answer becomes the taxonomy's error."""
        try:
            answer = await asyncio.to_thread(call, *args)
        except Exception as exc:  # noqa: BLE001 -- the SDK catches its own; anything else is unforeseen
            message = type(exc).__name__
            raise OutcomeUnknown(message) if changes_state else VenueBusy(message) from None
        return parsing.checked(answer, sdk_failure=answer is self.client.service.error_resp,
                               changes_state=changes_state)


class _Deadline(HTTPAdapter):
    """Gives every request of the SDK's session a deadline: fyers-apiv3 sets none, so a
    connection that never answers would hold its worker thread, and an order command, forever.
    The SDK turns the timeout into its error dict like any request that got no answer
    (parsing.checked): a place, modify or cancel is then looked up, never sent again blind."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, *args, **kwargs)


def _content(message: MarketMessage | None) -> dict[str, Any] | None:
    """A market message without its times: a feed that changed nothing it shows publishes nothing."""
    if message is None:
        return None
    return {name: getattr(message, name) for name in message.__struct_fields__ if name not in ("ts_event", "ts_recv")}


def _close(socket: order_ws.FyersOrderSocket) -> None:
    """Close the SDK's socket without its close_connection(), which joins threads that
    exist only after keep_running()."""
    socket.restart_flag = False
    ws = socket._FyersOrderSocket__ws_object
    if ws is not None:
        ws.close()
