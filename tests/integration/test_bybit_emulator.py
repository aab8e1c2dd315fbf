"""The real ccxt SDK (`bybit`, async_support REST and pro websockets) trading against the
Bybit v5 emulator over HTTP and websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.pro as ccxt_pro
import nats
import pytest
from ccxt.base.errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    RateLimitExceeded,
)

from tradebus.emulators.bybit import BybitEmulator
from tradebus.schemas import subjects
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderFilled
from tradebus.schemas.market import Quote
from tradebus.schemas.values import MarketDataKind, OrderType, Side, TimeInForce
from tradebus.services.connector.service import ConnectorService
from tradebus.services.connector.venues.ccxt.connector import rebased
from tradebus.services.settings import Settings, venue_config
from tradebus.shared.natsserver import NatsServer
from tradebus.simulator.market import Level, MarketUpdate

from .helpers import collect, event_decoder, market_decoder, route, running_service, wait_until

API_KEY, API_SECRET = "bybit-test-key", "bybit-test-secret-9a2e"
SYMBOL = "BTC/USDT"


@pytest.fixture
async def emulator() -> AsyncIterator[BybitEmulator]:
    emulator = BybitEmulator.create(credentials={API_KEY: API_SECRET}, tick_interval=0.02)
    assert isinstance(emulator, BybitEmulator)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def client(emulator: BybitEmulator, *, api_key: str = API_KEY, api_secret: str = API_SECRET) -> Any:
    """The unmodified ccxt client, configured exactly as the connector would from
    `connector_config()` (every URL rebased onto the emulator, its options)."""
    table = emulator.connector_config(account="main", api_key=api_key, api_secret=api_secret)
    exchange = ccxt_pro.bybit({"apiKey": api_key, "secret": api_secret, "options": table["options"]})
    exchange.urls["api"] = rebased(exchange.urls["api"], table["rebase"]["rest"], table["rebase"]["ws"])
    return exchange


@pytest.fixture
async def bybit(emulator: BybitEmulator) -> AsyncIterator[Any]:
    exchange = client(emulator)
    try:
        yield exchange
    finally:
        await exchange.close()


async def best_bid(exchange: Any) -> float:
    return float((await exchange.fetch_order_book(SYMBOL, 1))["bids"][0][0])


async def test_markets_load_spot_only_and_the_balance_is_the_accounts(bybit: Any) -> None:
    markets = await bybit.load_markets()
    assert set(markets) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert all(market["spot"] and market["id"] == symbol.replace("/", "") for symbol, market in markets.items())
    assert markets[SYMBOL]["precision"]["price"] == 0.01
    balance = await bybit.fetch_balance()
    assert balance["USDT"]["free"] == 1_000_000


async def test_a_limit_order_is_found_by_client_id_amended_and_cancelled(bybit: Any, emulator: BybitEmulator) -> None:
    price = round(await best_bid(bybit) * 0.9, 2)
    placed = await bybit.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "limit-1"})
    assert placed["clientOrderId"] == "limit-1"

    [found] = await bybit.fetch_open_orders(SYMBOL, params={"orderLinkId": "limit-1"})
    assert (found["id"], found["status"], found["price"], found["amount"]) == (placed["id"], "open", price, 0.01)

    lower = round(price * 0.95, 2)
    await bybit.edit_order(placed["id"], SYMBOL, "limit", "buy", 0.02, lower)
    amended = await bybit.fetch_open_order(placed["id"], SYMBOL)
    assert (amended["price"], amended["amount"]) == (lower, 0.02)
    assert emulator.venue.find(API_KEY, client_order_id="limit-1").quantity == Decimal("0.02")

    await bybit.cancel_order(placed["id"], SYMBOL)
    closed = await bybit.fetch_closed_order(placed["id"], SYMBOL)
    assert closed["status"] == "canceled"
    with pytest.raises(InvalidOrder):  # cancelling again: no longer open
        await bybit.cancel_order(placed["id"], SYMBOL)


async def test_a_marketable_order_fills_and_the_private_streams_tell_it(bybit: Any, emulator: BybitEmulator) -> None:
    orders_seen = asyncio.ensure_future(bybit.watch_orders())
    trades_seen = asyncio.ensure_future(bybit.watch_my_trades())
    await wait_until(lambda: emulator.streams.subscribers("order") and emulator.streams.subscribers("execution"),
                     "the private topics subscribed")

    placed = await bybit.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "taker-1"})
    order = await bybit.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"], order["clientOrderId"]) == ("closed", 0.01, "taker-1")

    trades = await trades_seen
    assert (trades[0]["order"], trades[0]["amount"], trades[0]["side"]) == (placed["id"], 0.01, "buy")
    orders = await orders_seen
    assert orders[0]["clientOrderId"] == "taker-1"
    while orders[-1]["status"] != "closed":  # the acceptance may come alone, the fill after it
        orders = await bybit.watch_orders()
    assert orders[-1]["filled"] == 0.01
    [listed] = await bybit.fetch_my_trades(SYMBOL)
    assert listed["id"] == trades[0]["id"]


async def test_a_market_buy_with_a_price_is_sent_as_a_quote_coin_cost(bybit: Any) -> None:
    """Given a price, ccxt sends a spot market buy as its cost in quote coin (Bybit's
    default unit for market buys, so no marketUnit): 0.01 BTC x ask is a few hundred USDT, which read as a
    BTC quantity would be refused for insufficient funds."""
    ask = float((await bybit.fetch_order_book(SYMBOL, 1))["asks"][0][0])
    by_cost = await bybit.create_order(SYMBOL, "market", "buy", 0.01, ask, {"clientOrderId": "cost-1"})
    sent = json.loads(bybit.last_request_body)
    assert "marketUnit" not in sent and abs(Decimal(sent["qty"]) - Decimal(str(ask)) / 100) < Decimal("0.01")
    order = await bybit.fetch_order(by_cost["id"], SYMBOL)
    assert order["status"] == "closed" and 0.009 <= order["filled"] <= 0.01


async def test_conditional_and_post_only_orders(bybit: Any) -> None:
    ask = float((await bybit.fetch_order_book(SYMBOL, 1))["asks"][0][0])
    stop = await bybit.create_order(SYMBOL, "limit", "buy", 0.01, round(ask * 1.2, 2),
                                    {"clientOrderId": "stop-1", "triggerPrice": round(ask * 1.1, 2)})
    assert json.loads(bybit.last_request_body)["orderFilter"] == "StopOrder"
    waiting = await bybit.fetch_open_order(stop["id"], SYMBOL, {"trigger": True})
    assert (waiting["info"]["orderStatus"], waiting["triggerPrice"]) == ("Untriggered", round(ask * 1.1, 2))
    await bybit.cancel_order(stop["id"], SYMBOL, {"trigger": True})

    resting = await bybit.create_order(SYMBOL, "limit", "buy", 0.01, round(ask * 0.5, 2),
                                       {"clientOrderId": "maker-1", "postOnly": True})
    assert (await bybit.fetch_open_order(resting["id"], SYMBOL))["postOnly"] is True
    # one that would take is accepted, then cancelled (test_bybit_lifecycle_emulator.py)


async def test_the_order_book_stays_in_sync_across_deltas(emulator: BybitEmulator, bybit: Any) -> None:
    books: dict[int, tuple[list[Level], list[Level]]] = {}

    def record(update: MarketUpdate) -> None:
        if update.symbol == SYMBOL and update.bids is not None and update.asks is not None:
            books[update.ts // 1_000_000] = (update.bids[:50], update.asks[:50])

    emulator.venue.on_market(record)
    deltas = 0
    while deltas < 10:
        book = await bybit.watch_order_book(SYMBOL)
        if book["timestamp"] not in books:
            continue  # the subscription's snapshot, taken before recording began
        deltas += 1
        bids, asks = books[book["timestamp"]]
        assert book["bids"] == [[float(p), float(s)] for p, s in bids]
        assert book["asks"] == [[float(p), float(s)] for p, s in asks]


async def test_public_trades_tickers_and_klines_stream(bybit: Any) -> None:
    trades = await bybit.watch_trades(SYMBOL)
    assert trades and all(t["symbol"] == SYMBOL and t["price"] > 0 and t["side"] in ("buy", "sell") for t in trades)
    quotes = await bybit.watch_bids_asks([SYMBOL])
    assert quotes[SYMBOL]["bid"] < quotes[SYMBOL]["ask"]
    ticker = await bybit.watch_ticker(SYMBOL)
    assert ticker["last"] > 0
    candle = (await bybit.watch_ohlcv(SYMBOL, "1m"))[-1]
    assert candle[3] <= candle[4] <= candle[2]  # low <= close <= high
    [rest_candle, *_] = await bybit.fetch_ohlcv(SYMBOL, "1m")
    assert rest_candle[0] % 60_000 == 0


async def test_venue_refusals_carry_bybits_codes(bybit: Any) -> None:
    price = round(await best_bid(bybit) * 0.9, 2)
    await bybit.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})
    with pytest.raises(InvalidOrder, match="170141"):
        await bybit.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})
    with pytest.raises(InsufficientFunds, match="170131"):
        await bybit.create_order(SYMBOL, "limit", "buy", 1000, price, {"clientOrderId": "big-1"})
    with pytest.raises(OrderNotFound, match="110001"):
        await bybit.cancel_order("999", SYMBOL)


async def test_a_rate_limited_request_raises_rate_limit_exceeded(emulator: BybitEmulator, bybit: Any) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{emulator.url}/__emulator/faults", json={"kind": "rate_limit", "operation": "balance"})
        assert response.status == 200
    with pytest.raises(RateLimitExceeded, match="10006"):
        await bybit.fetch_balance()
    assert int(bybit.last_response_headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    assert (await bybit.fetch_balance())["USDT"]["free"] > 0  # the next request goes through


async def test_a_bad_key_or_signature_raises_authentication_error(emulator: BybitEmulator) -> None:
    unknown_key = client(emulator, api_key="not-a-key")
    wrong_secret = client(emulator, api_secret="not-the-secret")
    try:
        with pytest.raises(AuthenticationError, match="10003"):
            await unknown_key.fetch_balance()
        with pytest.raises(AuthenticationError, match="10004"):
            await wrong_secret.fetch_balance()
        await wrong_secret.close()
        wrong_secret = client(emulator)
        await wrong_secret.load_markets()
        wrong_secret.secret = "not-the-secret"
        with pytest.raises(ExchangeError, match="Request not authorized"):  # the private stream's auth refuses too
            await wrong_secret.watch_orders()
    finally:
        await unknown_key.close()
        await wrong_secret.close()


async def test_the_ccxt_connector_trades_bybit_through_the_bus(
    emulator: BybitEmulator, nats_server: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """ConnectorService(venue="bybit") with the table `connector_config()` gives: a
    marketable order fills and quotes stream onto the bus."""
    table = emulator.connector_config(account="main", api_key=API_KEY, api_secret=API_SECRET)
    settings = Settings(nats_url=nats_server.url, heartbeat_interval=0.2, venues={"bybit": table})
    service = ConnectorService(settings, venue="bybit", venue_config=venue_config(settings, "bybit", env={}))
    nc = await nats.connect(nats_server.url)
    try:
        events = await collect(nc, subjects.order_events("bybit", "main"), event_decoder.decode)
        quotes = await collect(nc, subjects.market_data_filter("bybit", MarketDataKind.QUOTE), market_decoder.decode)
        async with running_service(service):
            quote = (await quotes.wait_for(lambda items: any(isinstance(q, Quote) for q in items), timeout=15))[0]
            assert quote.symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT") and quote.bid < quote.ask
            await route(nc, PlaceOrder(
                client_order_id="bus-1", venue="bybit", account="main", symbol=SYMBOL, side=Side.BUY,
                order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=(Decimal(str(best_ask(emulator))) * 2).quantize(Decimal("0.01")),
                time_in_force=TimeInForce.IOC,
            ))
            await events.wait_for(lambda items: any(isinstance(e, OrderFilled) and e.client_order_id == "bus-1" for e in items), timeout=15)
        assert emulator.venue.find(API_KEY, client_order_id="bus-1").filled == Decimal("0.01")
        places = [operation for _, operation in emulator.venue.requests if operation == "place"]
        assert len(places) == 1, "the place was answered and acknowledged once, not redelivered"
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    finally:
        await nc.close()


def best_ask(emulator: BybitEmulator) -> Decimal:
    return emulator.streams.books[SYMBOL].asks[0][0]


async def test_pings_are_answered_as_bybit_does(emulator: BybitEmulator) -> None:
    """ccxt sends {"op": "ping", "req_id"} on both streams and takes the public answer by
    its ret_msg "pong", the private one by its op "pong"."""
    ws_url = emulator.url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{ws_url}/v5/public/spot") as public:
            await public.send_json({"op": "ping", "req_id": "7"})
            answer = await public.receive_json()
            assert (answer["success"], answer["ret_msg"], answer["op"], answer["req_id"]) == (True, "pong", "ping", "7")
        async with http.ws_connect(f"{ws_url}/v5/private") as private:
            await private.send_json({"op": "ping", "req_id": "8"})
            answer = await private.receive_json()
            assert (answer["op"], answer["req_id"]) == ("pong", "8") and answer["args"][0].isdigit()
