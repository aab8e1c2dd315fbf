"""An emulated TWS / IB Gateway: the TWS API socket protocol (session.py) on its own port,
beside the emulators' HTTP control API, with the simulated exchange behind it.

Accounts are the IB account codes the emulator is created with (`credentials` keys; TWS has
no API keys: its user logs it in). Orders are keyed in the engine by their order reference
(our client order id) where it is unused, else by TWS's permanent id: IB itself does not
refuse a second order under the same reference. An order's updates (openOrder, orderStatus,
execDetails, commissionReport) go to the client that placed it and to client id 0, as TWS
routes them; orders placed through the control API are "placed in TWS itself" (client 0,
order id 0), visible to others through reqAllOpenOrders, reqCompletedOrders and
reqExecutions.

Simplifications: the market never closes; futures' and options' cash moves by price x
quantity without their multiplier (the engine has no multipliers); commissions follow IB's
fixed schedule (commissions.py) and are taken from the account's cash as TWS reports it; no
market data permissions are checked. Brackets (parentId / transmit) and OCA groups:
groups.py; TRAIL orders: trailing.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from tradebus.schemas.values import RejectReason, Side
from tradebus.simulator.market import MarketUpdate
from tradebus.simulator.rules import FeeSchedule, InstrumentSpec

from ..server import Emulator, _json
from ..venue import EmulatedFill, EmulatedOrder, EmulatedVenue, Refused
from . import render
from .bars import BarRecorder, UnknownBarSize
from .commissions import order_commission
from .groups import Groups
from .listings import LISTINGS, Listing
from .render import IbOrder
from .session import TwsSession, refusal_of
from .trailing import Trailing
from .wire import Field

log = logging.getLogger(__name__)
ZERO = Decimal(0)
BY_SYMBOL = {listing.symbol: listing for listing in LISTINGS}


class Downtime(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    seconds: float


class Connectivity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    lost: bool
    data_lost: bool = False


@dataclass(frozen=True)
class Execution:
    account: str
    engine_id: str  # the order's key in the engine
    fill: EmulatedFill
    exec_id: str
    commission: Decimal


class IbkrEmulator(Emulator):
    name = "ibkr"
    requests_per_second = 50  # TWS API: at most 50 messages per second from one client (error 100 beyond)
    fees = FeeSchedule(maker_bps=ZERO, taker_bps=ZERO)  # IB charges commissions per order (commissions.py)

    @classmethod
    def listed_instruments(cls) -> list[InstrumentSpec]:
        return [listing.spec() for listing in LISTINGS]

    @classmethod
    def create(cls, *, credentials: dict[str, str], seed: int | None = 1, tick_interval: float = 0.1) -> Emulator:
        venue = EmulatedVenue(credentials=credentials, instruments=cls.listed_instruments(), fees=cls.fees, seed=seed,
                              tick_interval=tick_interval, cash={"USD": Decimal("1000000")})
        return cls(venue)

    def __init__(self, venue: EmulatedVenue) -> None:
        super().__init__(venue)
        self.connections: set[TwsSession] = set()  # the TWS API connections (each a session.py TwsSession)
        self.orders: dict[str, IbOrder] = {}  # engine client order id -> what TWS shows of it
        self.executions: list[Execution] = []
        self.commissions: dict[str, Decimal] = {}  # account -> commissions paid (USD)
        self.perm_ids = itertools.count(1_376_327_563)
        self._exec_ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._bar_clock: asyncio.Task[None] | None = None
        self.tws_port = 0
        self.history = BarRecorder()
        self.groups = Groups(self)
        self.trailing = Trailing(self)
        venue.on_order(self._on_order)
        venue.on_market(self._on_market)

    @property
    def accounts(self) -> list[str]:
        return sorted(account for account in self.venue.credentials if account not in self.venue.revoked)

    # --- serving ----------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        url = await super().start(host, port)
        self._bar_clock = asyncio.create_task(self._end_bars(), name="ibkr-real-time-bars")
        self._server = await asyncio.start_server(self._accept, host, 0)
        self.tws_port = self._server.sockets[0].getsockname()[1]
        log.info("TWS API listening", extra={"venue": self.name, "port": self.tws_port})
        return url

    async def stop(self) -> None:
        for task in (self._restarting, self._bar_clock):
            if task is not None:
                task.cancel()
        if self._server is not None:
            self._server.close()
        await super().stop()

    async def drop_streams(self) -> None:
        """TWS's API connections are the venue's streams: every one is closed."""
        await super().drop_streams()
        for session in list(self.connections):
            session.close()

    async def restart(self, seconds: float) -> None:
        """TWS / IB Gateway's daily restart: every API connection closed, the port refusing
        connections for `seconds`, then listening again on the same port."""
        assert self._server is not None
        host = self._server.sockets[0].getsockname()[0]
        self._server.close()
        for session in list(self.connections):
            session.close()
        await asyncio.sleep(seconds)
        self._server = await asyncio.start_server(self._accept, host, self.tws_port)

    def ib_connectivity(self, *, lost: bool, data_lost: bool = False) -> None:
        """IB's servers lost (1100) or back (1101: market data lost, 1102: kept), as TWS says it
        to every API connection around IB's nightly reset (IBKR message codes)."""
        code, text = (1100, "Connectivity between IB and Trader Workstation has been lost.") if lost else (
            (1101, "Connectivity between IB and TWS has been restored- data lost.") if data_lost
            else (1102, "Connectivity between IB and TWS has been restored- data maintained."))
        if not lost and data_lost:  # TWS drops every market data subscription: clients send them again
            for session in self.connections:
                session.quotes.clear()
                session.depth.clear()
        for session in list(self.connections):
            session.send(render.error(-1, code, text))

    async def _connectivity(self, request: web.Request) -> web.Response:
        state = msgspec.json.decode(await request.read(), type=Connectivity)
        self.ib_connectivity(lost=state.lost, data_lost=state.data_lost)
        return _json(state)

    async def _restart(self, request: web.Request) -> web.Response:
        seconds = msgspec.json.decode(await request.read(), type=Downtime).seconds
        self._restarting = asyncio.create_task(self.restart(seconds))
        return _json({"seconds": seconds})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = TwsSession(self, reader, writer)
        self.connections.add(session)
        try:
            await session.serve()
        finally:
            self.connections.discard(session)
            session.close()

    def routes(self, app: web.Application) -> None:
        """No HTTP API (TWS speaks its socket protocol only, on `tws_port`); two controls:
        POST /__emulator/ibkr/restart {"seconds": N}, TWS's daily restart (`restart`), and
        POST /__emulator/ibkr/connectivity {"lost": bool, "data_lost": bool}, IB's servers
        lost or back (`ib_connectivity`)."""
        app.router.add_post("/__emulator/ibkr/restart", self._restart)
        app.router.add_post("/__emulator/ibkr/connectivity", self._connectivity)

    def connector_config(self, *, account: str, api_key: str, api_secret: str) -> dict[str, Any]:
        return {"account": account, "ib_account": api_key, "host": "127.0.0.1", "port": self.tws_port,
                "symbols": [listing.symbol for listing in LISTINGS], "subscribe": ["*"]}

    def error_response(self, reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
        return _json({"reason": reason.value, "message": message}, status=400)

    # --- orders -------------------------------------------------------------------------------------
    def client_id_in_use(self, client_id: int) -> bool:
        return any(session.client_id == client_id for session in self.connections)

    def next_order_id(self, client_id: int) -> int:
        used = [ib.order_id for ib in self.orders.values() if ib.client_id == client_id]
        return max(used, default=0) + 1

    def find(self, client_id: int, order_id: int) -> tuple[str, IbOrder] | None:
        return next(((key, ib) for key, ib in self.orders.items()
                     if ib.client_id == client_id and ib.order_id == order_id), None)

    def record(self, engine_id: str) -> EmulatedOrder:
        held = self.groups.record(engine_id) or self.trailing.record(engine_id)
        if held is not None:
            return held
        ib = self.orders[engine_id]
        return self.venue.find(ib.account, client_order_id=engine_id)

    def cancel(self, engine_id: str) -> None:
        """Cancel an open order, working or waiting (groups.py)."""
        if engine_id in self.groups.waiting:
            self.groups.cancel(engine_id)
            return
        if engine_id in self.trailing.working:
            self.trailing.cancel(engine_id)
            return
        order = self.record(engine_id)
        if order.is_open:
            self.venue.cancel(order)

    def report(self, order: EmulatedOrder) -> None:
        """openOrder and orderStatus of an order that changed outside the engine (a waiting one)."""
        self._on_order(order, None)

    def show(self, order: EmulatedOrder) -> None:
        """openOrder alone: a TRAIL's new stop, as TWS reports it."""
        ib = self.orders[order.client_order_id]
        for session in list(self.connections):
            if session.client_id in (0, ib.client_id) and session.api_started:
                session.send(render.open_order(ib, order))

    def resize(self, engine_id: str, quantity: Decimal) -> None:
        """An OCA group reduced an open order (groups.py); to nothing, it is cancelled."""
        order = self.record(engine_id)
        if quantity <= order.filled:
            self.cancel(engine_id)
        elif engine_id in self.groups.waiting:
            self.groups.resize(engine_id, quantity)
            self.report(order)
        elif engine_id in self.trailing.working:
            self.trailing.resize(engine_id, quantity)
            self.report(order)
        else:
            self.venue.modify(order, quantity=quantity)

    def refuse(self, ib: IbOrder, refusal: Refused) -> None:
        """An order released from waiting that the engine refused: its client hears why."""
        code, text = refusal_of(refusal)
        for session in list(self.connections):
            if session.client_id == ib.client_id:
                session.send(render.error(ib.order_id, code, text))

    def _on_order(self, order: EmulatedOrder, fill: EmulatedFill | None) -> None:
        ib = self.orders.get(order.client_order_id)
        if ib is None:  # placed through the control API: as if by hand in TWS
            ib = self.orders[order.client_order_id] = IbOrder(
                order_id=0, client_id=0, perm_id=next(self.perm_ids), account=order.account,
                listing=BY_SYMBOL[order.symbol], tif=order.time_in_force.value, order_ref=order.client_order_id)
        frames: list[list[Field]] = []
        if fill is not None:
            execution = self._execute(order, fill)
            frames.append(render.exec_details(-1, ib, order, fill, execution.exec_id))
        frames += [render.open_order(ib, order, commission=self._paid(order) if order.fills else None),
                   render.order_status(ib, order)]
        if fill is not None:
            frames.append(render.commission_report(execution.exec_id, execution.commission, ib.listing.currency))
        for session in list(self.connections):
            if session.client_id in (0, ib.client_id) and session.api_started:
                session.send_all(frames)
        if fill is not None:
            for session in list(self.connections):
                session.account_changed(order.account, order.symbol)
        self.groups.changed(order, fill)

    def _execute(self, order: EmulatedOrder, fill: EmulatedFill) -> Execution:
        ib = self.orders[order.client_order_id]
        before = self._paid(order, upto=len(order.fills) - 1)
        commission = self._paid(order) - before
        self.commissions[order.account] = self.commissions.get(order.account, ZERO) + commission
        execution = Execution(account=order.account, engine_id=order.client_order_id, fill=fill,
                              exec_id=f"0001{ib.perm_id:08x}.{next(self._exec_ids):08x}.01.01", commission=commission)
        self.executions.append(execution)
        return execution

    def _paid(self, order: EmulatedOrder, upto: int | None = None) -> Decimal:
        fills = order.fills if upto is None else order.fills[:upto]
        if not fills:
            return ZERO
        quantity = sum((f.quantity for f in fills), ZERO)
        value = sum((f.quantity * f.price for f in fills), ZERO)
        return order_commission(BY_SYMBOL[order.symbol], quantity, value)

    # --- the account ----------------------------------------------------------------------------------
    def positions(self, account: str) -> list[tuple[Listing, Decimal, Decimal, Decimal]]:
        """(listing, signed quantity, average cost, realized pnl) of every instrument traded."""
        return [(BY_SYMBOL[p.symbol], p.quantity, p.avg_price, p.realized_pnl) for p in self.venue.positions(account)]

    def account_values(self, account: str) -> list[tuple[str, Decimal, str]]:
        """What reqAccountUpdates reports (keys as IB names them, in USD): cash after commissions,
        the positions' value at the last price, their sum."""
        cash = sum((b.total for b in self.venue.exchange.balances(account) if b.currency == "USD"), ZERO)
        cash -= self.commissions.get(account, ZERO)
        stock = sum((quantity * self.last_price(listing) for listing, quantity, _, _ in self.positions(account)), ZERO)
        net = cash + stock
        return [("CashBalance", cash, "USD"), ("TotalCashValue", cash, "USD"),
                ("NetLiquidation", net, "USD"), ("GrossPositionValue", abs(stock), "USD"),
                ("AvailableFunds", cash, "USD"), ("BuyingPower", cash, "USD")]

    def last_price(self, listing: Listing) -> Decimal:
        update = self.venue.last_market.get(listing.symbol)
        if update is None or not update.bids or not update.asks:
            return listing.initial_price
        return (update.bids[0][0] + update.asks[0][0]) / 2

    def side_of(self, action: str) -> Side | None:
        return {"BUY": Side.BUY, "SELL": Side.SELL}.get(action)

    # --- the market -----------------------------------------------------------------------------------
    def _on_market(self, update: MarketUpdate) -> None:
        listing = BY_SYMBOL.get(update.symbol)
        if listing is None:
            return
        if update.trade is not None:
            self.history.record(listing.symbol, update.trade.price, update.trade.size)
        elif update.bids and update.asks:
            self.history.record(listing.symbol, (update.bids[0][0] + update.asks[0][0]) / 2, Decimal(0))
        for session in list(self.connections):
            session.market(listing, update)
        self.trailing.market(update)

    async def _end_bars(self) -> None:
        """Every 5 seconds of the clock (…:00, …:05, …): the bar that ended, to reqRealTimeBars subscribers."""
        while True:
            end = (int(time.time()) // 5 + 1) * 5
            await asyncio.sleep(end - time.time())
            for session in list(self.connections):
                session.bar_ended(end)

    def bars(self, req_id: int, listing: Listing, *, bar_size: str, duration: str,
             epoch_dates: bool) -> list[Field]:
        """historicalData for one request, or error 321 for a bar size or duration TWS would not take."""
        try:
            rows = self.history.rows(listing.symbol, bar_size, duration, epoch_dates)
        except UnknownBarSize as exc:
            return render.error(req_id, 321, f"Error validating request:-'bX' : cause - Invalid {exc}")
        now = time.strftime("%Y%m%d  %H:%M:%S", time.gmtime())
        start = rows[0][0] if rows else now
        return render.bars(req_id, str(start), now, rows)
