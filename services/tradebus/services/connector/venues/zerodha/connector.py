"""Zerodha (Indian equities, F&O, currency and commodity) as a venue, through Kite Connect.

REST: pykiteconnect's KiteConnect (`root=` points it at an emulator or a proxy). It is
synchronous (requests): every call runs in a worker thread, never on the event loop; the
answer's own `error_type` is read there (a response hook) because pykiteconnect raises
GeneralException for the names it does not define (MarginException, HoldingException).

Streams: one KiteTicker websocket for order updates and market data (ticker.py says why it
is driven with aiohttp rather than through KiteTicker's Twisted reactor).

Orders: MARKET, LIMIT, SL (our stop_limit) and SL-M (our stop); validity DAY or IOC (Kite
has no GTC); product and variety from the settings (config.py). Kite keeps no client order
id: the order's `tag` carries it (parsing.order_tag), and a look-up lists the day's orders
and finds it by that tag, so "not found" means the order book does not hold it. Kite
answers a place, modify or cancel with the order id only: the order's state is then read
from its history. Fills come with the order's cumulative quantity and average price; the
trades (id, price, quantity) are read from GET /orders/{id}/trades. Kite states no charges
per trade: fees are unknown (0, no currency).

Session: Kite's access token lasts until 6 AM IST the next day (session.py); an expired one is
a TokenException, and the connector waits for a new one in the secrets file (../../session.py).

Limits (kite.trade/docs/connect/v3/exceptions "API rate limit"): 10 requests per second
per API key (the shared limiter), and orders at most 10 per second and 200 per minute
(a second limiter in front of place / modify / cancel).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, TypeVar

from kiteconnect import KiteConnect

from tradebus.markets import india
from tradebus.schemas.commands import ModifyOrder, PlaceOrder
from tradebus.schemas.events import Balance
from tradebus.schemas.market import BookLevel, BookSnapshot, Instrument, Quote, Trade
from tradebus.schemas.values import TERMINAL_STATUSES, Aggressor, MarketDataKind, RejectReason

from ...accounts import ReportedPosition
from ...base import Capabilities
from ...credentials import venue_credentials
from ...errors import OrderRefused, OutcomeUnknown, VenueError
from ...ratelimit import RateLimiter
from ...remote import MarketMessage, RemoteVenueConnector
from ...tracking import OrderSnapshot, TradeReport
from . import parsing, session
from .config import Variety, ZerodhaConfig
from .ticker import Tick, TickerConnection

T = TypeVar("T")
ORDERS_PER_MINUTE = 200


class ZerodhaConnector(RemoteVenueConnector[ZerodhaConfig]):
    default_requests_per_second = 10.0  # Kite: 10 requests per second per API key

    def __init__(self, **kwargs: Any) -> None:
        config: ZerodhaConfig = kwargs["config"]
        india.use_calendars(config.calendar_dir)  # a malformed calendar stops the start (ConfigError)
        credentials = venue_credentials(kwargs["venue"], api_key=config.api_key, api_secret=config.access_token)
        key, token = credentials.api_key.reveal(), credentials.api_secret.reveal()
        self.kite = KiteConnect(key, access_token=token, root=config.rest_url)
        self._error_types = parsing.ErrorTypes()
        self._error_types.install(self.kite.reqsession)
        self.ticker = TickerConnection(config.ws_url, key, token)
        super().__init__(**kwargs)
        # Every request, not every primitive (a place is a place and a read of its state):
        # the venue counts requests.
        self.request_limiter = RateLimiter(0.9 * self.default_requests_per_second)
        self.order_limiter = RateLimiter(0.9 * ORDERS_PER_MINUTE / 60)
        self.capabilities = Capabilities(
            order_types=frozenset(parsing.ORDER_TYPES), time_in_force=frozenset(parsing.VALIDITY), modify=True,
            market_data=frozenset({MarketDataKind.QUOTE, MarketDataKind.TRADE, MarketDataKind.BOOK}),
        )
        self._listed: dict[str, parsing.KiteInstrument] = {}  # symbol -> master row
        self._by_token: dict[int, parsing.KiteInstrument] = {}  # instrument token -> master row
        self._instruments: list[Instrument] = []
        self._ours: dict[str, str] = {}  # Kite tag -> our client order id
        self._start_session(self, credentials.api_secret, given=config.access_token, rules=session.RULES,
                            settings=config.session)

    # --- the day's session (session.py) ------------------------------------------------------------
    def use_token(self, token: str) -> None:
        self.kite.set_access_token(token)
        self.ticker.use_token(token)

    async def check_session(self) -> None:
        await self._sdk(self.kite.profile, changes_state=False)

    # --- symbology -------------------------------------------------------------------------------
    def instruments(self) -> list[Instrument]:
        return self._instruments

    def venue_symbol(self, symbol: str) -> str:
        return str(self._listing(symbol).instrument_token)

    def unified_symbol(self, venue_symbol: str) -> str:
        return self._by_token[int(venue_symbol)].symbol

    def _listing(self, symbol: str) -> parsing.KiteInstrument:
        row = self._listed.get(symbol)
        if row is None:
            raise OrderRefused(RejectReason.UNKNOWN_INSTRUMENT, f"{symbol} is not listed")
        return row

    # --- primitives ------------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.check_session()
        wanted = set(self.config.symbols)
        listed: dict[str, parsing.KiteInstrument] = {}
        for exchange in self.config.exchanges:
            dump = await self._sdk(self.kite.instruments, exchange, changes_state=False)
            for row in parsing.instrument_rows(dump):
                if row.tradable and (not wanted or row.symbol in wanted):
                    listed[row.symbol] = row
        self._listed = dict(sorted(listed.items()))
        self._by_token = {row.instrument_token: row for row in self._listed.values()}
        self._instruments = [parsing.instrument(self.venue, row) for row in self._listed.values()]
        for coid in self.tracker.open_orders():
            self._ours[parsing.order_tag(coid)] = coid

    async def disconnect(self) -> None:
        await self.ticker.close()

    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        row = self._listing(command.symbol)
        if command.post_only or command.reduce_only:
            raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, "Kite takes no post-only or reduce-only orders")
        validity = parsing.VALIDITY.get(command.time_in_force)
        if validity is None:
            raise OrderRefused(RejectReason.UNSUPPORTED_TIME_IN_FORCE,
                               f"{command.time_in_force.value} is not offered by Kite (DAY, IOC)")
        _check_terms(row, self.config, time.time_ns(), command.quantity, command.price, command.stop_price)
        tag = parsing.order_tag(command.client_order_id)
        self._ours[tag] = command.client_order_id
        equity = row.exchange in parsing.EQUITY_SEGMENTS
        order_id = await self._order_call(
            self.kite.place_order, variety=self.config.variety.value, exchange=row.exchange,
            tradingsymbol=row.tradingsymbol, transaction_type=command.side.value.upper(),
            quantity=int(command.quantity),
            product=(self.config.product_equity if equity else self.config.product_derivatives).value,
            order_type=parsing.ORDER_TYPES[command.order_type], price=_text(command.price),
            trigger_price=_text(command.stop_price), validity=validity, tag=tag,
        )
        return await self._after_change(str(order_id), "placed")

    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        current = await self.lookup(command.client_order_id, "") if venue_order_id is None else None
        order_id = venue_order_id or (current.venue_order_id if current else None)
        if order_id is None:
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
        _check_terms(self._listing(self.tracker.symbol(command.client_order_id)), self.config, time.time_ns(),
                     command.quantity, command.price, command.stop_price)
        await self._order_call(
            self.kite.modify_order, variety=self.config.variety.value, order_id=order_id,
            quantity=None if command.quantity is None else int(command.quantity), price=_text(command.price),
            trigger_price=_text(command.stop_price),
        )
        return await self._after_change(order_id, "modified")

    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        if venue_order_id is None:
            current = await self.lookup(client_order_id, symbol)
            if current is None:
                raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
            venue_order_id = current.venue_order_id
        try:
            await self._order_call(self.kite.cancel_order, variety=self.config.variety.value, order_id=venue_order_id)
        except OrderRefused:
            # Kite's texts for "already finished" are not documented: the order's state says it.
            state = await self._history(venue_order_id)
            if state.status in TERMINAL_STATUSES:
                raise OrderRefused(RejectReason.ORDER_NOT_OPEN, f"order is {state.status.value}") from None
            raise
        return None  # Kite answers the order id only: the base class looks the order up

    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        tag = parsing.order_tag(client_order_id)
        self._ours[tag] = client_order_id
        orders = await self._sdk(self.kite.orders, changes_state=False)
        mine = [order for order in orders if order.get("tag") == tag]
        return parsing.order_snapshot(mine[-1], self._client_order_id) if mine else None

    async def open_orders(self) -> list[OrderSnapshot]:
        return [s for s in await self._day_orders() if s.status not in TERMINAL_STATUSES]

    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        """Kite's order book holds the day's orders only: older ones are not listed."""
        return [s for s in await self._day_orders() if s.ts >= since_ns]

    async def _day_orders(self) -> list[OrderSnapshot]:
        orders = await self._sdk(self.kite.orders, changes_state=False)
        return [parsing.order_snapshot(order, self._client_order_id) for order in orders]

    async def order_trades(self, snapshot: OrderSnapshot) -> list[TradeReport]:
        trades = await self._sdk(self.kite.order_trades, snapshot.venue_order_id, changes_state=False)
        return sorted((parsing.trade_report(t) for t in trades), key=lambda t: (t.ts, t.trade_id))

    async def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        async for order in self.ticker.orders():
            yield parsing.order_snapshot(order, self._client_order_id)

    async def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        row = self._listing(symbol)
        volume: int | None = None  # the day's volume at the last tick: a trade is what it grew by
        async for tick in self.ticker.ticks(row.instrument_token):
            messages = _messages(self.venue, symbol, kind, tick, volume)
            volume = tick.volume if tick.volume is not None else volume
            if messages:
                yield messages

    async def balances(self) -> list[Balance]:
        return parsing.balances(await self._sdk(self.kite.margins, changes_state=False))

    async def positions(self) -> list[ReportedPosition] | None:
        net = await self._sdk(self.kite.positions, changes_state=False)
        holdings = await self._sdk(self.kite.holdings, changes_state=False)
        return parsing.positions(net.get("net") or [], holdings or [])

    # --- helpers ---------------------------------------------------------------------------------
    def _client_order_id(self, order: dict[str, Any]) -> str:
        """Ours for a tag we gave; else the tag itself (an order another tool placed under
        that id, or ours from before a restart); an untagged order is named by its Kite id."""
        tag = order.get("tag")
        if tag and tag in self._ours:
            return self._ours[tag]
        if tag and parsing.TAG.match(tag):
            return str(tag)
        return f"kite-{order['order_id']}"

    async def _after_change(self, order_id: str, done: str) -> OrderSnapshot:
        """The order's state after Kite took a change: a failed read of it must not be taken
        for a failed change (retried, it would place twice), so it is an unknown outcome,
        resolved by looking the order up."""
        try:
            return await self._history(order_id)
        except VenueError as exc:
            raise OutcomeUnknown(f"{done} as {order_id}; its state could not be read: {exc.message}") from None

    async def _history(self, order_id: str) -> OrderSnapshot:
        history = await self._sdk(self.kite.order_history, order_id, changes_state=False)
        return parsing.order_snapshot(history[-1], self._client_order_id)

    async def _order_call(self, call: Callable[..., T], **params: Any) -> T:
        await self.order_limiter.acquire()
        return await self._sdk(lambda: call(**{k: v for k, v in params.items() if v is not None}), changes_state=True)

    async def _sdk(self, call: Callable[..., T], *args: Any, changes_state: bool) -> T:
        """One synchronous SDK call in a worker thread; its exceptions become the taxonomy's."""

        def run() -> T:
            self._error_types.reset()
            try:
                return call(*args)
            except Exception as exc:  # noqa: BLE001 -- every SDK failure is mapped, none escapes
                raise parsing.venue_error(exc, self._error_types.last, changes_state=changes_state) from None

        await self.request_limiter.acquire()
        return await asyncio.to_thread(run)


