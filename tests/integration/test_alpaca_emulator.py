"""The unmodified alpaca-py TradingClient and TradingStream against the Alpaca emulator over
real HTTP and websockets on 127.0.0.1 (the SDK is synchronous: calls run in threads)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import nats
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.live.crypto import CryptoDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream

from tradebus.emulators.alpaca import AlpacaEmulator
from tradebus.emulators.faults import Fault, FaultKind
from tradebus.schemas import subjects
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderFilled
from tradebus.schemas.market import Quote
from tradebus.schemas.values import MarketDataKind, OrderType, Side
from tradebus.schemas.values import TimeInForce as OurTimeInForce
from tradebus.services.connector.service import ConnectorService
from tradebus.services.settings import Settings, venue_config
from tradebus.shared.natsserver import NatsServer

from .helpers import collect, event_decoder, market_decoder, route, running_service

API_KEY, API_SECRET = "alpaca-key", "alpaca-secret"


@pytest.fixture
async def emulator() -> AsyncIterator[AlpacaEmulator]:
    emulator = AlpacaEmulator.create(credentials={API_KEY: API_SECRET}, tick_interval=0.02)
    await emulator.start()
    yield emulator
    await emulator.stop()


def client(emulator: AlpacaEmulator, secret: str = API_SECRET) -> TradingClient:
    return TradingClient(API_KEY, secret, paper=True, url_override=emulator.url)


async def test_place_lookup_replace_cancel(emulator: AlpacaEmulator) -> None:
    trading = client(emulator)
    placed = await asyncio.to_thread(trading.submit_order, LimitOrderRequest(
        symbol="BRK.B", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=100,
        client_order_id="c-1"))
    assert placed.status is OrderStatus.ACCEPTED and placed.symbol == "BRK.B"  # not routed yet
    found = await asyncio.to_thread(trading.get_order_by_client_id, "c-1")
    assert found.id == placed.id
    replaced = await asyncio.to_thread(trading.replace_order_by_id, placed.id, ReplaceOrderRequest(qty=3, limit_price=101))
    assert replaced.id != placed.id and str(replaced.replaces) == str(placed.id)
    assert replaced.client_order_id == "c-1" and Decimal(replaced.qty) == 3
    old = await asyncio.to_thread(trading.get_order_by_id, placed.id)
    assert old.status is OrderStatus.REPLACED
    await asyncio.to_thread(trading.cancel_order_by_id, replaced.id)
    cancelled = await asyncio.to_thread(trading.get_order_by_client_id, "c-1")
    assert cancelled.status is OrderStatus.CANCELED


async def test_trade_updates_sees_a_fill(emulator: AlpacaEmulator) -> None:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[object] = asyncio.Queue()

    async def on_update(update: object) -> None:
        loop.call_soon_threadsafe(events.put_nowait, update)

    stream = TradingStream(API_KEY, API_SECRET, paper=True, url_override=f"{emulator.url.replace('http', 'ws')}/stream")
    stream.subscribe_trade_updates(on_update)
    runner = asyncio.create_task(asyncio.to_thread(stream.run))  # run() owns a loop of its own, in its thread
    try:
        while not emulator.trade_stream_listening(API_KEY):
            await asyncio.sleep(0.01)
        await asyncio.to_thread(client(emulator).submit_order, MarketOrderRequest(
            symbol="BTC/USD", qty=Decimal("0.01"), side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            client_order_id="m-1"))
        seen = []
        while "fill" not in seen:
            update = await asyncio.wait_for(events.get(), 5)
            assert update.order.client_order_id == "m-1"
            seen.append(str(update.event))
        assert seen[0] == "new"
        assert update.price is not None and update.qty == 0.01
    finally:
        stream.stop()
        await emulator.drop_streams()
        await asyncio.wait_for(runner, 10)


async def test_errors_map_to_alpaca_codes(emulator: AlpacaEmulator) -> None:
    with pytest.raises(APIError) as bad_key:
        await asyncio.to_thread(client(emulator, "wrong").get_account)
    assert bad_key.value.status_code == 401 and bad_key.value.code == 40110000
    emulator.venue.faults.arm(Fault(operation="place", kind=FaultKind.RATE_LIMIT))
    trading = client(emulator)
    trading._retry = 0  # the SDK would otherwise sleep and retry a 429 itself
    with pytest.raises(APIError) as limited:
        await asyncio.to_thread(trading.submit_order, LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=100))
    assert limited.value.status_code == 429 and limited.value.code == 42910000



@pytest.mark.parametrize(("stream_type", "path", "symbol"), [
    (StockDataStream, "/v2/iex", "BRK.B"), (CryptoDataStream, "/v1beta3/crypto/us", "BTC/USD"),
])
async def test_data_streams_deliver_quotes(emulator: AlpacaEmulator, stream_type: type, path: str, symbol: str) -> None:
    loop = asyncio.get_running_loop()
    quotes: asyncio.Queue[object] = asyncio.Queue()

    async def on_quote(quote: object) -> None:
        loop.call_soon_threadsafe(quotes.put_nowait, quote)

    stream = stream_type(API_KEY, API_SECRET, url_override=f"{emulator.url.replace('http', 'ws')}{path}")
    stream.subscribe_quotes(on_quote, symbol)
    runner = asyncio.create_task(asyncio.to_thread(stream.run))  # run() owns a loop of its own, in its thread
    try:
        quote = await asyncio.wait_for(quotes.get(), 10)
        assert quote.symbol == symbol and quote.ask_price >= quote.bid_price > 0
    finally:
        stream.stop()
        await emulator.drop_streams()
        await asyncio.wait_for(runner, 10)


async def test_the_alpaca_connector_trades_through_the_bus(
    emulator: AlpacaEmulator, nats_server: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """ConnectorService(venue="alpaca") with the table `connector_config()` gives: quotes
    stream onto the bus and a marketable order fills."""
    table = emulator.connector_config(account="main", api_key=API_KEY, api_secret=API_SECRET)
    settings = Settings(nats_url=nats_server.url, heartbeat_interval=0.2, venues={"alpaca": table})
    service = ConnectorService(settings, venue="alpaca", venue_config=venue_config(settings, "alpaca", env={}))
    nc = await nats.connect(nats_server.url)
    try:
        events = await collect(nc, subjects.order_events("alpaca", "main"), event_decoder.decode)
        quotes = await collect(nc, subjects.market_data_filter("alpaca", MarketDataKind.QUOTE), market_decoder.decode)
        async with running_service(service):
            seen = await quotes.wait_for(
                lambda items: any(isinstance(q, Quote) and q.symbol == "BRK.B" for q in items), timeout=15)
            quote = next(q for q in seen if isinstance(q, Quote) and q.symbol == "BRK.B")
            await route(nc, PlaceOrder(
                client_order_id="bus-1", venue="alpaca", account="main", symbol="BRK.B", side=Side.BUY,
                order_type=OrderType.LIMIT, quantity=Decimal(1), price=(quote.ask * 2).quantize(Decimal("0.01")),
                time_in_force=OurTimeInForce.DAY,
            ))
            await events.wait_for(
                lambda items: any(isinstance(e, OrderFilled) and e.client_order_id == "bus-1" for e in items), timeout=15)
        assert emulator.venue.find(API_KEY, client_order_id="bus-1").filled == Decimal(1)
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    finally:
        await nc.close()
