"""The real ccxt SDK (`binance`, async_support REST and pro websockets) trading against the
Binance spot emulator over HTTP and websockets on 127.0.0.1, and the ccxt connector
hosting it on the bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.pro as ccxt_pro
import nats
import pytest
from ccxt.base.errors import AuthenticationError, DDoSProtection, InsufficientFunds, OrderNotFound

from tradebus.emulators.binance import BinanceEmulator
from tradebus.schemas import subjects
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderFilled
from tradebus.schemas.market import Quote
from tradebus.schemas.values import MarketDataKind, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.connector.errors import OrderRefused, VenueBusy
from tradebus.services.connector.service import ConnectorService
from tradebus.services.connector.venues.ccxt import parsing
from tradebus.services.connector.venues.ccxt.connector import rebased
from tradebus.services.settings import Settings, venue_config
from tradebus.shared.natsserver import NatsServer

from .helpers import collect, event_decoder, market_decoder, route, running_service, wait_until

API_KEY, API_SECRET = "binance-test-key", "binance-test-secret-41c7"
SYMBOL = "BTC/USDT"


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emulator = BinanceEmulator.create(credentials={API_KEY: API_SECRET}, tick_interval=0.02)
    assert isinstance(emulator, BinanceEmulator)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def client(emulator: BinanceEmulator, *, api_secret: str = API_SECRET) -> Any:
    """The unmodified ccxt client, configured as the connector configures it from
    `connector_config()`: every URL rebased onto the emulator, the same options."""
    table = emulator.connector_config(account="main", api_key=API_KEY, api_secret=api_secret)
    exchange = ccxt_pro.binance({"apiKey": API_KEY, "secret": api_secret, "options": table["options"]})
    exchange.urls["api"] = rebased(exchange.urls["api"], table["rebase"]["rest"], table["rebase"]["ws"])
    return exchange


@pytest.fixture
async def binance(emulator: BinanceEmulator) -> AsyncIterator[Any]:
    exchange = client(emulator)
    try:
        yield exchange
    finally:
        await exchange.close()


async def test_markets_load_with_binance_ids_and_instrument_rules(binance: Any) -> None:
    markets = await binance.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(markets)
    assert all(market["id"] == symbol.replace("/", "") for symbol, market in markets.items())
    instrument = parsing.instrument("binance", markets[SYMBOL], binance.precisionMode)
    assert (instrument.symbol, instrument.venue_symbol) == (SYMBOL, "BTCUSDT")
    assert instrument.tick_size > 0 and instrument.lot_size > 0
    assert (await binance.fetch_balance())["USDT"]["free"] > 0


async def test_an_order_is_found_and_cancelled_by_client_order_id(binance: Any) -> None:
    bid = (await binance.fetch_order_book(SYMBOL, 5))["bids"][0][0]
    price = round(bid * 0.9, 2)
    placed = await binance.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "rest-1"})
    assert placed["clientOrderId"] == "rest-1"

    found = await binance.fetch_order(None, SYMBOL, {"origClientOrderId": "rest-1"})
    assert (found["id"], found["status"], found["price"], found["amount"]) == (placed["id"], "open", price, 0.01)
    assert [o["clientOrderId"] for o in await binance.fetch_open_orders(SYMBOL)] == ["rest-1"]

    cancelled = await binance.cancel_order(None, SYMBOL, {"origClientOrderId": "rest-1"})
    assert cancelled["status"] == "canceled"
    with pytest.raises(OrderNotFound):
        await binance.cancel_order(None, SYMBOL, {"origClientOrderId": "rest-1"})


async def test_watch_orders_sees_a_fill(emulator: BinanceEmulator, binance: Any) -> None:
    await binance.load_markets()
    first_update = asyncio.ensure_future(binance.watch_orders(SYMBOL))
    await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "the user data stream subscribed")
    ask = (await binance.fetch_order_book(SYMBOL, 5))["asks"][0][0]
    placed = await binance.create_order(SYMBOL, "limit", "buy", 0.01, round(ask * 1.5, 2),
                                        {"clientOrderId": "taker-1", "timeInForce": "IOC"})
    assert (await asyncio.wait_for(first_update, timeout=10))[-1]["clientOrderId"] == "taker-1"
    # The acceptance resolves the watch; the fill follows on the same stream, and ccxt's order
    # cache (kept by its stream reader) holds each order's latest state.
    cached = binance.orders.hashmap[SYMBOL]
    await wait_until(lambda: cached[placed["id"]]["status"] == "closed", "the fill on the user data stream")
    update = cached[placed["id"]]
    assert (update["id"], update["clientOrderId"], update["filled"]) == (placed["id"], "taker-1", 0.01)
    assert update["trades"] and update["trades"][-1]["amount"] == 0.01  # the fill fields of executionReport


async def test_the_order_book_syncs_from_snapshot_and_diffs(binance: Any) -> None:
    # ccxt hands back one book, updated in place: read its update id after each update.
    nonces = [(await asyncio.wait_for(binance.watch_order_book(SYMBOL), timeout=10))["nonce"] for _ in range(5)]
    assert nonces == sorted(nonces) and nonces[0] < nonces[-1]  # diffs applied in update-id order
    latest = await binance.watch_order_book(SYMBOL)
    assert latest["bids"][0][0] < latest["asks"][0][0]
    assert [level[0] for level in latest["bids"]] == sorted((level[0] for level in latest["bids"]), reverse=True)


async def test_refusals_and_rate_limits_map_onto_the_taxonomy(emulator: BinanceEmulator, binance: Any) -> None:
    bid = (await binance.fetch_order_book(SYMBOL, 5))["bids"][0][0]
    with pytest.raises(InsufficientFunds) as refused:
        await binance.create_order(SYMBOL, "limit", "buy", 1000, round(bid * 0.9, 2), {"clientOrderId": "big-1"})
    mapped = parsing.venue_error(refused.value, changes_state=True, exchange_id="binance",
                                 last_body=binance.last_http_response)
    assert isinstance(mapped, OrderRefused) and mapped.reason == RejectReason.INSUFFICIENT_FUNDS

    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{emulator.url}/__emulator/faults", json={"kind": "rate_limit", "operation": "balance"})
        assert response.status == 200
    with pytest.raises(DDoSProtection) as limited:  # ccxt raises this, not RateLimitExceeded, for a binance 429
        await binance.fetch_balance()
    assert binance.last_http_response is not None and int(binance.last_response_headers["Retry-After"]) > 0
    busy = parsing.venue_error(limited.value, changes_state=False, retry_after=float(binance.last_response_headers["Retry-After"]))
    assert isinstance(busy, VenueBusy) and busy.retry_after is not None and busy.retry_after > 0


async def test_a_wrong_secret_is_an_authentication_error(emulator: BinanceEmulator) -> None:
    wrong = client(emulator, api_secret="not-the-secret")
    try:
        with pytest.raises(AuthenticationError):
            await wrong.fetch_balance()
    finally:
        await wrong.close()


async def test_the_ccxt_connector_trades_binance_through_the_bus(
    emulator: BinanceEmulator, nats_server: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """ConnectorService(venue="binance") with the table `connector_config()` gives: quotes
    stream onto the bus and a marketable order fills."""
    table = emulator.connector_config(account="main", api_key=API_KEY, api_secret=API_SECRET)
    settings = Settings(nats_url=nats_server.url, heartbeat_interval=0.2, venues={"binance": table})
    service = ConnectorService(settings, venue="binance", venue_config=venue_config(settings, "binance", env={}))
    nc = await nats.connect(nats_server.url)
    try:
        events = await collect(nc, subjects.order_events("binance", "main"), event_decoder.decode)
        quotes = await collect(nc, subjects.market_data_filter("binance", MarketDataKind.QUOTE), market_decoder.decode)
        async with running_service(service):
            seen = await quotes.wait_for(
                lambda items: any(isinstance(q, Quote) and q.symbol == SYMBOL for q in items), timeout=15)
            quote = next(q for q in seen if isinstance(q, Quote) and q.symbol == SYMBOL)
            assert quote.bid < quote.ask
            await route(nc, PlaceOrder(
                client_order_id="bus-1", venue="binance", account="main", symbol=SYMBOL, side=Side.BUY,
                order_type=OrderType.LIMIT, quantity=Decimal("0.01"),
                price=(quote.ask * 2).quantize(Decimal("0.01")), time_in_force=TimeInForce.IOC,
            ))
            await events.wait_for(
                lambda items: any(isinstance(e, OrderFilled) and e.client_order_id == "bus-1" for e in items), timeout=15)
        assert emulator.venue.find(API_KEY, client_order_id="bus-1").filled == Decimal("0.01")
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    finally:
        await nc.close()
