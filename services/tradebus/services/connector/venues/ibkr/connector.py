"""Interactive Brokers as a venue, through ib_async to a running TWS or IB Gateway.

ib_async speaks the TWS API socket protocol and keeps what TWS reports in memory: its
start-up (connectAsync) downloads positions, this client's open orders, completed orders,
account updates and the day's executions with their commission reports, and from then on
every openOrder / orderStatus / execDetails / commissionReport updates its Trade objects.
This connector reads that state and follows its events; what only a request answers (orders
of other programs, the day's finished orders) is asked with reqAllOpenOrders,
reqCompletedOrders and reqExecutions (`lookup`, `open_orders`, `recent_orders`).

Orders: MKT, LMT, STP, STP LMT and TRAIL, time in force DAY, GTC or IOC; our client order id
is the order reference (`orderRef`); a modify is IB's own (placeOrder again under the same
order id).
IB does not refuse a second order under a used reference, so a place whose client order id
TWS already shows is refused here as a duplicate (the base class then looks it up).
A place is answered when TWS acknowledges it (a status beyond PendingSubmit) or refuses it
(an error for its order id, mapped by codes.py); a lost connection first is an unknown
outcome, resolved by look-up. Brackets, OTO and OCO groups are IB's own (groups.py): every
leg carries its client order id as its reference, and a group is placed only after reading
what TWS holds, so a re-delivered group places no leg twice.

Connectivity: TWS unreachable at start or later is reported as the venue being unavailable
(DEGRADED, "venue unavailable: TWS at host:port unreachable ..."), retried with back-off; a
dropped connection (IB Gateway's nightly restart, TWS's daily one) ends the order stream:
the base class reconnects, ib_async downloads the state again, and the connector reconciles
(open orders, finished orders, executions) and resubscribes market data. TWS's 1100 (lost
IB's servers) reports DEGRADED until 1101 / 1102; 1101 (market data lost) resubscribes.

Pacing: TWS takes at most 50 messages per second from a client (error 100 beyond): every
request goes through the shared limiter at 45 per second, under ib_async's own throttle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ib_async import IB, AccountValue, Contract, ContractDetails, Order, Trade

from tradebus.schemas.commands import ModifyOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import Balance
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import GroupKind, MarketDataKind, RejectReason, ServiceState

from ...accounts import ReportedPosition
from ...base import Capabilities, VenueEvent
from ...errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy, VenueError
from ...remote import MarketMessage, RemoteVenueConnector
from ...tracking import OrderSnapshot
from . import codes, groups, parsing
from .config import IbkrConfig
from .feeds import REQUESTS, Feeds

log = logging.getLogger(__name__)
_LOST = object()
PENDING = frozenset({"PendingSubmit", "ApiPending"})  # TWS has not answered the place yet
LOST_BEFORE_ANSWER = -1  # not an IB code: the connection ended while a request awaited its answer


class IbkrConnector(RemoteVenueConnector[IbkrConfig]):
    default_requests_per_second = 50.0  # TWS API "Message pacing": 50 messages per second per client

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ib = IB()
        self.ib.RequestTimeout = self.config.request_timeout
        self.capabilities = Capabilities(
            order_types=frozenset(parsing.IB_ORDER_TYPES), time_in_force=frozenset(parsing.TIME_IN_FORCE),
            modify=True, market_data=frozenset(REQUESTS),
            order_groups=frozenset({GroupKind.BRACKET, GroupKind.OCO, GroupKind.OTO}),
        )
        self.feeds = Feeds(self.ib, self.venue, self.config.depth_rows)
        self._contracts: dict[str, Contract] = {}  # unified id -> qualified contract (looked up once)
        self._symbols: dict[int, str] = {}  # conId -> unified id
        self._instruments: list[Instrument] = []
        self._ib_account = self.config.ib_account
        self._updates: set[asyncio.Queue[Any]] = set()  # order stream readers
        self._cash: set[asyncio.Queue[Any]] = set()  # balance stream readers
        self._errors: dict[int, asyncio.Future[tuple[int, str]]] = {}  # order id -> its first error
        self._client_id_taken = False  # TWS said 326 to the last connection attempt
        self._refreshing = asyncio.Lock()
        self._stopping = False
        self.ib.errorEvent += self._on_error
        self.ib.orderStatusEvent += self._on_trade
        self.ib.commissionReportEvent += lambda trade, fill, report: self._on_trade(trade)
        self.ib.disconnectedEvent += self._on_disconnect
        self.ib.accountValueEvent += self._on_account_value
        # TWS streams position changes (reqPositions, subscribed at start-up), fills of other
        # programs' orders too: each asks for a read of the account, as our own fills do.
        self.ib.positionEvent += lambda position: self._account_due.set()

    # --- symbology -------------------------------------------------------------------------------
    def instruments(self) -> list[Instrument]:
        return self._instruments

    def venue_symbol(self, symbol: str) -> str:
        return str(self._contract(symbol).conId)

    def unified_symbol(self, venue_symbol: str) -> str:
        return self._symbols[int(venue_symbol)]

    def _contract(self, symbol: str) -> Contract:
        found = self._contracts.get(symbol)
        if found is None:
            raise OrderRefused(RejectReason.UNKNOWN_INSTRUMENT, f"{symbol} is not listed (venues.ibkr.symbols)")
        return found

    def _symbol(self, contract: Contract) -> str:
        return self._symbols.get(contract.conId) or parsing.unified(contract)

    # --- connection ------------------------------------------------------------------------------
    async def connect(self) -> None:
        if self.ib.isConnected():
            self.ib.disconnect()
        self._client_id_taken = False
        where = f"TWS at {self.config.host}:{self.config.port}"
        try:
            await self.ib.connectAsync(self.config.host, self.config.port, clientId=self.config.client_id,
                                       timeout=self.config.connect_timeout, account=self.config.ib_account)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.ib.disconnect()
            if self._client_id_taken:
                raise AuthFailed(f"API client id {self.config.client_id} is in use at {where}: set "
                                 f"[venues.{self.venue}] client_id to one no other program uses") from None
            unreachable = (f"{where} unreachable ({type(exc).__name__}): is TWS / IB Gateway running with its API "
                           f"enabled on that port?")
            self.report_status(ServiceState.DEGRADED, f"venue unavailable: {unreachable}")  # at once, every attempt
            raise VenueBusy(unreachable) from None
        accounts = self.ib.managedAccounts()
        if self.config.ib_account and self.config.ib_account not in accounts:
            self.ib.disconnect()
            raise AuthFailed(f"the login at {where} does not manage account {self.config.ib_account}")
        if not self.config.ib_account and len(accounts) != 1:
            self.ib.disconnect()
            raise AuthFailed(f"the login at {where} manages {len(accounts)} accounts: set [venues.{self.venue}] ib_account")
        self._ib_account = self.config.ib_account or accounts[0]
        await self._load_contracts()
        self.report_status(ServiceState.READY, "")

    async def _load_contracts(self) -> None:
        """Each configured id qualified once (contract details); cached across reconnects."""
        now = time.time_ns()
        for symbol in self.config.symbols:
            if symbol in self._contracts:
                continue
            try:
                wanted = parsing.contract(symbol)
            except OrderRefused as exc:
                log.error("instrument id not understood", extra={"symbol": symbol, "error": exc.message})
                continue
            try:
                details: list[ContractDetails] = await asyncio.wait_for(self.ib.reqContractDetailsAsync(wanted),
                                                                        self.config.request_timeout)
            except TimeoutError:
                raise VenueBusy(f"TWS did not describe {symbol} within {self.config.request_timeout} s") from None
            if len(details) != 1 or details[0].contract is None:
                log.error("instrument not found or ambiguous at IB", extra={"symbol": symbol, "matches": len(details)})
                continue
            self._contracts[symbol] = details[0].contract
            self._symbols[details[0].contract.conId] = symbol
            self._instruments.append(parsing.instrument(self.venue, symbol, details[0], now))

    async def disconnect(self) -> None:
        self._stopping = True
        self.ib.disconnect()

    def _on_disconnect(self) -> None:
        if not self._stopping:
            self.report_status(ServiceState.DEGRADED, "venue unavailable: TWS connection lost; reconnecting")
        for queue in (*self._updates, *self._cash):
            queue.put_nowait(_LOST)
        for waiter in self._errors.values():
            if not waiter.done():
                waiter.set_result((LOST_BEFORE_ANSWER, "TWS connection lost before it answered"))
        self.feeds.lost()

    def _on_error(self, req_id: int, code: int, message: str, contract: Contract | None = None) -> None:
        if code in codes.NOTICES:
            log.debug("TWS notice", extra={"code": code, "text": message})
            return
        if code in codes.FARM_BROKEN:
            log.warning("a TWS data farm is down", extra={"code": code, "text": message})
            return
        if code in codes.LOST:
            log.warning("TWS lost its connection to IB", extra={"code": code, "text": message})
            self.report_status(ServiceState.DEGRADED, f"venue unavailable: TWS reports {code} {message}")
            return
        if code in codes.RESTORED:
            self.report_status(ServiceState.READY, "")
            if code == codes.RESTORED_DATA_LOST:
                self.feeds.lost()
            return
        if code == 326:
            self._client_id_taken = True
        waiter = self._errors.get(req_id)
        if waiter is not None and not waiter.done():
            waiter.set_result((code, message))
        else:
            log.warning("TWS error", extra={"req_id": req_id, "code": code, "text": message})

    # --- orders ---------------------------------------------------------------------------------------
    def _ours(self, trade: Trade) -> bool:
        return trade.order.account in ("", self._ib_account)

    def _snapshot(self, trade: Trade) -> OrderSnapshot | None:
        if not self._ours(trade):
            return None
        return parsing.snapshot(trade, self._symbol(trade.contract), groups.links(trade, self.ib.trades()))

    def _find(self, client_order_id: str) -> Trade | None:
        """The order TWS holds under this client order id; a place TWS refused (it never had
        a permanent id) is no order."""
        found = [t for t in self.ib.trades() if self._ours(t) and parsing.client_order_id(t) == client_order_id
                 and (t.order.permId or t.orderStatus.status not in parsing.DONE)]
        return found[-1] if found else None

    @staticmethod
    def _refusal(command: PlaceOrder) -> OrderRefused | None:
        """What IB cannot take of a place, before anything is sent."""
        if command.post_only or command.reduce_only:
            return OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, "IB takes no post-only or reduce-only flag")
        if command.time_in_force not in parsing.TIME_IN_FORCE:
            return OrderRefused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, f"{command.time_in_force.value} is not offered")
        return None

    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        contract = self._contract(command.symbol)
        refusal = self._refusal(command)
        if refusal is not None:
            raise refusal
        # IB would take a second order under the same reference: what TWS holds (other programs'
        # orders included, which it reports to this client only when asked) is read first.
        if self._find(command.client_order_id) is None:
            await self._refresh_orders(executions=False)
        if self._find(command.client_order_id) is not None:
            raise OrderRefused(RejectReason.DUPLICATE_CLIENT_ORDER_ID, "TWS holds an order under this client order id")
        order = parsing.order(command, self._ib_account)
        return await self._send(lambda: self.ib.placeOrder(contract, order), modify=False)

    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        trade = self._find(command.client_order_id)
        if trade is None or trade.order.orderId <= 0:
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "not an order of this API client (IB modifies only those)")
        if trade.orderStatus.status in parsing.DONE:
            raise OrderRefused(RejectReason.ORDER_NOT_OPEN, f"order is {trade.orderStatus.status}")
        order = trade.order
        if order.orderType == "TRAIL" and (command.price is not None or command.stop_price is not None):
            # its auxPrice is the trail amount, not a stop: a modify names no trail
            raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, "a trailing stop's modify changes its quantity only")
        if command.quantity is not None:
            order.totalQuantity = float(command.quantity)
        if command.price is not None:
            order.lmtPrice = float(command.price)
        if command.stop_price is not None:
            order.auxPrice = float(command.stop_price)
        return await self._send(lambda: self.ib.placeOrder(trade.contract, order), modify=True)

    async def _send(self, place: Callable[[], Trade], *, modify: bool) -> OrderSnapshot:
        """Send a place or modify; the order as TWS acknowledges it (its next status)."""
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        try:
            trade = place()
        except ConnectionError:  # the socket went between the check and the send: nothing was sent
            raise VenueBusy("TWS not connected") from None
        await self._answer(trade, lambda updated: updated.orderStatus.status not in PENDING, already=not modify)
        found = self._snapshot(trade)
        if found is None:
            raise OutcomeUnknown("TWS answered without acknowledging the order")
        return found

    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        trade = self._find(client_order_id)
        if trade is None:
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "TWS holds no order under this client order id")
        if trade.order.orderId <= 0:
            raise OrderRefused(RejectReason.VENUE_REJECTED, "IB cancels only orders of the API client that placed them")
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        self.ib.cancelOrder(trade.order)
        await self._answer(trade, lambda updated: updated.orderStatus.status in parsing.DONE, already=False)
        return None  # the base class reads the order's final state (error 202 came with its Cancelled status)

    async def _answer(self, trade: Trade, answered: Callable[[Trade], bool], *, already: bool) -> None:
        """Wait until an update of `trade` satisfies `answered` (or it does `already`): its
        status, or its openOrder (TWS acknowledges a modify of a PreSubmitted order with an
        openOrder only: ib_async reports an unchanged status for Submitted ones alone). TWS's
        error for the order raises its taxonomy error, no answer in time OutcomeUnknown."""
        loop = asyncio.get_running_loop()
        status: asyncio.Future[Any] = loop.create_future()
        error = self._errors.setdefault(trade.order.orderId, loop.create_future())  # a group's: set before sending

        def on_status(updated: Trade) -> None:
            if updated is trade and answered(updated) and not status.done():
                status.set_result(None)

        if already and answered(trade):
            status.set_result(None)
        self.ib.orderStatusEvent += on_status
        self.ib.openOrderEvent += on_status
        try:
            done, _ = await asyncio.wait({status, error}, timeout=self.config.request_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.ib.orderStatusEvent -= on_status
            self.ib.openOrderEvent -= on_status
            self._errors.pop(trade.order.orderId, None)
        if error in done:
            code, message = error.result()
            if code == LOST_BEFORE_ANSWER:  # sent, perhaps carried out: looked up, never re-sent blindly
                raise OutcomeUnknown(message)
            raise codes.venue_error(str(code), message, changes_state=True)
        if not done:
            raise OutcomeUnknown(f"TWS did not answer within {self.config.request_timeout} s")

    # --- order groups (groups.py) ---------------------------------------------------------------------
    async def place_group(self, group: PlaceOrderGroup) -> list[VenueEvent]:
        """Legs the connector knows are answered as a place under a known id is; legs TWS
        already holds (sent before a crash) are taken up as they are; the rest are sent as one
        IB group. A leg IB cannot take refuses every leg not placed yet (a group is whole)."""
        events: list[VenueEvent] = []
        fresh: list[PlaceOrder] = []
        for leg in group.placed_orders():
            if self.tracker.knows(leg.client_order_id):
                events += self._placed_again(leg, self.tracker.placed(leg.client_order_id))
            else:
                fresh.append(leg)
        refusal = next(filter(None, map(self._group_refusal, fresh)), None)
        if refusal is not None:
            return events + self._rejected(fresh, refusal)
        if fresh:
            await self._call(lambda: self._refresh_orders(executions=False))
        at_tws = {leg.client_order_id: trade for leg in fresh if (trade := self._find(leg.client_order_id)) is not None}
        for leg in fresh:
            if leg.client_order_id in at_tws:
                events += await self._duplicate_at_venue(leg)
        to_send = [leg for leg in fresh if leg.client_order_id not in at_tws]
        if not to_send:
            return events
        first = at_tws.get(group.first.client_order_id)
        if group.kind is GroupKind.OCO:
            parent_id = 0
        elif first is None:
            parent_id = self.ib.client.getReqId()
        elif first.order.orderId > 0 and first.orderStatus.status not in parsing.DONE:
            parent_id = first.order.orderId
        else:
            return events + self._rejected(to_send, OrderRefused(
                RejectReason.ORDER_NOT_OPEN, f"the group's first order is {first.orderStatus.status} at TWS"))
        orders = groups.ib_orders(group, to_send, self._ib_account, parent_id)
        return events + await self._send_legs(self._contract(group.first.symbol), to_send, orders)

    def _group_refusal(self, leg: PlaceOrder) -> OrderRefused | None:
        violation = self._instrument_violation(leg)
        return OrderRefused(*violation) if violation is not None else self._refusal(leg)

    def _rejected(self, legs: list[PlaceOrder], refusal: OrderRefused) -> list[VenueEvent]:
        now = time.time_ns()
        return [event for leg in legs for event in self.tracker.rejected(leg, refusal.reason, refusal.message, now)]

    async def _send_legs(self, contract: Contract, legs: list[PlaceOrder], orders: list[Order]) -> list[VenueEvent]:
        """Send a group's orders, then each leg's answer. TWS's error for any of them may come
        before the others are sent: every order's error waiter is set first."""
        if not self.ib.isConnected():
            return self._rejected(legs, OrderRefused(RejectReason.VENUE_UNAVAILABLE, "TWS not connected"))
        loop = asyncio.get_running_loop()
        for order in orders:
            order.orderId = order.orderId or self.ib.client.getReqId()
            self._errors[order.orderId] = loop.create_future()
        trades: list[Trade] = []
        for leg, order in zip(legs, orders, strict=True):
            self.tracker.submitting(leg)
            await self.limiter.acquire()
            try:
                trades.append(self.ib.placeOrder(contract, order))
            except ConnectionError:  # this leg and the rest never left; what did is looked up by reconciliation
                log.warning("TWS connection lost while sending a group", extra={"client_order_id": leg.client_order_id})
                break
        answers = await asyncio.gather(*(self._answer(trade, lambda t: t.orderStatus.status not in PENDING, already=True)
                                         for trade in trades), return_exceptions=True)
        events = self._rejected(legs[len(trades):], OrderRefused(
            RejectReason.VENUE_UNAVAILABLE, "TWS connection lost before this order of the group was sent"))
        for leg, trade, answer in zip(legs, trades, answers, strict=False):
            snapshot = self._snapshot(trade)
            if isinstance(answer, OrderRefused):
                events += self.tracker.rejected(leg, answer.reason, answer.message, time.time_ns())
            elif isinstance(answer, VenueError) or snapshot is None:
                log.warning("group leg's outcome unknown; left for reconciliation",
                            extra={"client_order_id": leg.client_order_id})
            elif isinstance(answer, BaseException):
                raise answer
            else:
                events += await self._track(snapshot)
        for order in orders:
            self._errors.pop(order.orderId, None)
        return events

    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        trade = self._find(client_order_id)
        if trade is None:
            await self._refresh_orders()
            trade = self._find(client_order_id)
        return None if trade is None else self._snapshot(trade)

    async def _refresh_orders(self, *, executions: bool = True) -> None:
        """Every order TWS holds for the account today: open ones of every client, finished
        ones, and (`executions`) the executions with their commission reports."""
        # One at a time: ib_async keys these requests by name, a second one would orphan the first.
        async with self._refreshing:
            if not self.ib.isConnected():
                raise VenueBusy("TWS not connected")
            try:
                await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), self.config.request_timeout)
                await asyncio.wait_for(self.ib.reqCompletedOrdersAsync(apiOnly=False), self.config.request_timeout)
                if executions:
                    await asyncio.wait_for(self.ib.reqExecutionsAsync(), self.config.request_timeout)
            except ConnectionError:
                raise VenueBusy("TWS not connected") from None
            except TimeoutError:
                raise VenueBusy(f"TWS did not list its orders within {self.config.request_timeout} s") from None

    async def open_orders(self) -> list[OrderSnapshot]:
        await self._refresh_orders()
        return [s for s in map(self._snapshot, self.ib.openTrades()) if s is not None]

    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        """The day's orders TWS listed (IB keeps no older ones): a finished order it lists
        without a time of its own (no fill, no update heard) counts as recent."""
        await self._refresh_orders()
        return [s for s in map(self._snapshot, self.ib.trades()) if s is not None and (s.ts == 0 or s.ts >= since_ns)]

    def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        return self._follow(self._updates)

    async def _follow(self, readers: set[asyncio.Queue[Any]]) -> AsyncIterator[Any]:
        """What the handlers put on a reader's queue, until the connection is lost."""
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        readers.add(queue)
        try:
            while True:
                item = await queue.get()
                if item is _LOST:
                    raise VenueBusy("TWS connection lost")
                yield item
        finally:
            readers.discard(queue)

    def _on_trade(self, trade: Trade) -> None:
        found = self._snapshot(trade)
        if found is not None:
            for queue in self._updates:
                queue.put_nowait(found)

    # --- market data and the account ---------------------------------------------------------------
    def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        return self.feeds.stream(kind, symbol, self._contract(symbol))

    async def balances(self) -> list[Balance]:
        """Cash per currency as TWS reports it (account updates: CashBalance)."""
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        return [balance for balance in map(self._cash_balance, self.ib.accountValues(self._ib_account))
                if balance is not None]

    def watch_balances(self) -> AsyncIterator[list[Balance]]:
        """TWS's account updates (reqAccountUpdates, subscribed by ib_async's start-up) as they come."""
        return self._follow(self._cash)

    def _on_account_value(self, value: AccountValue) -> None:
        balance = self._cash_balance(value)
        if balance is not None:
            for queue in self._cash:
                queue.put_nowait([balance])

    def _cash_balance(self, value: AccountValue) -> Balance | None:
        if value.tag != "CashBalance" or value.currency in ("", "BASE") or value.account != self._ib_account:
            return None
        amount = parsing.number(value.value)
        return Balance(currency=value.currency, total=amount, available=amount)

    async def positions(self) -> list[ReportedPosition]:
        if not self.ib.isConnected():
            raise VenueBusy("TWS not connected")
        return [parsing.position(p, self._symbol(p.contract)) for p in self.ib.positions(self._ib_account)]
