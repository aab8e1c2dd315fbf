"""What every venue's emulator test shares: the emulator served on 127.0.0.1, the venue's
real SDK pointed at it, the control API, the venue's connector on a real bus, and the
checks every emulated venue passes (`EmulatorTests`).

A venue's test module (test_<venue>_emulator.py) makes its fixtures here
(`emulator = emulator_fixture(BinanceEmulator, API_KEY, API_SECRET)`), subclasses
EmulatorTests (`class TestBinanceEmulator`) for the shared checks, and keeps as its own
tests only what its venue alone does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, ClassVar

import aiohttp
import ccxt.pro as ccxt_pro
import nats
import pytest
from ccxt.base import errors as ccxt_errors
from nats.aio.client import Client as NATS

from tradebus.emulators.server import Emulator
from tradebus.schemas import subjects
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderFilled
from tradebus.schemas.market import Quote
from tradebus.schemas.values import MarketDataKind, OrderType, Side, TimeInForce
from tradebus.services.connector.errors import AuthFailed, VenueError
from tradebus.services.connector.marketdata import MarketDataPublisher
from tradebus.services.connector.service import ConnectorService
from tradebus.services.connector.venues.ccxt import parsing as ccxt_parsing
from tradebus.services.connector.venues.ccxt.connector import rebased
from tradebus.services.settings import Settings, venue_config
from tradebus.shared.bus import Bus
from tradebus.shared.natsserver import NatsServer

from .helpers import Collector, collect, event_decoder, market_decoder, route, running_service, wait_until

ACCOUNT = "main"  # the connector's name for the emulated account


def emulator_fixture(emulator_type: type[Emulator], api_key: str, api_secret: str) -> Any:
    """A fixture: a fresh emulator of `emulator_type` whose one account trades with this
    key, fast market ticks, stopped after the test."""

    @pytest.fixture
    async def emulator() -> AsyncIterator[Emulator]:
        emulator = emulator_type.create(credentials={api_key: api_secret}, tick_interval=0.02)
        assert isinstance(emulator, emulator_type)
        await emulator.start()
        try:
            yield emulator
        finally:
            await emulator.stop()

    return emulator


def credentials(emulator: Emulator) -> tuple[str, str]:
    """The (API key, secret) of the emulator's one account."""
    ((api_key, api_secret),) = emulator.venue.credentials.items()
    return api_key, api_secret


def ccxt_client(emulator: Emulator, *, api_key: str | None = None, api_secret: str | None = None) -> Any:
    """The unmodified ccxt client of the emulated exchange, configured as the connector
    configures it from `connector_config()`: every URL rebased onto the emulator, the same
    options; the emulator's own credentials unless others are given."""
    own_key, own_secret = credentials(emulator)
    api_key, api_secret = api_key or own_key, api_secret or own_secret
    table = emulator.connector_config(account=ACCOUNT, api_key=api_key, api_secret=api_secret)
    exchange = getattr(ccxt_pro, emulator.name)({"apiKey": api_key, "secret": api_secret, "options": table["options"]})
    exchange.urls["api"] = rebased(exchange.urls["api"], table["rebase"]["rest"], table["rebase"]["ws"])
    return exchange


def ccxt_fixture() -> Any:
    """A fixture: `ccxt_client(emulator)`, closed after the test."""

    @pytest.fixture
    async def exchange(emulator: Emulator) -> AsyncIterator[Any]:
        client = ccxt_client(emulator)
        try:
            yield client
        finally:
            await client.close()

    return exchange


