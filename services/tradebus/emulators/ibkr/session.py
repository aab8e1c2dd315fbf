"""One TWS API connection: the handshake, then each request answered as TWS answers it.

Start-up as TWS does it: the client's `API\\0` and version range, our version and connection
time; on startApi (with a client id no other connection holds, else error 326 and the
connection is closed) nextValidId, managedAccounts and the data farms' "connection is OK"
notices (2104, 2106, 2158). Every list request ends with its end marker (openOrderEnd,
execDetailsEnd, positionEnd, accountDownloadEnd, completedOrdersEnd, contractDataEnd, ...),
which is what ib_async's start-up waits for.

Faults (emulators/faults.py) apply to the requests named `place`, `cancel` and `lookup`
(reqOpenOrders, reqAllOpenOrders, reqCompletedOrders, reqExecutions): `rate_limit` answers
error 100 and drops the request, `lost` drops it and then the connection, `timeout` carries
it out without answering and then drops the connection. Beyond 50 messages per second the
message is refused with error 100 as well (TWS API "Message pacing").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from tradebus.schemas.values import OrderType, RejectReason, TimeInForce
from tradebus.simulator.market import MarketUpdate

from ..faults import Fault, FaultKind
from ..server import RequestLimit
from ..venue import Refused
from . import listings, render
from .groups import Terms
from .listings import Listing
from .render import IbOrder
from .trailing import Trail
from .wire import SERVER_VERSION, Field, In, Out, frame, read_handshake, read_message

if TYPE_CHECKING:
    from .app import IbkrEmulator

log = logging.getLogger(__name__)
ORDER_TYPES = {"MKT": OrderType.MARKET, "LMT": OrderType.LIMIT, "STP": OrderType.STOP, "STP LMT": OrderType.STOP_LIMIT,
               "TRAIL": OrderType.TRAILING_STOP}
# placeOrder's fields past the parent id (ib_async's client.placeOrder at SERVER_VERSION, not a BAG):
OCA_TYPE = 47
DELTA_NEUTRAL_TYPE = 65  # when set, 8 fields of its leg follow
TRAILING_PERCENT = 70
TIFS = {"DAY": TimeInForce.DAY, "GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "": TimeInForce.DAY}
# TWS's texts for the refusals the engine decides (IBKR message codes; 201's margin text as
# IB words it, see connector/venues/ibkr/codes.py).
REFUSALS = {
    RejectReason.INSUFFICIENT_FUNDS: (201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE "
                                           "DESIRED POSITION YOUR NET LIQ [1000000.00 USD] MUST EXCEED THE MARGIN REQ "
                                           "[0 USD]"),
    RejectReason.TICK_SIZE: (110, "The price does not conform to the minimum price variation for this contract."),
    RejectReason.LOT_SIZE: (10318, "This order doesn't support fractional quantity trading"),
    RejectReason.UNKNOWN_INSTRUMENT: (200, "No security definition has been found for the request"),
}
MODIFY_REFUSED = (105, "Order being modified does not match original order.")
FARMS = ((2104, "Market data farm connection is OK:usfarm"), (2106, "HMDS data farm connection is OK:ushmds"),
         (2158, "Sec-def data farm connection is OK:secdefnj"))
Handler = Callable[[list[str]], Awaitable[None] | None]


class TwsSession:
    def __init__(self, emulator: IbkrEmulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.emulator = emulator
        self.reader, self.writer = reader, writer
        self.client_id: int | None = None
        self.api_started = False
        self.limit = RequestLimit(emulator.requests_per_second)
        self.quotes: dict[int, Listing] = {}  # reqMktData id -> contract
        # reqMktDepth id -> contract, rows, the levels shown per side (0 ask, 1 bid)
        self.depth: dict[int, tuple[Listing, int, list[list[tuple[Decimal, Decimal]]]]] = {}
        self.bars: dict[int, Listing] = {}  # reqRealTimeBars id -> contract
        self.account_updates: str | None = None  # the account reqAccountUpdates follows
        self.positions_followed = False  # reqPositions: every position change is sent until cancelPositions
        self.handlers: dict[int, Handler] = {
            In.START_API: self._start_api, In.REQ_IDS: self._req_ids, In.REQ_CURRENT_TIME: self._current_time,
            In.REQ_MANAGED_ACCTS: self._managed_accounts, In.REQ_CONTRACT_DETAILS: self._contract_details,
            In.PLACE_ORDER: self._place, In.CANCEL_ORDER: self._cancel, In.REQ_GLOBAL_CANCEL: self._global_cancel,
            In.REQ_OPEN_ORDERS: self._open_orders, In.REQ_ALL_OPEN_ORDERS: self._open_orders,
            In.REQ_AUTO_OPEN_ORDERS: _ignore, In.REQ_COMPLETED_ORDERS: self._completed_orders,
            In.REQ_EXECUTIONS: self._executions, In.REQ_POSITIONS: self._positions,
            In.CANCEL_POSITIONS: self._cancel_positions,
            In.REQ_ACCOUNT_UPDATES: self._account_updates, In.REQ_ACCOUNT_UPDATES_MULTI: self._account_updates_multi,
            In.CANCEL_ACCOUNT_UPDATES_MULTI: _ignore, In.REQ_ACCOUNT_SUMMARY: self._account_summary,
            In.CANCEL_ACCOUNT_SUMMARY: _ignore, In.REQ_MKT_DATA: self._market_data,
            In.CANCEL_MKT_DATA: self._cancel_market_data, In.REQ_MKT_DEPTH: self._market_depth,
            In.CANCEL_MKT_DEPTH: self._cancel_market_depth, In.REQ_MARKET_DATA_TYPE: _ignore,
            In.REQ_HISTORICAL_DATA: self._historical_data, In.CANCEL_HISTORICAL_DATA: _ignore,
            In.REQ_REAL_TIME_BARS: self._real_time_bars, In.CANCEL_REAL_TIME_BARS: self._cancel_real_time_bars,
        }

    # --- the connection ------------------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            low, high = await read_handshake(self.reader)
            if not low <= SERVER_VERSION <= high:
                return  # TWS closes a connection whose versions it does not speak
            self.send([SERVER_VERSION, time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime())])
            while True:
                fields = await read_message(self.reader)
                await self._dispatch(fields)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.writer.close()

    def send(self, fields: Sequence[Field]) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(fields))

    def send_all(self, messages: Sequence[Sequence[Field]]) -> None:
        for fields in messages:
            self.send(fields)

    async def _dispatch(self, fields: list[str]) -> None:
        message = int(fields[0])
        if not self.limit.allow():
            self.emulator.limit.hits += 1  # what the control API's stats report
            self.send(render.error(-1, 100, f"Max rate of messages per second has been exceeded:max=50 rec={message}"))
            return
        handler = self.handlers.get(message)
        if handler is None:
            log.debug("TWS request not emulated", extra={"message": message})
            return
        if message != In.START_API and not self.api_started:
            return
        result = handler(fields)
        if result is not None:
            await result

    async def _fault(self, operation: str, req_id: int) -> Fault | None:
        """The fault armed for this request, if any, once what it does before the work is done."""
        self.emulator.venue.record(operation)
        fault = self.emulator.venue.faults.take(operation)
        if fault is None:
            return None
        if fault.kind is FaultKind.RATE_LIMIT:
            self.send(render.error(req_id, 100, "Max rate of messages per second has been exceeded:max=50 rec=3"))
        elif fault.kind is FaultKind.LOST:
            await asyncio.sleep(fault.delay)
            self.close()
        return fault

    async def _fault_after(self, fault: Fault | None) -> None:
        if fault is not None and fault.kind is FaultKind.TIMEOUT:
            await asyncio.sleep(fault.delay)
            self.close()

    # --- start-up -----------------------------------------------------------------------------------
    def _start_api(self, fields: list[str]) -> None:
        client_id = int(fields[2])
        if self.emulator.client_id_in_use(client_id):
            self.send(render.error(-1, 326, "Unable to connect as the client id is already in use. Retry with a "
                                            "unique client id."))
            self.close()
            return
        self.client_id, self.api_started = client_id, True
        self.send([Out.NEXT_VALID_ID, 1, self.emulator.next_order_id(client_id)])
        self.send([Out.MANAGED_ACCTS, 1, ",".join(self.emulator.accounts)])
        for code, text in FARMS:
            self.send(render.error(-1, code, text))

    def _req_ids(self, fields: list[str]) -> None:
        assert self.client_id is not None
        self.send([Out.NEXT_VALID_ID, 1, self.emulator.next_order_id(self.client_id)])

    def _current_time(self, fields: list[str]) -> None:
        self.send([Out.CURRENT_TIME, 1, int(time.time())])

    def _managed_accounts(self, fields: list[str]) -> None:
        self.send([Out.MANAGED_ACCTS, 1, ",".join(self.emulator.accounts)])

    # --- contracts ------------------------------------------------------------------------------------
    def _contract_details(self, fields: list[str]) -> None:
        req_id, contract = int(fields[2]), fields[3:15]
        found = listings.find(contract[0], contract[1], contract[2], contract[3], contract[4], contract[5], contract[9])
        if not found:
            self.send(render.error(req_id, 200, "No security definition has been found for the request"))
            return
        day = time.strftime("%Y%m%d", time.gmtime())
        self.send_all([render.contract_details(req_id, listing, day) for listing in found])
        self.send([Out.CONTRACT_DATA_END, 1, req_id])

    def _listing(self, contract: list[str]) -> Listing | None:
        found = listings.find(contract[0], contract[1], contract[2], contract[3], contract[4], contract[5], contract[9])
        return found[0] if len(found) == 1 else None

    # --- orders ------------------------------------------------------------------------------------
    async def _place(self, fields: list[str]) -> None:
        assert self.client_id is not None
        order_id = int(fields[1])
        fault = await self._fault("place", order_id)
        if fault is not None and fault.kind in (FaultKind.RATE_LIMIT, FaultKind.LOST):
            return
        silent = fault is not None and fault.kind is FaultKind.TIMEOUT
        known = self.emulator.find(self.client_id, order_id)
        if known is not None:
            self._modify(order_id, known[0], fields, silent=silent)
        else:
            self._new_order(order_id, fields, silent=silent)
        await self._fault_after(fault)

    def _new_order(self, order_id: int, fields: list[str], *, silent: bool) -> None:
        assert self.client_id is not None
        listing = self._listing(fields[2:14])
        side = self.emulator.side_of(fields[16])
        order_type = ORDER_TYPES.get(fields[18])
        account = fields[23] or (self.emulator.accounts[0] if len(self.emulator.accounts) == 1 else "")
        if listing is None:
            return self._refuse(order_id, 200, "No security definition has been found for the request", silent)
        if side is None or order_type is None or fields[21] not in TIFS:
            return self._refuse(order_id, 321, f"Error validating request:-'bO' : cause - Invalid order type or side "
                                              f"({fields[16]} {fields[18]} {fields[21]})", silent)
        if account not in self.emulator.accounts:
            return self._refuse(order_id, 321, "Error validating request:-'bO' : cause - Invalid account", silent)
        try:
            quantity = Decimal(fields[17])
            limit = _price(fields[19]) if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
            stop = _price(fields[20]) if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) else None
            trail = _trail(fields) if order_type is OrderType.TRAILING_STOP else None
            oca_type = int(fields[OCA_TYPE] or 0) if len(fields) > OCA_TYPE else 0
        except (InvalidOperation, ValueError):
            return self._refuse(order_id, 321, "Error validating request:-'bO' : cause - invalid number", silent)
        if trail is not None and (trail.amount is None) == (trail.percent is None):
            return self._refuse(order_id, 321, "Error validating request:-'bO' : cause - a TRAIL order needs a trailing "
                                              "amount or a trailing percent", silent)
        reference = fields[26]
        engine_id = reference if reference and reference not in self.emulator.orders else f"perm:{order_id}.{self.client_id}"
        ib = IbOrder(order_id=order_id, client_id=self.client_id, perm_id=next(self.emulator.perm_ids),
                     account=account, listing=listing, tif=fields[21] or "DAY", order_ref=reference,
                     oca_group=fields[22], oca_type=oca_type, trail=trail)
        ib.transmit, ib.parent_id = fields[27] != "0", int(fields[28] or 0)
        self.emulator.orders[engine_id] = ib
        if silent:  # carried out, never answered: this connection hears nothing more of it
            ib.client_id = -1
        terms = Terms(symbol=listing.symbol, side=side, order_type=order_type, quantity=quantity, price=limit,
                      stop_price=stop, time_in_force=TIFS[fields[21]])
        try:
            self.emulator.groups.submit(engine_id, ib, terms)
        except Refused as exc:
            del self.emulator.orders[engine_id]
            self._refuse(order_id, *refusal_of(exc), silent)
        if silent:
            ib.client_id = self.client_id

    def _modify(self, order_id: int, engine_id: str, fields: list[str], *, silent: bool) -> None:
        order = self.emulator.record(engine_id)
        if not order.is_open:
            return self._refuse(order_id, 104, "Can't modify a filled order.", silent)
        try:
            quantity, limit, stop = Decimal(fields[17]), _price(fields[19]), _price(fields[20])
            if engine_id in self.emulator.groups.waiting:  # a child waiting for its parent: new terms when it works
                self.emulator.groups.amend(engine_id, quantity, order.price and limit, order.stop_price and stop)
                self.emulator.report(order)
                return None
            if engine_id in self.emulator.trailing.working:  # a TRAIL's size (its auxPrice is its trail)
                self.emulator.resize(engine_id, quantity)
                return None
            self.emulator.venue.modify(
                order, quantity=quantity if quantity != order.quantity else None,
                price=limit if order.price is not None and limit != order.price else None,
                stop_price=stop if order.stop_price is not None and stop != order.stop_price else None)
        except Refused as exc:
            self._refuse(order_id, *REFUSALS.get(exc.reason, MODIFY_REFUSED), silent)
        except (InvalidOperation, ValueError):
            self._refuse(order_id, *MODIFY_REFUSED, silent)

    def _refuse(self, order_id: int, code: int, text: str, silent: bool) -> None:
        if not silent:
            self.send(render.error(order_id, code, text))

    async def _cancel(self, fields: list[str]) -> None:
        assert self.client_id is not None
        order_id = int(fields[2])
        fault = await self._fault("cancel", order_id)
        if fault is not None and fault.kind in (FaultKind.RATE_LIMIT, FaultKind.LOST):
            return
        known = self.emulator.find(self.client_id, order_id)
        if known is None:
            self.send(render.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."))
        else:
            order = self.emulator.record(known[0])
            if not order.is_open:
                self.send(render.error(order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be "
                                                        f"cancelled, state: {render.status_text(order)}."))
            else:
                self.send(render.error(order_id, 202, "Order Canceled - reason:"))
                self.emulator.cancel(known[0])
        await self._fault_after(fault)

    def _global_cancel(self, fields: list[str]) -> None:
        for engine_id in list(self.emulator.orders):
            self.emulator.cancel(engine_id)

    def _visible(self, ib: IbOrder, every_client: bool) -> bool:
        return every_client or self.client_id in (0, ib.client_id)

    async def _open_orders(self, fields: list[str]) -> None:
        fault = await self._fault("lookup", -1)
        if fault is not None and fault.kind is not FaultKind.TIMEOUT:
            return
        every_client = int(fields[0]) == In.REQ_ALL_OPEN_ORDERS
        for engine_id, ib in list(self.emulator.orders.items()):
            order = self.emulator.record(engine_id)
            if order.is_open and self._visible(ib, every_client):
                self.send_all([render.open_order(ib, order), render.order_status(ib, order)])
        self.send([Out.OPEN_ORDER_END, 1])

    async def _completed_orders(self, fields: list[str]) -> None:
        fault = await self._fault("lookup", -1)
        if fault is not None and fault.kind is not FaultKind.TIMEOUT:
            return
        api_only = fields[1] == "1"
        for engine_id, ib in list(self.emulator.orders.items()):
            order = self.emulator.record(engine_id)
            if not order.is_open and not (api_only and ib.client_id == 0):
                self.send(render.completed_order(ib, order))
        self.send([Out.COMPLETED_ORDERS_END])

    async def _executions(self, fields: list[str]) -> None:
        req_id, client_filter, account_filter = int(fields[2]), fields[3], fields[4]
        fault = await self._fault("lookup", req_id)
        if fault is not None and fault.kind is not FaultKind.TIMEOUT:
            return
        for execution in self.emulator.executions:
            ib = self.emulator.orders[execution.engine_id]
            if client_filter not in ("", "0") and str(ib.client_id) != client_filter:
                continue
            if account_filter and account_filter != execution.account:
                continue
            order = self.emulator.record(execution.engine_id)
            self.send(render.exec_details(req_id, ib, order, execution.fill, execution.exec_id))
            self.send(render.commission_report(execution.exec_id, execution.commission, ib.listing.currency))
        self.send([Out.EXECUTION_DATA_END, 1, req_id])

    # --- the account -----------------------------------------------------------------------------
    def _positions(self, fields: list[str]) -> None:
        self.positions_followed = True
        for account in self.emulator.accounts:
            for listing, quantity, average, _ in self.emulator.positions(account):
                self.send(render.position(account, listing, quantity, average))
        self.send([Out.POSITION_END, 1])

    def _account_updates(self, fields: list[str]) -> None:
        subscribe, account = fields[2] == "1", fields[3] or (self.emulator.accounts or [""])[0]
        self.account_updates = account if subscribe else None
        if subscribe:
            self._send_account(account)
            self.send([Out.ACCT_DOWNLOAD_END, 1, account])

    def _cancel_positions(self, fields: list[str]) -> None:
        self.positions_followed = False

    def account_changed(self, account: str, symbol: str) -> None:
        """A fill moved `symbol`'s position: followers of the account and of positions hear of it."""
        if self.account_updates == account:
            self._send_account(account)
        if self.positions_followed:
            for listing, quantity, average, _ in self.emulator.positions(account):
                if listing.symbol == symbol:
                    self.send(render.position(account, listing, quantity, average))

    def _send_account(self, account: str) -> None:
        self.send_all(render.account_values(account, self.emulator.account_values(account)))
        for listing, quantity, average, realized in self.emulator.positions(account):
            price = self.emulator.last_price(listing)
            self.send(render.portfolio(account, listing, quantity, price, average, (price - average) * quantity,
                                       realized))
        self.send([Out.ACCT_UPDATE_TIME, 1, time.strftime("%H:%M", time.gmtime())])

    def _account_updates_multi(self, fields: list[str]) -> None:
        req_id, account = int(fields[2]), fields[3]
        self.send_all(render.account_multi(req_id, account, self.emulator.account_values(account)))
        self.send([Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id])

    def _account_summary(self, fields: list[str]) -> None:
        req_id, tags = int(fields[2]), set(fields[4].split(","))
        for account in self.emulator.accounts:
            for key, value, currency in self.emulator.account_values(account):
                if key in tags or "All" in tags:
                    self.send([Out.ACCOUNT_SUMMARY, 1, req_id, account, key, value, currency])
        self.send([Out.ACCOUNT_SUMMARY_END, 1, req_id])

    # --- market data ---------------------------------------------------------------------------------
    def _market_data(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        listing = self._listing(fields[3:15])
        if listing is None:
            self.send(render.error(req_id, 200, "No security definition has been found for the request"))
            return
        self.quotes[req_id] = listing
        self.send([Out.TICK_REQ_PARAMS, req_id, listing.min_tick, "9c0001", 3])
        self.send([Out.MARKET_DATA_TYPE, 1, req_id, 1])
        update = self.emulator.venue.last_market.get(listing.symbol)
        if update is not None:
            self._ticks(req_id, update)

    def _cancel_market_data(self, fields: list[str]) -> None:
        self.quotes.pop(int(fields[2]), None)

    def _market_depth(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        listing = self._listing([fields[3], fields[4], fields[5], fields[6], fields[7], fields[8], fields[9],
                                 fields[10], fields[11], fields[12], fields[13], fields[14]])
        if listing is None:
            self.send(render.error(req_id, 200, "No security definition has been found for the request"))
            return
        self.depth[req_id] = (listing, int(fields[15] or 5), [[], []])
        update = self.emulator.venue.last_market.get(listing.symbol)
        if update is not None:
            self._depth(req_id, update)

    def _cancel_market_depth(self, fields: list[str]) -> None:
        self.depth.pop(int(fields[2]), None)

    def market(self, listing: Listing, update: MarketUpdate) -> None:
        for req_id, subscribed in list(self.quotes.items()):
            if subscribed is listing:
                self._ticks(req_id, update)
        for req_id, (subscribed, _, _) in list(self.depth.items()):
            if subscribed is listing:
                self._depth(req_id, update)

    def _ticks(self, req_id: int, update: MarketUpdate) -> None:
        """Bid (1) and ask (2) with their sizes, last (4) with its size: tickPrice carries both."""
        if update.bids and update.asks:
            self.send(render.tick_price(req_id, 1, update.bids[0][0], update.bids[0][1]))
            self.send(render.tick_price(req_id, 2, update.asks[0][0], update.asks[0][1]))
        if update.trade is not None:
            self.send(render.tick_price(req_id, 4, update.trade.price, update.trade.size))

    def _depth(self, req_id: int, update: MarketUpdate) -> None:
        """Rows as TWS sends them: inserted the first time they exist, updated when their price
        or size changed, deleted when gone; an unchanged row is not sent."""
        _, rows, shown = self.depth[req_id]
        for side, levels in ((1, update.bids), (0, update.asks)):
            if levels is None:
                continue
            was, now = shown[side], [(price, size) for price, size in levels[:rows]]
            for position, level in enumerate(now):
                if position >= len(was):
                    self.send(render.depth_l2(req_id, position, 0, side, *level))
                elif was[position] != level:
                    self.send(render.depth_l2(req_id, position, 1, side, *level))
            for position in range(len(now), len(was)):
                self.send(render.depth_l2(req_id, position, 2, side, *was[position]))
            shown[side] = now

    def _real_time_bars(self, fields: list[str]) -> None:
        """reqRealTimeBars: 5-second bars only (the only size TWS offers), each sent as it ends."""
        req_id = int(fields[2])
        listing = self._listing(fields[3:15])
        if listing is None:
            self.send(render.error(req_id, 200, "No security definition has been found for the request"))
            return
        self.bars[req_id] = listing

    def _cancel_real_time_bars(self, fields: list[str]) -> None:
        self.bars.pop(int(fields[2]), None)

    def bar_ended(self, end: int) -> None:
        for req_id, listing in list(self.bars.items()):
            bar = self.emulator.history.last_bar(listing.symbol, 5, end)
            if bar is not None:
                self.send([Out.REAL_TIME_BARS, 3, req_id, *bar])

    def _historical_data(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        listing = self._listing(fields[2:14])
        if listing is None:
            self.send(render.error(req_id, 200, "No security definition has been found for the request"))
            return
        self.send(self.emulator.bars(req_id, listing, bar_size=fields[16], duration=fields[17],
                                     epoch_dates=fields[20] == "2"))


def refusal_of(refused: Refused) -> tuple[int, str]:
    """TWS's code and text for a refusal the engine decided."""
    return REFUSALS.get(refused.reason, (201, f"Order rejected - reason:{refused.message}"))


def _ignore(fields: list[str]) -> None:
    """Requests TWS takes without an answer this emulator needs to give."""


def _trail(fields: list[str]) -> Trail:
    """A TRAIL's trail amount (auxPrice) and trailing percent."""
    shift = 8 if fields[DELTA_NEUTRAL_TYPE] else 0
    return Trail(amount=_price(fields[20]), percent=_price(fields[TRAILING_PERCENT + shift]))


def _price(text: str) -> Decimal | None:
    return None if text in ("", "0", "0.0") or text.startswith("1.7976931348623157") else Decimal(text)
