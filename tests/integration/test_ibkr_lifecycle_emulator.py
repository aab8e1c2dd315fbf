"""What IBKR alone does, through the connector on a real bus: TWS's daily restart (IB
Gateway's nightly one), during which the connector says TWS is unreachable, and after which
it reconnects, reconciles what happened at IB meanwhile and trades again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus.emulators.ibkr import IbkrEmulator
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.events import OrderAccepted, OrderCancelled, PositionUpdate
from tradebus.schemas.market import StreamReconnected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, OrderType, ServiceState, Side, TimeInForce
from tradebus.shared.natsserver import NatsServer

from .emulatortests import ACCOUNT, connector_on_bus, control, emulator_fixture
from .helpers import account_decoder, collect, market_decoder, route, wait_until

IB_ACCOUNT = "DU7654321"
emulator = emulator_fixture(IbkrEmulator, IB_ACCOUNT, "unused")


def resting_buy(client_order_id: str, bid: Decimal) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="ibkr", account=ACCOUNT, symbol="AAPL", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=Decimal(1), price=(bid * Decimal("0.9")).quantize(Decimal("0.01")),
                      time_in_force=TimeInForce.GTC)


@pytest.mark.timeout(120)
async def test_the_daily_restart_is_said_waited_out_and_reconciled(emulator: IbkrEmulator, nats_server: NatsServer) -> None:
    bid = emulator.venue.last_market["AAPL"].bids[0][0]  # type: ignore[index]
    async with connector_on_bus(emulator, nats_server, ready=lambda: bool(emulator.connections)) as (nc, events):
        statuses = await collect(nc, subjects.status("connector", "ibkr"), decoder(Family.STATUS).decode)
        await route(nc, resting_buy("before-restart", bid))
        await events.wait_for(lambda ms: any(isinstance(m, OrderAccepted) for m in ms), timeout=15)

        await control(emulator, "ibkr/restart", {"seconds": 3})
        await statuses.wait_for(lambda ms: any(
            isinstance(s, ServiceStatus) and s.state is ServiceState.DEGRADED and "unreachable" in s.detail
            for s in ms), timeout=15)
        # IB's servers go on meanwhile: the order is cancelled there (as by its expiry)
        emulator.cancel("before-restart")

        cancelled = await events.wait_for(lambda ms: any(
            isinstance(m, OrderCancelled) and m.client_order_id == "before-restart" for m in ms), timeout=30)
        assert sum(isinstance(m, OrderCancelled) for m in cancelled) == 1
        await statuses.wait_for(lambda ms: isinstance(ms[-1], ServiceStatus) and ms[-1].state is ServiceState.READY,
                                timeout=15)
        await route(nc, resting_buy("after-restart", bid))
        await events.wait_for(lambda ms: any(
            isinstance(m, OrderAccepted) and m.client_order_id == "after-restart" for m in ms), timeout=15)


async def test_ibs_servers_lost_and_back_are_said_and_market_data_is_sent_again(
    emulator: IbkrEmulator, nats_server: NatsServer,
) -> None:
    """IB's nightly reset seen from TWS: 1100 (degraded while it lasts), then 1101, restored
    with its market data lost: every stream is subscribed again, after a gap."""
    async with connector_on_bus(emulator, nats_server, ready=lambda: bool(emulator.connections)) as (nc, _):
        statuses = await collect(nc, subjects.status("connector", "ibkr"), decoder(Family.STATUS).decode)
        quotes = await collect(nc, subjects.market_data_filter("ibkr", MarketDataKind.QUOTE), market_decoder.decode)
        await quotes.wait_for(lambda ms: any(m.symbol == "AAPL" for m in ms), timeout=15)
        await control(emulator, "ibkr/connectivity", {"lost": True})
        await statuses.wait_for(lambda ms: any(
            isinstance(s, ServiceStatus) and s.state is ServiceState.DEGRADED and "1100" in s.detail for s in ms), 15)
        await control(emulator, "ibkr/connectivity", {"lost": False, "data_lost": True})
        await statuses.wait_for(lambda ms: isinstance(ms[-1], ServiceStatus) and ms[-1].state is ServiceState.READY, 15)
        (session,) = emulator.connections
        await wait_until(lambda: any(listing.symbol == "AAPL" for listing in session.quotes.values()),
                         "AAPL's quotes requested again", timeout=15)
        await quotes.wait_for(lambda ms: any(isinstance(m, StreamReconnected) and m.symbol == "AAPL" for m in ms), 15)


async def test_a_fill_of_another_programs_order_moves_the_published_position(
    emulator: IbkrEmulator, nats_server: NatsServer,
) -> None:
    """An order entered in TWS by hand (the control API's) fills: TWS streams the position
    change, and the connector publishes the account's position from it."""
    async with connector_on_bus(emulator, nats_server, ready=lambda: bool(emulator.connections)) as (nc, _):
        positions = await collect(nc, subjects.account_events("ibkr", ACCOUNT), account_decoder.decode)
        await control(emulator, "orders", {"account": IB_ACCOUNT, "client_order_id": "by-hand", "symbol": "AAPL",
                                           "side": "buy", "order_type": "market", "quantity": "3"})
        await positions.wait_for(lambda ms: any(
            isinstance(m, PositionUpdate) and m.symbol == "AAPL" and m.quantity == 3 for m in ms), timeout=15)
