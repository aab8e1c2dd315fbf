"""The real ccxt SDK (`binance`, async_support REST and pro websockets) trading against the
Binance spot emulator over HTTP and websockets on 127.0.0.1, and the ccxt connector
hosting it on the bus."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import DDoSProtection, InsufficientFunds, OrderNotFound

from tradebus.emulators.binance import BinanceEmulator
from tradebus.schemas.values import RejectReason, TimeInForce
from tradebus.services.connector.errors import OrderRefused, VenueBusy
from tradebus.services.connector.venues.ccxt import parsing

from .emulatortests import CcxtEmulatorTests, ccxt_fixture, control, emulator_fixture
from .helpers import wait_until

API_KEY, API_SECRET = "binance-test-key", "binance-test-secret-41c7"
SYMBOL = "BTC/USDT"

emulator = emulator_fixture(BinanceEmulator, API_KEY, API_SECRET)
binance = ccxt_fixture()


class TestBinanceEmulator(CcxtEmulatorTests):
    symbol, quantity, time_in_force = SYMBOL, Decimal("0.01"), TimeInForce.IOC

    def private_stream_ready(self, emulator: BinanceEmulator) -> bool:
        return emulator.user_stream_subscribed(API_KEY)

    def check_auth_refusal(self, refusal: Exception) -> None:
        assert '"code": -1022' in str(refusal)  # rest-api.md: "Signature for this request is not valid."


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

    await control(emulator, "faults", {"kind": "rate_limit", "operation": "balance"})
    with pytest.raises(DDoSProtection) as limited:  # ccxt raises this, not RateLimitExceeded, for a binance 429
        await binance.fetch_balance()
    assert binance.last_http_response is not None and int(binance.last_response_headers["Retry-After"]) > 0
    busy = parsing.venue_error(limited.value, changes_state=False, retry_after=float(binance.last_response_headers["Retry-After"]))
    assert isinstance(busy, VenueBusy) and busy.retry_after is not None and busy.retry_after > 0
