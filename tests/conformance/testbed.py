"""One venue under test: its connector as a service on a real nats-server and, for a remote
venue, its emulator driven through the real SDK and the emulator's control API.

Every venue with a spec (connector/venuespecs.py) is under test: a remote one through the
emulator its spec names, an embedded one (paper) as it is.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import aiohttp
import msgspec
import nats

from tradebus.emulators.server import Emulator
from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, OrderCommand, PlaceOrder
from tradebus.schemas.events import CancelAllDone, CommandRejected, OrderEvent
from tradebus.schemas.market import Instrument, Quote
from tradebus.schemas.values import TERMINAL_STATUSES, MarketDataKind, OrderType, ServiceState, Side, TimeInForce
from tradebus.services.connector.base import VenueConnector
from tradebus.services.connector.config import ConnectorConfig
from tradebus.services.connector.service import ConnectorService
from tradebus.services.connector.venuespecs import VENUE_SPECS
from tradebus.services.settings import Settings, venue_config
from tradebus.shared.natsserver import NatsServer

from ..integration.helpers import (
    Collector,
    collect,
    event_decoder,
    market_decoder,
    paper_settings,
    route,
    running_service,
    wait_until,
)

API_KEY, API_SECRET = "conformance-key", "conformance-secret-5f1c"
_ids = itertools.count(1)


def venues_under_test() -> list[str]:
    """Read at collection: a venue registered later (a test's throw-away venue) is listed too.
    A venue with an environment of its own is tested there (Fyers: .venv-fyers, run by
    tests/venues/test_fyers_environment.py)."""
    return [name for name, spec in VENUE_SPECS.items() if spec.in_this_environment]


def new_id(prefix: str = "cf") -> str:
    return f"{prefix}{next(_ids)}"


CANCEL_HOLD = 1.0  # seconds (`connector.cancel_hold`), short for the suite

class VenueUnderTest:
    def __init__(self, venue: str, nats_server: NatsServer, nc: nats.NATS, emulator: Emulator | None,
                 secret: str = API_SECRET) -> None:
        self.venue = venue
        self.secret = secret  # the account's API secret (or access token) at the emulated venue
        self.nats_server = nats_server
        self.nc = nc
        self.emulator = emulator
        if emulator is None:
            self.account = "demo"
            self.settings: Settings = paper_settings(nats_server.url, bar_interval=1)
        else:
            self.account = "main"
            table = emulator.connector_config(account=self.account, api_key=API_KEY, api_secret=secret)
            self.settings = Settings(nats_url=nats_server.url, heartbeat_interval=0.2, venues={venue: table})
        # A cancel for an order the venue does not know waits this long for its place.
        self.settings = msgspec.structs.replace(self.settings, connector=ConnectorConfig(cancel_hold=CANCEL_HOLD))
        self.config = venue_config(self.settings, venue, env={})
        self.service: ConnectorService | None = None
        self.events: Collector | None = None
        self.quotes: dict[str, Quote] = {}

    def on_demand(self, *, lease: float) -> None:
        """Configure the connector to publish no stream until a subscriber asks, and to drop
        interest not renewed within `lease` seconds."""
        if self.emulator is None:
            paper = msgspec.structs.replace(self.settings.paper, subscribe=[])
            self.settings = msgspec.structs.replace(self.settings, paper=paper)
        else:
            venues = {self.venue: {**self.settings.venues[self.venue], "subscribe": []}}
            self.settings = msgspec.structs.replace(self.settings, venues=venues)
        connector = msgspec.structs.replace(self.settings.connector, subscription_lease=lease)
        self.settings = msgspec.structs.replace(self.settings, connector=connector)
        self.config = venue_config(self.settings, self.venue, env={})

    # --- running the connector --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def connector(self, *, degraded: bool = False) -> AsyncIterator[VenueConnector]:
        """The venue's connector, serving until the block ends (stopped as SIGTERM would);
        `degraded`: from when it has started, ready or not (its venue refusing it)."""
        self.service = service = ConnectorService(self.settings, venue=self.venue, venue_config=self.config)
        started = (lambda: service.state in (ServiceState.READY, ServiceState.DEGRADED)) if degraded else None
        async with running_service(service, started=started) as service:
            assert service.connector is not None
            yield service.connector

    @property
    def connector_instance(self) -> VenueConnector:
        assert self.service is not None and self.service.connector is not None
        return self.service.connector

    async def watch_events(self) -> Collector:
        self.events = await collect(self.nc, subjects.order_events(self.venue, self.account), event_decoder.decode)
        return self.events

    async def watch_quotes(self) -> None:
        async def remember(msg: Any) -> None:
            quote = market_decoder.decode(msg.data)
            if isinstance(quote, Quote):
                self.quotes[quote.symbol] = quote

        await self.nc.subscribe(subjects.market_data_filter(self.venue, MarketDataKind.QUOTE), cb=remember)
        await self.nc.flush()

    async def quote(self, symbol: str) -> Quote:
        await wait_until(lambda: symbol in self.quotes, f"a quote of {symbol}", timeout=15)
        return self.quotes[symbol]

    # --- instruments and prices --------------------------------------------------------------------
    def instrument(self) -> Instrument:
        """The first crypto instrument the venue lists, else its first equity (Zerodha and Fyers list no crypto)."""
        listed = sorted(self.connector_instance.instruments(),
                        key=lambda i: (i.asset_class != "crypto", i.asset_class != "equity", i.symbol))
        return listed[0]

    def price(self, instrument: Instrument, reference: Decimal, factor: str) -> Decimal:
        return (reference * Decimal(factor) / instrument.tick_size).quantize(Decimal(1), ROUND_DOWN) * instrument.tick_size

    def quantity(self, instrument: Instrument, price: Decimal, notional: str = "1000") -> Decimal:
        lots = (Decimal(notional) / price / instrument.lot_size).quantize(Decimal(1), ROUND_UP)
        return max(lots * instrument.lot_size, instrument.min_quantity)

    # --- commands ---------------------------------------------------------------------------------------
    def place(self, instrument: Instrument, **terms: Any) -> PlaceOrder:
        fields: dict[str, Any] = {"client_order_id": new_id(), "venue": self.venue, "account": self.account,
                                  "symbol": instrument.symbol, "side": Side.BUY, "order_type": OrderType.LIMIT,
                                  "time_in_force": self.resting_time_in_force}
        fields.update(terms)
        return PlaceOrder(**fields)

    @property
    def resting_time_in_force(self) -> TimeInForce:
        """GTC where the venue takes it, else DAY (Kite has no GTC; Fyers: DAY and IOC only)."""
        offered = self.connector_instance.capabilities.time_in_force
        return TimeInForce.GTC if TimeInForce.GTC in offered else TimeInForce.DAY

    def cancel(self, client_order_id: str) -> CancelOrder:
        return CancelOrder(client_order_id=client_order_id, venue=self.venue, account=self.account)

    def modify(self, client_order_id: str, **changes: Any) -> ModifyOrder:
        return ModifyOrder(client_order_id=client_order_id, modify_id=new_id("m"), venue=self.venue,
                           account=self.account, **changes)

    def cancel_all(self, **scope: Any) -> CancelAllOrders:
        return CancelAllOrders(request_id=new_id("all"), venue=self.venue, account=self.account, **scope)

    async def send(self, command: OrderCommand, *, outside_dedupe_window: bool = False) -> None:
        """Route a command as risk would. `outside_dedupe_window`: as a retry arriving after
        JetStream's de-duplication window (a new message id), so the venue must catch it."""
        if not outside_dedupe_window:
            await route(self.nc, command)
            return
        await self.nc.jetstream().publish(
            subjects.route(command.venue, command.account), encode(command), headers={"Nats-Msg-Id": new_id("late")}
        )

    def of(self, client_order_id: str) -> list[OrderEvent]:
        assert self.events is not None
        return [e for e in self.events.messages if getattr(e, "client_order_id", None) == client_order_id]

    async def until(self, client_order_id: str, *tags: str, timeout: float = 15.0) -> list[OrderEvent]:
        """Wait until the order's events include every event type tag in `tags`."""
        assert self.events is not None
        wanted = set(tags)
        await self.events.wait_for(lambda _: wanted <= {tag(e) for e in self.of(client_order_id)}, timeout=timeout)
        return self.of(client_order_id)

    async def cancel_all_done(self, request_id: str, timeout: float = 15.0) -> CancelAllDone:
        """Wait for the event that ends a cancel-all."""
        assert self.events is not None

        def mine(event: object) -> bool:
            return isinstance(event, CancelAllDone) and event.request_id == request_id

        messages = await self.events.wait_for(lambda ms: any(map(mine, ms)), timeout=timeout)
        return next(filter(mine, messages))

    async def finished(self, client_order_id: str, timeout: float = 15.0) -> list[OrderEvent]:
        """Wait for the order's final event."""
        assert self.events is not None
        await self.events.wait_for(lambda _: any(is_final(e) for e in self.of(client_order_id)), timeout=timeout)
        return self.of(client_order_id)

    # --- the emulator's control API ------------------------------------------------------------------
    async def control(self, method: str, path: str, body: Any = None) -> Any:
        assert self.emulator is not None, "the paper venue has no emulator"
        async with aiohttp.ClientSession() as session:
            payload = None if body is None else msgspec.json.encode(body)
            async with session.request(method, f"{self.emulator.url}/__emulator/{path}", data=payload) as response:
                assert response.status < 500, await response.text()
                return msgspec.json.decode(await response.read())

    async def venue_orders(self, client_order_id: str) -> list[dict[str, Any]]:
        """The orders the venue holds under this client order id (should be at most one)."""
        orders = await self.control("GET", f"orders?account={API_KEY}")
        return [o for o in orders if o["client_order_id"] == client_order_id]


def tag(event: Any) -> str:
    return str(type(event).__struct_config__.tag)


def is_final(event: Any) -> bool:
    return tag(event) in {status.value for status in TERMINAL_STATUSES} or isinstance(event, CommandRejected)

