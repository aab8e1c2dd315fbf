"""Alpaca (US equities and crypto) as a venue, through alpaca-py.

REST: alpaca-py's TradingClient is synchronous (requests): every call runs in a worker
thread (`asyncio.to_thread`), never on the event loop. raw_data=True gives Alpaca's JSON
as dicts, parsed in parsing.py. The SDK's own retry of 429/504 is switched off: the base
class owns retries and back-off, and a silent SDK sleep would hold a command. (That, and
driving streams on our loop, takes alpaca-py's private attributes: all of them are in sdk.py.)

trade_updates: alpaca-py's TradingStream.run() starts its own event loop and reconnects
silently after a drop, which would hide the gap from the base class. So the connector
drives the stream on our loop instead: `sdk.open_stream` (connect, authenticate, listen)
once per `watch_orders` iteration, then receives frames itself; a closed socket
raises VenueBusy, and the base publishes gap / reconnected markers and reconciles before
iterating again. No thread, no hidden reconnect.

Orders: market, limit, stop, stop_limit, trailing_stop (`trail_price` / `trail_percent`; crypto:
no plain stop, no trailing stop); DAY / GTC / IOC / FOK for equities, GTC / IOC for crypto
(Alpaca's rules); post-only and reduce-only are refused.

Order groups (groups.py): one POST with Alpaca's `order_class` and our first order's client
order id; Alpaca gives the legs ids of its own. The POST answer (and a look-up of the parent
by client order id, then by id with nested=true) lists the legs, each known by its type as one
of our orders: `_venue_ids` maps the leg's Alpaca order id to our client order id (rebuilt
from the journal's venue order ids at every connect), so stream updates, listings and look-ups
of a leg are ours. A re-delivered group is either known to the tracker (answered per order) or
refused by Alpaca as a duplicate client_order_id and then looked up: never placed twice. An
update of a leg not mapped yet (the POST answer not read yet; a group placed outside the fleet)
is left for the group's answer and reconciliation, never published under Alpaca's id.
Capabilities are the intersection over the configured symbols; a submit is checked
against its own symbol's asset class before anything is sent.

Modify: Alpaca's replace (PATCH /v2/orders/{id}, sent with exact decimal strings) creates a new order with a new id that
`replaces` the old one. The connector keeps our client order id for the new order (the
tracker's identity does not change): the replace sends no client_order_id, and any id
Alpaca gives the replacement is mapped back to ours (`_ours`). A look-up that lands on a
replaced order follows `replaced_by` to the live one.

Market data: quotes and trades through StockDataStream (feed iex / sip) or
CryptoDataStream, one websocket per stream, msgpack frames; driven on our loop the same
way as trade_updates (`sdk.open_stream`, then frames read here), so a drop is a VenueBusy.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import msgpack
import msgspec
from alpaca.data.enums import DataFeed
from alpaca.data.live.crypto import CryptoDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.data.live.websocket import DataStream
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrderByIdRequest, GetOrdersRequest
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed

from tradebus.schemas.commands import ModifyOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import Balance, group_unsupported
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import GroupKind, MarketDataKind, RejectReason
from tradebus.shared.retry import Backoff

from ...accounts import ReportedPosition
from ...base import Capabilities, VenueEvent
from ...credentials import venue_credentials
from ...errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy
from ...remote import MarketMessage, RemoteVenueConnector
from ...tracking import OrderSnapshot
from . import parsing, sdk
from .config import AlpacaConfig
from .groups import AlpacaGroup, Unexpressible, alpaca_form

CHANNELS = {MarketDataKind.QUOTE: "quotes", MarketDataKind.TRADE: "trades"}
MESSAGE_TYPES = {MarketDataKind.QUOTE: "q", MarketDataKind.TRADE: "t"}
LISTING_LIMIT = 500  # Alpaca's maximum orders per listing


class AlpacaConnector(RemoteVenueConnector[AlpacaConfig]):
    default_requests_per_second = 200 / 60  # Alpaca: 200 requests per minute per key

    def __init__(self, **kwargs: Any) -> None:
        config: AlpacaConfig = kwargs["config"]
        credentials = venue_credentials(kwargs["venue"], api_key=config.api_key, api_secret=config.api_secret)
        self._key, self._secret = credentials.api_key.reveal(), credentials.api_secret.reveal()
        # the SDK's own retries off: they belong to the base class (see the module docstring)
        self.client = sdk.trading_client(self._key, self._secret, paper=config.paper, url=config.trading_url,
                                         raw_data=True)
        super().__init__(**kwargs)
        self.capabilities = self._capabilities_for(["us_equity", "crypto"])
        self._instruments: list[Instrument] = []
        self._asset_class: dict[str, str] = {}  # symbol -> Alpaca's asset class
        self._symbols: dict[str, str] = {}  # Alpaca's slashless crypto names -> ours (parsing.slashless)
        self._ours: dict[str, str] = {}  # client order id Alpaca gave a replacement -> ours
        self._venue_ids: dict[str, str] = {}  # Alpaca order id of a leg (or replacement) -> our client order id
        self._groups: dict[str, tuple[str, str | None]] = {}  # our client order id -> (group id, contingent on)

    @staticmethod
    def _capabilities_for(classes: list[str]) -> Capabilities:
        return Capabilities(
            order_types=frozenset.intersection(*(parsing.ORDER_TYPES[c] for c in classes)),
            time_in_force=frozenset.intersection(*(parsing.TIME_IN_FORCE_BY_CLASS[c] for c in classes)),
            modify=True, market_data=frozenset(CHANNELS),
            # held natively for equities; a crypto group is answered unsupported (groups.py)
            order_groups=frozenset({GroupKind.BRACKET, GroupKind.OCO, GroupKind.OTO}),
        )

    # --- symbology (Alpaca's symbols are ours: see parsing.py) --------------------------------
    def instruments(self) -> list[Instrument]:
        return self._instruments

    def venue_symbol(self, symbol: str) -> str:
        return symbol

    def unified_symbol(self, venue_symbol: str) -> str:
        return venue_symbol

    # --- primitives -----------------------------------------------------------------------------
    async def connect(self) -> None:
        await self._sdk(self.client.get_account, changes_state=False)  # proves the credentials
        for coid in self.tracker.client_order_ids():  # the legs' Alpaca ids, as the journal has them
            venue_order_id = self.tracker.venue_order_id(coid)
            if venue_order_id is not None:
                self._venue_ids.setdefault(venue_order_id, coid)
        assets = await self._sdk(self.client.get_all_assets, changes_state=False)
        wanted = set(self.config.symbols)
        listed = sorted((a for a in assets if a.get("tradable") and (not wanted or a["symbol"] in wanted)),
                        key=lambda a: a["symbol"])
        self._asset_class = {a["symbol"]: a["class"] for a in listed}
        self._symbols = parsing.slashless(list(self._asset_class))
        self._instruments = [parsing.instrument(self.venue, a) for a in listed]
        if self._asset_class:
            self.capabilities = self._capabilities_for(sorted(set(self._asset_class.values())))

    async def balances(self) -> list[Balance]:
        return parsing.balances(await self._sdk(self.client.get_account, changes_state=False))

    async def positions(self) -> list[ReportedPosition] | None:
        listed = await self._sdk(self.client.get_all_positions, changes_state=False)
        return parsing.positions(listed, self._symbols)

    async def disconnect(self) -> None:
        """Nothing held open: REST sessions close with the process, streams with their iteration."""

    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        # posted as JSON with exact decimals: the SDK's request models would turn them into floats
        order = await self._sdk(self.client.post, "/orders", self._body(command), changes_state=True)
        return self._snapshot(order)

    def _body(self, command: PlaceOrder) -> dict[str, Any]:
        """An order's POST body, after the checks Alpaca's rules allow before sending."""
        asset_class = self._asset_class.get(command.symbol)
        if asset_class is None:
            raise OrderRefused(RejectReason.UNKNOWN_INSTRUMENT, f"{command.symbol} is not listed")
        if command.order_type not in parsing.ORDER_TYPES[asset_class] or command.post_only or command.reduce_only:
            raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, f"Alpaca does not take this {asset_class} order")
        if command.time_in_force not in parsing.TIME_IN_FORCE_BY_CLASS[asset_class]:
            raise OrderRefused(RejectReason.UNSUPPORTED_TIME_IN_FORCE,
                               f"{command.time_in_force.value} is not offered for {asset_class}")
        body: dict[str, Any] = {
            "symbol": command.symbol, "qty": str(command.quantity), "side": command.side.value,
            "type": command.order_type.value, "time_in_force": parsing.TIME_IN_FORCE[command.time_in_force],
            "client_order_id": command.client_order_id,
        }
        if command.price is not None:
            body["limit_price"] = str(command.price)
        if command.stop_price is not None:
            body["stop_price"] = str(command.stop_price)
        if command.trail_amount is not None:
            body["trail_price"] = str(command.trail_amount)
        if command.trail_percent is not None:
            body["trail_percent"] = str(command.trail_percent)
        return body

    async def place_group(self, group: PlaceOrderGroup) -> list[VenueEvent]:
        orders = group.placed_orders()
        try:
            form = alpaca_form(group, self._asset_class.get(group.orders[0].symbol))
        except Unexpressible as exc:
            return list(group_unsupported(group, f"alpaca: {exc}", time.time_ns()))
        violation = next((v for v in map(self._instrument_violation, orders) if v is not None), None)
        if violation is not None:
            return [event for order in orders for event in self.tracker.rejected(order, *violation, time.time_ns())]
        body = form.exits(self._body(form.parent))
        for order in orders:
            self._groups[order.client_order_id] = (group.group_id, group.contingent_on(order))
            if not self.tracker.knows(order.client_order_id):
                self.tracker.submitting(order)
        try:
            parent = await self._placed_group(form, body)
        except (OrderRefused, VenueBusy) as exc:  # busy: Alpaca did nothing (as for a single place)
            reason = exc.reason if isinstance(exc, OrderRefused) else RejectReason.VENUE_UNAVAILABLE
            for order in orders:
                self.tracker.forget(order.client_order_id)
            return [event for order in orders for event in self.tracker.rejected(order, reason, exc.message,
                                                                                  time.time_ns())]
        if parent is None:
            return []  # its outcome stays unknown: left for reconciliation (the parent is looked up by its id)
        return await self._track_group(form, parent)

    async def _placed_group(self, form: AlpacaGroup, body: dict[str, Any]) -> dict[str, Any] | None:
        """The parent with its legs: posted, or found under our client order id (a group
        Alpaca holds already is refused as a duplicate, then looked up: never placed twice)."""
        coid = form.parent.client_order_id
        backoff = Backoff(self.settings.lookup_interval)
        for _ in range(self.settings.lookup_attempts):
            try:
                return await self._call(lambda: self._sdk(self.client.post, "/orders", body, changes_state=True))
            except OrderRefused as exc:
                if exc.reason is not RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                    raise
            except OutcomeUnknown:
                await backoff.wait()
            found = await self._call(lambda: self._parent(coid))
            if found is not None:
                return found
        return None

    async def _parent(self, client_order_id: str) -> dict[str, Any] | None:
        """A parent order with its legs (GET by client order id shows none; by id with nested=true does)."""
        try:
            order = await self._sdk(self.client.get_order_by_client_id, client_order_id, changes_state=False)
            nested = GetOrderByIdRequest(nested=True)
            found: dict[str, Any] = await self._sdk(self.client.get_order_by_id, str(order["id"]), nested,
                                                    changes_state=False)
        except OrderRefused as exc:
            if exc.reason is RejectReason.UNKNOWN_ORDER:
                return None
            raise
        return found

    async def _track_group(self, form: AlpacaGroup, parent: dict[str, Any]) -> list[VenueEvent]:
        events = await self._track(self._snapshot(parent))
        for leg in parent.get("legs") or []:
            ours = form.leg(str(leg.get("type")))
            if ours is not None:
                self._venue_ids[str(leg["id"])] = ours.client_order_id
                events += await self._track(self._snapshot(leg))
        return events

    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        current = await self.lookup(command.client_order_id, "")
        if current is None:
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
        changes = {"qty": command.quantity, "limit_price": command.price, "stop_price": command.stop_price}
        body = {name: str(value) for name, value in changes.items() if value is not None}
        order = await self._sdk(self.client.patch, f"/orders/{current.venue_order_id}", body, changes_state=True)
        if order["client_order_id"] != command.client_order_id:
            self._ours[order["client_order_id"]] = command.client_order_id
            self._venue_ids[str(order["id"])] = command.client_order_id
        return self._snapshot(order)

    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        if venue_order_id is None:
            current = await self.lookup(client_order_id, symbol)
            if current is None:
                raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
            venue_order_id = current.venue_order_id
        await self._sdk(self.client.cancel_order_by_id, venue_order_id, changes_state=True)
        return None  # Alpaca answers 204: the caller looks the order up

    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        # a leg is known at Alpaca by the id it gave it (its client_order_id is Alpaca's too)
        leg_id = next((vid for vid, coid in self._venue_ids.items() if coid == client_order_id), None)
        try:
            if leg_id is not None:
                order = await self._sdk(self.client.get_order_by_id, leg_id, changes_state=False)
            else:
                order = await self._sdk(self.client.get_order_by_client_id, client_order_id, changes_state=False)
            while order.get("status") == "replaced" and order.get("replaced_by"):
                order = await self._sdk(self.client.get_order_by_id, str(order["replaced_by"]), changes_state=False)
        except OrderRefused as exc:
            if exc.reason is RejectReason.UNKNOWN_ORDER:
                return None
            raise
        return self._snapshot(order, client_order_id=client_order_id)

    async def open_orders(self) -> list[OrderSnapshot]:
        return await self._orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=LISTING_LIMIT, nested=True))

    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        after = datetime.fromtimestamp(since_ns / 1e9, tz=UTC)
        return await self._orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=LISTING_LIMIT, after=after,
                                                   nested=True))

    async def _orders(self, query: GetOrdersRequest) -> list[OrderSnapshot]:
        """nested=true: a group's legs come under its parent (`legs`), each taken if it is ours."""
        orders = await self._sdk(self.client.get_orders, query, changes_state=False)
        listed = [order for parent in orders for order in (parent, *(parent.get("legs") or []))]
        owned = (self._owned(o) for o in listed if o.get("status") != "replaced")
        return [snapshot for snapshot in owned if snapshot is not None]

    async def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        stream = TradingStream(
            self._key, self._secret, paper=self.config.paper, raw_data=True,
            url_override=self.config.trading_stream_url,  # type: ignore[arg-type]  # SDK: `url_override: str = None`
        )
        stream.subscribe_trade_updates(_listen)  # makes opening the stream send the `listen` action
        await _open(stream, "trade_updates stream")
        try:
            while True:
                frame = json.loads(await _receive(stream, "trade_updates stream"))
                snapshot = parsing.trade_update(frame, client_order_ids=self._ours, symbols=self._symbols)
                if snapshot is not None:
                    snapshot = self._group_member(snapshot, parsing.order_class(frame["data"]["order"]))
                if snapshot is not None:
                    yield snapshot
        finally:
            await stream.close()

    async def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        crypto = self._asset_class.get(symbol) == "crypto"
        stream: DataStream = (
            CryptoDataStream(self._key, self._secret, raw_data=True, url_override=self.config.crypto_stream_url)
            if crypto else
            StockDataStream(self._key, self._secret, raw_data=True, feed=DataFeed(self.config.feed.value),
                            url_override=self._stock_stream_url())
        )
        await _open(stream, "market data stream", subscribe=msgpack.packb({"action": "subscribe", CHANNELS[kind]: [symbol]}))
        try:
            while True:
                frames = msgpack.unpackb(await _receive(stream, "market data stream"))
                now = time.time_ns()
                messages: list[MarketMessage] = [parsing.market_message(self.venue, frame, now) for frame in frames
                                                 if frame.get("S") == symbol and frame.get("T") == MESSAGE_TYPES[kind]]
                if messages:
                    yield messages
        finally:
            await stream.close()

    def _stock_stream_url(self) -> str | None:
        base = self.config.stock_stream_url
        return f"{base.rstrip('/')}/{self.config.feed.value}" if base else None

    # --- helpers ----------------------------------------------------------------------------------
    def _snapshot(self, order: dict[str, Any], *, client_order_id: str | None = None) -> OrderSnapshot:
        coid = client_order_id or self._venue_ids.get(str(order["id"])) or self._ours.get(order["client_order_id"])
        return self._with_group(parsing.order_snapshot(order, client_order_id=coid, symbols=self._symbols))

    def _owned(self, order: dict[str, Any]) -> OrderSnapshot | None:
        return self._group_member(self._snapshot(order), parsing.order_class(order))

    def _group_member(self, snapshot: OrderSnapshot, order_class: str) -> OrderSnapshot | None:
        """The snapshot under our client order id; None for an order of a group that is not
        ours, or not yet mapped (a leg whose parent's answer is still being read)."""
        coid = self._venue_ids.get(snapshot.venue_order_id)
        if coid is not None and coid != snapshot.client_order_id:
            snapshot = msgspec.structs.replace(snapshot, client_order_id=coid)
        elif order_class != "simple" and not self.tracker.knows(snapshot.client_order_id):
            return None
        return self._with_group(snapshot)

    def _with_group(self, snapshot: OrderSnapshot) -> OrderSnapshot:
        membership = self._groups.get(snapshot.client_order_id)
        if membership is None:
            return snapshot
        return msgspec.structs.replace(snapshot, group_id=membership[0], contingent_on=membership[1])

    async def _sdk(self, call: Callable[..., object], *args: Any, changes_state: bool) -> Any:
        """Run one synchronous SDK call in a worker thread; its exceptions become the taxonomy's.
        Any: with raw_data=True the SDK returns Alpaca's JSON (a dict, or a list of them),
        whatever its `Model | RawData` annotations say; parsing.py reads it."""
        try:
            return await asyncio.to_thread(call, *args)
        except Exception as exc:  # noqa: BLE001 -- every SDK failure is mapped, none escapes
            raise parsing.venue_error(exc, changes_state=changes_state) from None


async def _listen(update: object) -> None:
    """A placeholder trade_updates handler: frames are read by `watch_orders` itself."""


async def _open(stream: TradingStream | DataStream, what: str, *, subscribe: bytes | None = None) -> None:
    """Connect and authenticate an SDK stream on our loop (its run() would use its own
    thread and hide reconnects), then subscribe."""
    try:
        await sdk.open_stream(stream)
        if subscribe is not None:
            await sdk.send(stream, subscribe)
    except ValueError:
        raise AuthFailed(f"{what}: authentication refused") from None
    except (TimeoutError, OSError, ConnectionClosed) as exc:
        raise VenueBusy(f"{what}: {type(exc).__name__}") from None


async def _receive(stream: TradingStream | DataStream, what: str) -> Any:
    """The next frame; a closed socket is a lost stream (the base reconnects and reconciles)."""
    try:
        return await sdk.receive(stream)
    except ConnectionClosed as exc:
        raise VenueBusy(f"{what} closed ({exc.code})") from None
