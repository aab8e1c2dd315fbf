"""The engine behind every venue emulator: the simulated exchange and market
(tradebus.simulator, shared with the paper venue), plus the order records a venue's API
reports.

An emulator (binance/, bybit/, alpaca/, ...) is a thin translation layer: it decodes the
venue's wire requests into `PlaceOrder` / `ModifyOrder` / `CancelOrder` commands, runs them
here, and renders `EmulatedOrder` records and market updates in the venue's own payload
shapes. Matching, balances and the random-walk market are the simulator's, so every
emulator trades the same way and behaves like a real market (resting orders fill later,
partial fills happen, stops trigger).

Fees are the venue's rates (`FeeSchedule`), charged in the currency the venue charges them
in (`FeeAsset`): the engine's quote currency, or, as spot exchanges do, the asset a fill
brings in. The engine knows only the first, so for the second it trades without fees and
this layer charges them: each fill's fee is computed here and taken from the account's
balance of its currency.

Listeners are called synchronously right after each change, in order: a websocket session
queues the rendered frame, so private-stream updates reach clients in venue order.

Asynchronous venues: a place can ask for its outcome to be reported later (`report_after`),
as a venue that acknowledges an order before it routes it (Alpaca answers `accepted`, then
fills on its stream); and for the refusals listed in `cancel_after_acceptance` the order is
accepted and then cancelled by the venue (Bybit's crossing post-only: retCode 0, then a
Cancelled order update). What is held back is reported in venue order: every later change
waits behind it.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections import deque
from collections.abc import Callable, Collection
from decimal import Decimal

import msgspec

from tradebus.schemas.commands import CancelOrder, ModifyOrder, OrderCommand, PlaceOrder
from tradebus.schemas.events import (
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
    PositionUpdate,
)
from tradebus.schemas.values import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradebus.simulator.exchange import SimulatedExchange
from tradebus.simulator.market import MarketSettings, MarketUpdate, RandomWalk
from tradebus.simulator.rules import BPS, FeeSchedule, InstrumentSpec

from .faults import FaultPlan

ZERO = Decimal(0)
NO_FEES = FeeSchedule(maker_bps=ZERO, taker_bps=ZERO)
ENGINE_VENUE = "emulated"  # the engine's own name; emulators never show it to clients


class FeeAsset(enum.Enum):
    """The currency a venue charges a fill's fee in."""

    QUOTE = "quote"  # every fee in the instrument's quote currency (the engine's own model)
    # The asset the fill brings in: a buy pays in the base asset, a sell in the quote asset;
    # a rebate (a negative maker rate) is paid in the asset the fill gives. Binance spot
    # without BNB discount (user-data-stream.md "Order Update": commission `n` in asset `N`;
    # rest-api.md "Account trade list": `commissionAsset`); Bybit v5 spot (docs/v5/enum.mdx
    # "Spot Fee Currency Instruction": positive maker rate, Buy -> base, Sell -> quote; negative,
    # as maker, Buy -> quote, Sell -> base).
    RECEIVED = "received"


