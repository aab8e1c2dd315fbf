"""The rate-limit headers the emulators put on their answers, compared with what the venues
document (tests/venues/<venue>/corpus/headers.json), through the real ccxt SDK over HTTP:
on every answer, refusals included, not only on a rate-limited one."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro as ccxt_pro
import pytest
from ccxt.base.errors import BaseError

from tradebus.emulators.binance import BinanceEmulator
from tradebus.emulators.bybit import BybitEmulator
from tradebus.emulators.faults import Fault, FaultKind
from tradebus.emulators.server import Emulator
from tradebus.services.connector.venues.ccxt.connector import rebased

from .corpus import HERE

API_KEY, API_SECRET = "headers-key", "headers-secret-07d1"
SYMBOL = "BTC/USDT"


def documented(venue: str) -> dict[str, Any]:
    return json.loads((HERE / venue / "corpus" / "headers.json").read_text())


@contextlib.asynccontextmanager
async def serving(name: str) -> AsyncIterator[tuple[Emulator, Any]]:
    """A started emulator and the unmodified ccxt client configured as the connector would be."""
    kind = BinanceEmulator if name == "binance" else BybitEmulator
    emulator = kind.create(credentials={API_KEY: API_SECRET}, tick_interval=0.05)
    await emulator.start()
    table = emulator.connector_config(account="main", api_key=API_KEY, api_secret=API_SECRET)
    exchange = getattr(ccxt_pro, name)({"apiKey": API_KEY, "secret": API_SECRET, "options": table["options"]})
    exchange.urls["api"] = rebased(exchange.urls["api"], table["rebase"]["rest"], table["rebase"]["ws"])
    try:
        yield emulator, exchange
    finally:
        await exchange.close()
        await emulator.stop()


@pytest.fixture(params=["binance", "bybit"])
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Emulator, Any]]:
    async with serving(request.param) as served:
        yield served


async def answer_headers(exchange: Any, call: Any) -> dict[str, str]:
    """The headers of the answer to `call`, whether it succeeded or was refused."""
    try:
        await call
    except BaseError:
        pass
    return dict(exchange.last_response_headers)


async def test_every_answer_carries_the_documented_limit_headers(venue: tuple[Emulator, Any]) -> None:
    emulator, exchange = venue
    names = documented(emulator.name)["every_answer"]
    await exchange.load_markets()
    bid = (await exchange.fetch_order_book(SYMBOL, 5))["bids"][0][0]
    answers = {
        "balance": await answer_headers(exchange, exchange.fetch_balance()),
        "resting order": await answer_headers(exchange, exchange.create_order(SYMBOL, "limit", "buy", 0.01, round(bid * 0.9, 2))),
        "refused order": await answer_headers(exchange, exchange.create_order(SYMBOL, "limit", "buy", 10_000, round(bid * 0.9, 2))),
    }
    emulator.venue.faults.arm(Fault(kind=FaultKind.RATE_LIMIT, operation="balance"))
    answers["rate limited"] = await answer_headers(exchange, exchange.fetch_balance())
    for what, headers in answers.items():
        missing = [name for name in names if name not in headers]
        assert not missing, f"{emulator.name}: the {what} answer lacks {missing}"


async def test_binance_counts_weight_and_orders_as_documented() -> None:
    async with serving("binance") as (emulator, exchange):
        await binance_counts(emulator, exchange)


async def binance_counts(emulator: Emulator, exchange: Any) -> None:
    recorded = documented("binance")
    await exchange.load_markets()
    bid = (await exchange.fetch_order_book(SYMBOL, 5))["bids"][0][0]
    first = int((await answer_headers(exchange, exchange.fetch_balance()))["X-MBX-USED-WEIGHT-1M"])
    placed = await answer_headers(exchange, exchange.create_order(SYMBOL, "limit", "buy", 0.01, round(bid * 0.9, 2)))
    assert int(placed["X-MBX-USED-WEIGHT-1M"]) == first + 1  # one unit a request, within the minute
    assert [name for name in recorded["successful_order"] if name in placed] == recorded["successful_order"]
    assert {placed[name] for name in recorded["successful_order"]} == {"1"}
    refused = await answer_headers(exchange, exchange.create_order(SYMBOL, "limit", "buy", 10_000, round(bid * 0.9, 2)))
    assert not any(name in refused for name in recorded["successful_order"])  # counted only on success
    emulator.venue.faults.arm(Fault(kind=FaultKind.RATE_LIMIT, operation="balance", retry_after=3))
    limited = await answer_headers(exchange, exchange.fetch_balance())
    assert [name for name in recorded["rate_limited"] if name in limited] == recorded["rate_limited"]
    declared = (await exchange.publicGetExchangeInfo())["rateLimits"]
    suffixes = {f"{limit['intervalNum']}{limit['interval'][0]}" for limit in declared}
    assert {name.rsplit("-", 1)[1] for name in [*recorded["every_answer"], *recorded["successful_order"]]} <= suffixes


async def test_bybit_reports_its_limit_what_remains_and_when_it_resets() -> None:
    async with serving("bybit") as (emulator, exchange):
        await bybit_limits(emulator, exchange)


async def bybit_limits(emulator: Emulator, exchange: Any) -> None:
    example = documented("bybit")["example"]
    headers = await answer_headers(exchange, exchange.fetch_balance())
    assert all(headers[name].isdigit() for name in example)  # integers as strings, as documented
    assert int(headers["X-Bapi-Limit"]) == emulator.requests_per_second
    assert int(headers["X-Bapi-Limit-Status"]) < int(headers["X-Bapi-Limit"])  # this request used one
    assert abs(int(headers["X-Bapi-Limit-Reset-Timestamp"]) - time.time() * 1000) < 5_000  # not exceeded: now
    emulator.venue.faults.arm(Fault(kind=FaultKind.RATE_LIMIT, operation="balance", retry_after=2))
    limited = await answer_headers(exchange, exchange.fetch_balance())
    assert limited["X-Bapi-Limit-Status"] == "0"
    assert int(limited["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000 + 1_000  # exceeded: when it resets
