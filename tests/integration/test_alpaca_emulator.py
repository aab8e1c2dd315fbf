"""The unmodified alpaca-py TradingClient and TradingStream against the Alpaca emulator over
real HTTP and websockets on 127.0.0.1 (the SDK is synchronous: calls run in threads)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

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
from tradebus.schemas.values import TimeInForce as OurTimeInForce
from tradebus.services.connector.errors import VenueError
from tradebus.services.connector.venues.alpaca import parsing
from tradebus.services.connector.venues.alpaca.sdk import trading_client

from .emulatortests import EmulatorTests, emulator_fixture

API_KEY, API_SECRET = "alpaca-key", "alpaca-secret"

emulator = emulator_fixture(AlpacaEmulator, API_KEY, API_SECRET)


def client(emulator: AlpacaEmulator, secret: str = API_SECRET) -> TradingClient:
    return TradingClient(API_KEY, secret, paper=True, url_override=emulator.url)


class TestAlpacaEmulator(EmulatorTests):
    symbol, quantity, time_in_force = "BRK.B", Decimal(1), OurTimeInForce.DAY
    auth_error = APIError

    def private_stream_ready(self, emulator: AlpacaEmulator) -> bool:
        return emulator.trade_stream_listening(API_KEY)

    async def read_account(self, emulator: AlpacaEmulator, *, api_secret: str) -> None:
        await asyncio.to_thread(client(emulator, api_secret).get_account)

    def venue_error(self, emulator: AlpacaEmulator, exc: Exception) -> VenueError:
        return parsing.venue_error(exc, changes_state=False)

    def check_auth_refusal(self, refusal: Exception) -> None:
        assert isinstance(refusal, APIError) and refusal.status_code == 401 and refusal.code == 40110000


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


async def test_a_rate_limit_carries_alpacas_code(emulator: AlpacaEmulator) -> None:
    """(A bad key's 401 / 40110000: EmulatorTests.)"""
    emulator.venue.faults.arm(Fault(operation="place", kind=FaultKind.RATE_LIMIT))
    trading = trading_client(API_KEY, API_SECRET, paper=True, url=emulator.url)  # the SDK's own 429 retry off
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