def _check_terms(row: parsing.KiteInstrument, config: ZerodhaConfig, now: int, quantity: Decimal | None,
                 *prices: Decimal | None) -> None:
    """Refused before sending, by the exchange rules every Indian venue shares
    (tradebus.markets.india.orders says why they are checked here and not in risk): tick
    and lot from the instrument master, the freeze quantity, the segment's sessions or, for
    variety amo, Kite's AMO window. Kite's own refusals of these are InputExceptions whose
    texts are not documented, so they would read as `malformed`."""
    kind = india.kind_of(parsing.ASSET_CLASSES.get(row.instrument_type, "equity"))
    segment = india.segment_of(row.exchange)
    if segment is None:  # an exchange without Indian rules here (e.g. NCDEX): tick and lot only
        segment, clock = india.Segment.NSE, False
    else:
        clock = config.market_hours
    listing = india.Listing(segment=segment, kind=kind, tick_size=row.tick_size, lot_size=row.lot_size,
                            underlying=row.name if kind is not india.Kind.EQUITY else None)
    amo = india.ZERODHA_AMO if config.variety is Variety.AMO else None
    refused = india.check_order(listing, quantity, prices, when_ns=now, amo=amo, clock=clock)
    if refused is not None:
        raise OrderRefused(*refused)