class Refused(Exception):
    """The venue refused a request; nothing changed. Emulators map `reason` to the venue's
    own error code and HTTP status."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EmulatedFill(msgspec.Struct, frozen=True, kw_only=True):
    trade_id: int
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    fee_rate: Decimal  # the rate charged (0.0005 for 5 bps), as venues report it
    maker: bool
    ts: int  # ns


class EmulatedOrder(msgspec.Struct, kw_only=True):
    """One order as the venue reports it. Mutated in place as the order works."""

    order_id: int  # the venue's order id, increasing
    client_order_id: str
    account: str
    symbol: str  # the engine's symbol (unified, e.g. BTC/USDT); emulators render their own
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    post_only: bool = False
    status: OrderStatus = OrderStatus.ACCEPTED
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # sum of price x quantity of the fills (quote currency)
    fills: list[EmulatedFill] = msgspec.field(default_factory=list)
    triggered: bool = False
    created_ns: int = 0
    updated_ns: int = 0
    reject_reason: RejectReason | None = None
    reject_message: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.TRIGGERED)

    @property
    def average_price(self) -> Decimal:
        return self.cost / self.filled if self.filled else ZERO


OrderListener = Callable[[EmulatedOrder, EmulatedFill | None], None]
MarketListener = Callable[[MarketUpdate], None]


class EmulatedVenue:
    """Accounts are named by the API key that trades them (`credentials` maps key -> secret);
    a key the venue does not know, or one revoked through the control API, fails auth."""

    def __init__(
        self,
        *,
        credentials: dict[str, str],
        instruments: list[InstrumentSpec] | None = None,
        cash: dict[str, Decimal] | None = None,
        fees: FeeSchedule | None = None,
        fee_asset: FeeAsset = FeeAsset.QUOTE,
        seed: int | None = 1,
        tick_interval: float = 0.1,
    ) -> None:
        market = MarketSettings(seed=seed)
        if instruments is not None:
            market = msgspec.structs.replace(market, instruments=instruments)
        self.instruments = {spec.symbol: spec for spec in market.instruments}
        self.credentials = dict(credentials)
        self.revoked: set[str] = set()
        opening_cash = cash or {"USDT": Decimal("1000000"), "USD": Decimal("1000000")}
        self.fees = fees or FeeSchedule()
        self.fee_asset = fee_asset
        self.exchange = SimulatedExchange(
            venue=ENGINE_VENUE, instruments=market.instruments, accounts={key: opening_cash for key in credentials},
            fees=self.fees if fee_asset is FeeAsset.QUOTE else NO_FEES, clock=time.time_ns,
        )
        # The fees charged here (fee_asset RECEIVED), per account and currency.
        self._fees_paid: dict[str, dict[str, Decimal]] = {}
        self.faults = FaultPlan()
        self.orders: dict[int, EmulatedOrder] = {}
        self._by_client_id: dict[tuple[str, str], EmulatedOrder] = {}
        self._order_ids = itertools.count(1_000_001)
        self._trade_ids = itertools.count(5_000_001)
        self._order_listeners: list[OrderListener] = []
        self._market_listeners: list[MarketListener] = []
        self._walk = RandomWalk(market)
        self._tick_interval = tick_interval
        self.last_market: dict[str, MarketUpdate] = {}
        self._feed: asyncio.Task[None] | None = None
        self.requests: list[tuple[float, str]] = []  # (monotonic time, operation): what the control API reports
        self._held: deque[tuple[float, Callable[[], None]]] = deque()  # (due, report): changes not reported yet
        self._expiring: set[int] = set()  # order ids being expired (`expire`)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._advance()  # a book exists before the first request
        self._feed = asyncio.create_task(self._run_feed(), name="emulated-market")

    async def stop(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            await asyncio.gather(self._feed, return_exceptions=True)

    # --- auth and bookkeeping -------------------------------------------------------------
    def authenticate(self, api_key: str | None) -> str:
        """The account of `api_key`; Refused(AUTH_FAILED) if unknown or revoked."""
        if not api_key or api_key not in self.credentials or api_key in self.revoked:
            raise Refused(RejectReason.AUTH_FAILED, "invalid or expired API key")
        return api_key

    def record(self, operation: str) -> None:
        self.requests.append((time.monotonic(), operation))

    # --- listeners ------------------------------------------------------------------------
    def on_order(self, listener: OrderListener) -> Callable[[], None]:
        """Call `listener` on every order change; returns a function that removes it."""
        self._order_listeners.append(listener)
        return lambda: self._order_listeners.remove(listener)

    def on_market(self, listener: MarketListener) -> Callable[[], None]:
        self._market_listeners.append(listener)
        return lambda: self._market_listeners.remove(listener)

    # --- trading --------------------------------------------------------------------------
    def place(
        self,
        account: str,
        *,
        client_order_id: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        report_after: float = 0.0,
        cancel_after_acceptance: Collection[RejectReason] = (),
    ) -> EmulatedOrder:
        """Place an order; Refused if the venue refuses it outright. An order the engine
        accepts and then cancels at once (IOC remainder, FOK) is returned, not refused.
        `report_after`: seconds before what the engine did (acceptance, fills) reaches the
        order record and the listeners; the record reads accepted meanwhile.
        `cancel_after_acceptance`: engine refusals this venue reports as an accepted order
        it then cancels (`reject_reason` says why), after `report_after`."""
        if (account, client_order_id) in self._by_client_id:
            raise Refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID, "duplicate client order id")
        if symbol not in self.instruments:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT, f"unknown symbol {symbol}")
        try:
            command = PlaceOrder(
                client_order_id=client_order_id, venue=ENGINE_VENUE, account=account, symbol=symbol, side=side,
                order_type=order_type, quantity=quantity, price=price, stop_price=stop_price,
                time_in_force=time_in_force, post_only=post_only,
            )
        except (ValueError, TypeError) as exc:  # terms the wire contract refuses (e.g. a price on a market order)
            raise Refused(RejectReason.MALFORMED, str(exc)) from None
        now = time.time_ns()
        order = EmulatedOrder(
            order_id=next(self._order_ids), client_order_id=client_order_id, account=account, symbol=symbol,
            side=side, order_type=order_type, time_in_force=time_in_force, quantity=quantity, price=price,
            stop_price=stop_price, post_only=post_only, created_ns=now, updated_ns=now,
        )
        events = self.exchange.execute(command)
        rejected = next((e for e in events if isinstance(e, OrderRejected)), None)
        if rejected is not None and rejected.reason not in cancel_after_acceptance:
            raise Refused(rejected.reason, rejected.message)
        self.orders[order.order_id] = order
        self._by_client_id[account, client_order_id] = order
        if rejected is not None:
            self._report_later(report_after, lambda: self._cancel_accepted(order, rejected))
        else:
            self._report_later(report_after, lambda: self._apply(events))
        return order

    def modify(self, order: EmulatedOrder, *, quantity: Decimal | None = None, price: Decimal | None = None,
               stop_price: Decimal | None = None) -> EmulatedOrder:
        command = ModifyOrder(
            client_order_id=order.client_order_id, modify_id=f"m{next(self._order_ids)}", venue=ENGINE_VENUE,
            account=order.account, quantity=quantity, price=price, stop_price=stop_price,
        )
        self._run(command)
        return order

    def cancel(self, order: EmulatedOrder) -> EmulatedOrder:
        if not order.is_open:
            raise Refused(RejectReason.ORDER_NOT_OPEN, "order is not open")
        self._run(CancelOrder(client_order_id=order.client_order_id, venue=ENGINE_VENUE, account=order.account))
        return order

    def expire(self, order: EmulatedOrder) -> EmulatedOrder:
        """End an open order as the venue's own doing (Binance expires the other leg of an OCO
        when one executes): the engine cancels it; its record and listeners read EXPIRED."""
        self._expiring.add(order.order_id)
        try:
            return self.cancel(order)
        finally:
            self._expiring.discard(order.order_id)

    def find(self, account: str, *, order_id: int | None = None, client_order_id: str | None = None) -> EmulatedOrder:
        order = self.orders.get(order_id) if order_id is not None else self._by_client_id.get((account, client_order_id or ""))
        if order is None or order.account != account:
            raise Refused(RejectReason.UNKNOWN_ORDER, "order does not exist")
        return order

    def open_orders(self, account: str, symbol: str | None = None) -> list[EmulatedOrder]:
        return [o for o in self.orders.values() if o.account == account and o.is_open and symbol in (None, o.symbol)]

    def fills(self, account: str, symbol: str | None = None) -> list[tuple[EmulatedOrder, EmulatedFill]]:
        return [
            (order, fill)
            for order in self.orders.values() if order.account == account and symbol in (None, order.symbol)
            for fill in order.fills
        ]

    def balances(self, account: str) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (free, locked): the engine's cash, and each long position as a balance
        of its base asset, as a spot venue holds what was bought (the engine keeps positions,
        not base balances; a short the engine allows shows no balance), less the fees this
        layer charged (never below zero: what a short paid is not held either)."""
        held = {b.currency: (b.available, b.total - b.available) for b in self.exchange.balances(account)}
        for position in self.positions(account):
            base = self.instruments[position.symbol].base
            if position.quantity > 0:
                free, locked = held.get(base, (ZERO, ZERO))
                held[base] = (free + position.quantity, locked)
        for currency, paid in self._fees_paid.get(account, {}).items():
            free, locked = held.get(currency, (ZERO, ZERO))
            held[currency] = (max(ZERO, free - paid), locked)
        return held

    def positions(self, account: str) -> list[PositionUpdate]:
        """The engine's position of every instrument the account traded (flat ones too)."""
        return self.exchange.positions(account)

    def _run(self, command: OrderCommand) -> None:
        events = self.exchange.execute(command)
        refused = next((e for e in events if isinstance(e, CommandRejected)), None)
        if refused is not None:
            raise Refused(refused.reason, refused.message)
        # A modify or cancel answers with the order's new state: what was held back happened first.
        self._release(everything=True)
        self._apply(events)

    # --- the engine's events -> order records -------------------------------------------------
    def _report_later(self, delay: float, report: Callable[[], None]) -> None:
        """Run `report` after `delay` seconds, after everything held before it (at once when
        nothing is held and there is no delay)."""
        if not delay and not self._held:
            report()
            return
        self._held.append((time.monotonic() + delay, report))
        asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self, *, everything: bool = False) -> None:
        now = time.monotonic()
        while self._held and (everything or self._held[0][0] <= now):
            self._held.popleft()[1]()

    def _cancel_accepted(self, order: EmulatedOrder, refusal: OrderRejected) -> None:
        order.status, order.reject_reason, order.reject_message = OrderStatus.CANCELLED, refusal.reason, refusal.message
        order.updated_ns = refusal.ts_event
        for listener in list(self._order_listeners):
            listener(order, None)

    def _apply(self, events: list) -> None:  # type: ignore[type-arg]
        for event in events:
            order = self._by_client_id.get((getattr(event, "account", ""), getattr(event, "client_order_id", "")))
            if order is None:
                continue  # account events, or an order placed before this process (none: no journal)
            fill = self._apply_order_event(order, event)
            order.updated_ns = event.ts_event
            for listener in list(self._order_listeners):
                listener(order, fill)

    def _apply_order_event(self, order: EmulatedOrder, event: OrderEvent) -> EmulatedFill | None:
        if isinstance(event, (OrderPartiallyFilled, OrderFilled)):
            liquidity = event.fill.liquidity
            fee, currency = event.fill.fee, event.fill.fee_currency
            if self.fee_asset is FeeAsset.RECEIVED:
                fee, currency = self._charge(order, event.fill.price, event.fill.quantity, liquidity)
            fill = EmulatedFill(
                trade_id=next(self._trade_ids), price=event.fill.price, quantity=event.fill.quantity,
                fee=fee, fee_currency=currency, fee_rate=self.fees.rate_bps(liquidity) / BPS,
                maker=liquidity is LiquiditySide.MAKER, ts=event.ts_event,
            )
            order.fills.append(fill)
            order.filled += fill.quantity
            order.cost += fill.price * fill.quantity
            order.status = OrderStatus.FILLED if isinstance(event, OrderFilled) else OrderStatus.PARTIALLY_FILLED
            return fill
        if isinstance(event, OrderAccepted):
            order.status = OrderStatus.ACCEPTED
        elif isinstance(event, OrderTriggered):
            order.triggered = True
            order.status = OrderStatus.TRIGGERED if not order.filled else order.status
        elif isinstance(event, OrderModified):
            order.quantity, order.price, order.stop_price = event.quantity, event.price, event.stop_price
        elif isinstance(event, OrderCancelled):
            order.status = OrderStatus.EXPIRED if order.order_id in self._expiring else OrderStatus.CANCELLED
        elif isinstance(event, OrderExpired):
            order.status = OrderStatus.EXPIRED
        return None

    def _charge(self, order: EmulatedOrder, price: Decimal, quantity: Decimal,
                liquidity: LiquiditySide) -> tuple[Decimal, str]:
        """The fee of a fill in the asset it brings in (FeeAsset.RECEIVED), taken from the
        account: the rate of the base quantity for a buy, of the quote amount for a sell; a
        rebate, in the asset the fill gives."""
        spec = self.instruments[order.symbol]
        in_base = (order.side is Side.BUY) == (self.fees.rate_bps(liquidity) >= 0)
        fee = self.fees.fee(quantity if in_base else price * quantity, liquidity)
        currency = spec.base if in_base else spec.quote
        paid = self._fees_paid.setdefault(order.account, {})
        paid[currency] = paid.get(currency, ZERO) + fee
        return fee, currency

    # --- the market -------------------------------------------------------------------------
    async def _run_feed(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            self._advance()

    def _advance(self) -> None:
        for update in self._walk.advance(time.time_ns()):
            self.last_market[update.symbol] = update
            trade = (update.trade.price, update.trade.size) if update.trade else None
            events = self.exchange.on_market(update.symbol, bids=update.bids or [], asks=update.asks or [], trade=trade)
            self._report_later(0.0, lambda events=events: self._apply(events))  # type: ignore[misc]
            for listener in list(self._market_listeners):
                listener(update)
