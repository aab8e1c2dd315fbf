"""Binance's asynchronous behaviours through the real ccxt SDK and the ccxt connector: the
ids of a cancel (`c` / `C`), a user data stream the venue terminates, a server shutdown,
the 24 h connection lifetime, and the timing check of signed requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import InvalidNonce, NetworkError

from tradebus.emulators.binance import BinanceEmulator
from tradebus.schemas.values import OrderType, Side
from tradebus.services.connector.errors import VenueBusy
from tradebus.services.connector.venues.ccxt import parsing
from tradebus.services.connector.venues.ccxt.stream_ends import surface_stream_ends
from tradebus.shared.natsserver import NatsServer

from ..venues.corpus import errors, same_body
from .emulatortests import ccxt_client, connector_on_bus, control, filled
from .helpers import Collector, wait_until
from .test_binance_emulator import API_KEY, SYMBOL, binance, emulator

__all__ = ["binance", "emulator"]  # fixtures shared with test_binance_emulator.py


def fill_elsewhere(emulator: BinanceEmulator, client_order_id: str) -> None:
    """An order another tool fills on the same account while the connector listens."""
    emulator.venue.place(API_KEY, client_order_id=client_order_id, symbol=SYMBOL, side=Side.BUY,
                         order_type=OrderType.MARKET, quantity=Decimal("0.01"))


async def test_a_cancel_names_the_cancel_request_c_and_the_order_C(emulator: BinanceEmulator, binance: Any) -> None:
    await binance.load_markets()
    watching = asyncio.ensure_future(binance.watch_orders(SYMBOL))
    await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "the user data stream subscribed")
    bid = (await binance.fetch_order_book(SYMBOL, 5))["bids"][0][0]
    placed = await binance.create_order(SYMBOL, "limit", "buy", 0.01, round(bid * 0.9, 2), {"clientOrderId": "keep-1"})
    await asyncio.wait_for(watching, timeout=10)

    cancelled = await binance.cancel_order(placed["id"], SYMBOL)
    # rest-api.md "Cancel order": clientOrderId is the cancel's (generated: none was sent)
    assert cancelled["info"]["origClientOrderId"] == "keep-1" and cancelled["info"]["clientOrderId"] != "keep-1"
    assert parsing.order_snapshot(cancelled).client_order_id == "keep-1"

    cached = binance.orders.hashmap[SYMBOL]
    await wait_until(lambda: cached[placed["id"]]["status"] == "canceled", "the cancel on the user data stream")
    report = cached[placed["id"]]["info"]
    assert (report["x"], report["c"], report["C"]) == ("CANCELED", cancelled["info"]["clientOrderId"], "keep-1")
    assert parsing.order_snapshot(cached[placed["id"]]).client_order_id == "keep-1"


async def test_a_terminated_user_data_stream_wakes_the_watch_and_is_subscribed_anew(
    emulator: BinanceEmulator, binance: Any,
) -> None:
    surface_stream_ends(binance, "binance")
    await binance.load_markets()
    watching = asyncio.ensure_future(binance.watch_orders(SYMBOL))
    await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "the user data stream subscribed")
    assert (await control(emulator, "binance/terminate-user-streams"))["terminated"] == 1
    with pytest.raises(NetworkError, match="eventStreamTerminated"):
        await asyncio.wait_for(watching, timeout=5)  # ccxt alone leaves this watch pending for good
    watching = asyncio.ensure_future(binance.watch_orders(SYMBOL))
    await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "a new subscription")
    fill_elsewhere(emulator, "after-terminate")
    assert (await asyncio.wait_for(watching, timeout=10))[-1]["clientOrderId"] == "after-terminate"


@contextlib.asynccontextmanager
async def connector_events(emulator: BinanceEmulator, nats_server: NatsServer) -> AsyncIterator[Collector]:
    """The ccxt connector serving Binance through the emulator, its user data stream up; its order events."""
    async with connector_on_bus(emulator, nats_server, ready=lambda: emulator.user_stream_subscribed(API_KEY)) as (_, events):
        yield events


@pytest.fixture
async def bus(emulator: BinanceEmulator, nats_server: NatsServer) -> AsyncIterator[Collector]:
    async with connector_events(emulator, nats_server) as events:
        yield events


async def test_the_connector_resumes_after_the_venue_terminates_its_stream(
    emulator: BinanceEmulator, bus: Collector,
) -> None:
    await control(emulator, "binance/terminate-user-streams")
    await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "the connector subscribed anew", 15)
    fill_elsewhere(emulator, "ext-terminated")
    await filled(bus, "ext-terminated")


async def test_the_connector_reconnects_on_server_shutdown_before_the_disconnection(
    emulator: BinanceEmulator, bus: Collector,
) -> None:
    (before,) = emulator.api_stream.sessions
    await control(emulator, "binance/server-shutdown", {"close_after": 10})
    # a new WebSocket API connection, subscribed, while the announced one still stands
    await wait_until(lambda: before not in emulator.api_stream.sessions and emulator.user_stream_subscribed(API_KEY),
                     "a new connection before the disconnection", 8)
    fill_elsewhere(emulator, "ext-shutdown")
    await filled(bus, "ext-shutdown")


async def test_connections_end_with_their_lifetime_and_the_connector_carries_on(
    emulator: BinanceEmulator, nats_server: NatsServer,
) -> None:
    assert emulator.lifetime == 24 * 3600  # web-socket-api.md: "only valid for 24 hours"
    await control(emulator, "connection-lifetime", {"seconds": 1.5})
    async with connector_events(emulator, nats_server) as events:
        first = emulator.api_stream.sessions[0]
        await wait_until(lambda: first not in emulator.api_stream.sessions, "the venue ending the connection", 5)
        await wait_until(lambda: emulator.user_stream_subscribed(API_KEY), "the connector subscribed anew", 15)
        fill_elsewhere(emulator, "ext-lifetime")
        await filled(events, "ext-lifetime")


@pytest.mark.parametrize(("skew_ms", "recorded"), [(30_000, "1021-outside-recv-window"), (-10_000, "1021-ahead-of-server")])
async def test_a_request_outside_the_timing_window_is_refused_as_recorded(
    emulator: BinanceEmulator, skew_ms: int, recorded: str,
) -> None:
    """ccxt signs with `milliseconds() - options['timeDifference']`: a clock 30 s behind
    (ccxt sends recvWindow 10,000 ms) or 10 s ahead."""
    (body,) = [r.body for r in errors("binance") if r.name == f"binance/{recorded}"]
    late = ccxt_client(emulator)
    late.options["timeDifference"] = skew_ms
    try:
        with pytest.raises(InvalidNonce) as refused:
            await late.fetch_balance()
        assert same_body(json.loads(late.last_http_response), body)
        mapped = parsing.venue_error(refused.value, changes_state=True, exchange_id="binance",
                                     last_body=late.last_http_response)
        assert isinstance(mapped, VenueBusy)  # retryable: nothing was done
    finally:
        await late.close()