def _text(value: Decimal | None) -> str | None:
    """A price as the form field Kite reads (exact: the SDK posts it as written)."""
    return None if value is None else format(value, "f")


def _messages(venue: str, symbol: str, kind: MarketDataKind, tick: Tick, volume: int | None) -> list[MarketMessage]:
    """What one tick says for one stream: the best bid and ask (full mode), a trade (the
    day's volume grew; the first tick after (re)subscribing only sets the baseline) or the
    five-level book."""
    ts = (tick.exchange_time or 0) * 1_000_000_000
    now = time.time_ns()
    ts = ts or now
    if kind is MarketDataKind.QUOTE and tick.bids and tick.asks:
        bid, ask = tick.bids[0], tick.asks[0]
        return [Quote(venue=venue, symbol=symbol, seq=0, ts_event=ts, ts_recv=now, bid=bid.price,
                      bid_size=Decimal(bid.quantity), ask=ask.price, ask_size=Decimal(ask.quantity))]
    if kind is MarketDataKind.TRADE and tick.volume is not None and volume is not None and tick.volume > volume:
        traded = (tick.last_trade_time or 0) * 1_000_000_000 or ts
        return [Trade(venue=venue, symbol=symbol, seq=0, ts_event=traded, ts_recv=now, price=tick.last_price,
                      size=Decimal(tick.volume - volume), aggressor=Aggressor.UNKNOWN, trade_id=str(tick.volume))]
    if kind is MarketDataKind.BOOK and (tick.bids or tick.asks):
        return [BookSnapshot(venue=venue, symbol=symbol, seq=0, ts_event=ts, ts_recv=now,
                             bids=[BookLevel(price=level.price, size=Decimal(level.quantity)) for level in tick.bids if level.quantity],
                             asks=[BookLevel(price=level.price, size=Decimal(level.quantity)) for level in tick.asks if level.quantity])]
    return []