async def control(emulator: Emulator, path: str, body: Any = None) -> Any:
    """POST `body` to the emulator's control API at /__emulator/<path>; its JSON answer."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.url}/__emulator/{path}", json=body or {}) as answer,
    ):
        assert answer.status == 200, await answer.text()
        return await answer.json()


@contextlib.asynccontextmanager
async def connector_on_bus(
    emulator: Emulator,
    nats_server: NatsServer,
    *,
    ready: Callable[[], bool] | None = None,
) -> AsyncIterator[tuple[NATS, Collector]]:
    """The venue's connector serving the emulator's account on a real bus, configured by
    the table `connector_config()` gives; a bus connection and the account's order events,
    collected from before the connector starts. `ready`: the block starts once it holds
    (the connector's private stream is up)."""
    api_key, api_secret = credentials(emulator)
    table = emulator.connector_config(account=ACCOUNT, api_key=api_key, api_secret=api_secret)
    settings = Settings(nats_url=nats_server.url, heartbeat_interval=0.2, venues={emulator.name: table})
    service = ConnectorService(
        settings, venue=emulator.name, venue_config=venue_config(settings, emulator.name, env={})
    )
    nc = await nats.connect(nats_server.url)
    try:
        events = await collect(nc, subjects.order_events(emulator.name, ACCOUNT), event_decoder.decode)
        async with running_service(service):
            if ready is not None:
                await wait_until(ready, f"the {emulator.name} connector's private stream", 15)
            yield nc, events
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def started_connector(connector_class: type[Any], venue: str, table: dict[str, Any], nats_server: NatsServer,
                            events: list[Any], ready: Callable[[], bool]) -> AsyncIterator[Any]:
    """The venue's connector on its settings `table`, started as the service starts it (no
    journal), driven by the test (`execute`); its emitted events in `events`. The block
    starts once `ready` holds (its private stream is up)."""
    config = venue_config(Settings(nats_url=nats_server.url, venues={venue: table}), venue, env={})
    bus = await Bus.connect(nats_server.url, name=f"{venue}-connector-test")
    connector = connector_class(venue=venue, config=config, market_data=MarketDataPublisher(bus, venue),
                                emit=events.extend, read_journal=_no_journal)
    await connector.start()
    await wait_until(ready, f"the {venue} connector's private stream", 10)
    try:
        yield connector
    finally:
        await connector.stop()
        await bus.drain()


async def _no_journal() -> list[Any]:
    return []


async def filled(events: Collector, client_order_id: str) -> None:
    await events.wait_for(
        lambda items: any(isinstance(e, OrderFilled) and e.client_order_id == client_order_id for e in items),
        timeout=15,
    )


class EmulatorTests:
    """The checks every emulated venue passes through its real SDK and its connector. A
    venue's test module subclasses this as `Test<Venue>Emulator`, sets the class attributes
    and implements the hooks (each raises until it does); the module provides the `emulator`
    fixture (`emulator_fixture`)."""

    symbol: ClassVar[str]  # the instrument the bus test trades
    quantity: ClassVar[Decimal]  # ... its order size
    time_in_force: ClassVar[TimeInForce]  # ... and a time in force the venue takes for it
    auth_error: ClassVar[type[Exception]]  # what the SDK raises for a request the venue's auth refuses

    # --- hooks ----------------------------------------------------------------------------------
    def private_stream_ready(self, emulator: Any) -> bool:
        """Whether a client of the account listens to the venue's private (order) stream."""
        raise NotImplementedError(f"{type(self).__name__}.private_stream_ready")

    async def read_account(self, emulator: Any, *, api_secret: str) -> None:
        """One authenticated SDK read of the account (its balance) signed with `api_secret`."""
        raise NotImplementedError(f"{type(self).__name__}.read_account")

    def venue_error(self, emulator: Any, exc: Exception) -> VenueError:
        """The connector's taxonomy error for an SDK exception of a read."""
        raise NotImplementedError(f"{type(self).__name__}.venue_error")

    def check_auth_refusal(self, refusal: Exception) -> None:
        """The venue's own words for a bad signature, as the SDK carries them."""
        raise NotImplementedError(f"{type(self).__name__}.check_auth_refusal")

    # --- the shared checks ----------------------------------------------------------------------
    async def test_the_connector_trades_through_the_bus(
        self,
        emulator: Emulator,
        nats_server: NatsServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Quotes of the symbol stream onto the bus, and a marketable order fills, placed once."""
        venue = emulator.name
        async with connector_on_bus(emulator, nats_server, ready=lambda: self.private_stream_ready(emulator)) as (
            nc,
            events,
        ):
            quotes = await collect(nc, subjects.market_data_filter(venue, MarketDataKind.QUOTE), market_decoder.decode)
            seen = await quotes.wait_for(
                lambda items: any(isinstance(q, Quote) and q.symbol == self.symbol for q in items), timeout=15
            )
            quote = next(q for q in seen if isinstance(q, Quote) and q.symbol == self.symbol)
            assert quote.bid < quote.ask
            await route(
                nc,
                PlaceOrder(
                    client_order_id="bus-1",
                    venue=venue,
                    account=ACCOUNT,
                    symbol=self.symbol,
                    side=Side.BUY,
                    order_type=OrderType.LIMIT,
                    quantity=self.quantity,
                    price=(quote.ask * 2).quantize(Decimal("0.01")),
                    time_in_force=self.time_in_force,
                ),
            )
            await filled(events, "bus-1")
        api_key, _ = credentials(emulator)
        assert emulator.venue.find(api_key, client_order_id="bus-1").filled == self.quantity
        places = [operation for _, operation in emulator.venue.requests if operation == "place"]
        assert len(places) == 1, "the place was answered and acknowledged once, not redelivered"
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]

    async def test_a_wrong_secret_is_an_authentication_failure(self, emulator: Emulator) -> None:
        with pytest.raises(self.auth_error) as refused:
            await self.read_account(emulator, api_secret="not-the-secret")
        self.check_auth_refusal(refused.value)
        assert isinstance(self.venue_error(emulator, refused.value), AuthFailed)


class CcxtEmulatorTests(EmulatorTests):
    """EmulatorTests of a venue served through the ccxt SDK and connector."""

    auth_error = ccxt_errors.AuthenticationError  # ccxt's class for every exchange's auth refusal

    async def read_account(self, emulator: Any, *, api_secret: str) -> None:
        exchange = ccxt_client(emulator, api_secret=api_secret)
        try:
            await exchange.fetch_balance()
        finally:
            await exchange.close()

    def venue_error(self, emulator: Any, exc: Exception) -> VenueError:
        return ccxt_parsing.venue_error(exc, changes_state=False, exchange_id=emulator.name)
