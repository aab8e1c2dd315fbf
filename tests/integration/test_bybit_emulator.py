"""The real ccxt SDK (`bybit`, async_support REST and pro websockets) trading against the
Bybit v5 emulator over HTTP and websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp
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
from tradebus.schemas.values import TimeInForce
from tradebus.simulator.market import Level, MarketUpdate

from .emulatortests import CcxtEmulatorTests, ccxt_client, ccxt_fixture, control, emulator_fixture
from .helpers import wait_until

API_KEY, API_SECRET = "bybit-test-key", "bybit-test-secret-9a2e"
SYMBOL = "BTC/USDT"

emulator = emulator_fixture(BybitEmulator, API_KEY, API_SECRET)
bybit = ccxt_fixture()


class TestBybitEmulator(CcxtEmulatorTests):
    symbol, quantity, time_in_force = SYMBOL, Decimal("0.01"), TimeInForce.IOC

    def private_stream_ready(self, emulator: BybitEmulator) -> bool:
        return emulator.streams.subscribers("order") >= 1

    def check_auth_refusal(self, refusal: Exception) -> None:
        assert "10004" in str(refusal)  # docs/v5/error.mdx: "Error sign, please check your signature generation algorithm."


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
    await control(emulator, "faults", {"kind": "rate_limit", "operation": "balance"})
    with pytest.raises(RateLimitExceeded, match="10006"):
        await bybit.fetch_balance()
    assert int(bybit.last_response_headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    assert (await bybit.fetch_balance())["USDT"]["free"] > 0  # the next request goes through


async def test_an_unknown_key_or_a_bad_stream_signature_raises_authentication_error(emulator: BybitEmulator) -> None:
    """(A bad REST signature: EmulatorTests, 10004.)"""
    unknown_key = ccxt_client(emulator, api_key="not-a-key")
    wrong_secret = ccxt_client(emulator)
    try:
        with pytest.raises(AuthenticationError, match="10003"):
            await unknown_key.fetch_balance()
        await wrong_secret.load_markets()
        wrong_secret.secret = "not-the-secret"
        with pytest.raises(ExchangeError, match="Request not authorized"):  # the private stream's auth refuses too
            await wrong_secret.watch_orders()
    finally:
        await unknown_key.close()
        await wrong_secret.close()


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
