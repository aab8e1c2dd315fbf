"""Fees and account state, the same on every venue: a fill carries the venue's trade id, fee
and fee currency, and is followed on the account subject by the position it moved and the balance
it changed (remote venues: the venue's balances, read after the fill)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tradebus.schemas import subjects
from tradebus.schemas.events import (
    DERIVED_TRADE_ID_PREFIX,
    BalanceUpdate,
    OrderFilled,
    OrderPartiallyFilled,
    PositionUpdate,
)
from tradebus.schemas.values import OrderType
from tradebus.services.settings import venue_config

from ..integration.helpers import account_decoder, collect, wait_until
from .testbed import API_KEY, VenueUnderTest

# Alpaca's fill events carry no fee: equities trade without commission and a crypto fee is
# taken from the credited asset, off the event (docs/venues.md). Zerodha's orders and trades
# state no charges (they are on the contract note), nor do Fyers'. Every other venue charges one.
NO_FEE_ON_FILLS = frozenset({"alpaca", "zerodha", "fyers"})
# Spot venues charging in the asset received (a buy pays in the base asset), as their
# emulators do (a real account paying with BNB on Binance would show BNB instead).
FEE_IN_BASE_ON_BUYS = frozenset({"binance", "bybit"})
# Venues with a private balance stream (Binance outboundAccountPosition, Bybit `wallet`).
BALANCE_STREAMS = frozenset({"binance", "bybit", "ibkr"})


async def test_a_fill_carries_the_fee_and_moves_a_position_and_a_balance(testbed: VenueUnderTest) -> None:
    account_events = await collect(testbed.nc, subjects.account_events(testbed.venue, testbed.account),
                                   account_decoder.decode)
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        if testbed.emulator is not None:  # a remote venue publishes its balances when it starts
            await account_events.wait_for(lambda ms: any(isinstance(m, BalanceUpdate) and m.snapshot for m in ms), 15)
        before = _latest_balance(account_events.messages, instrument.quote)
        order = testbed.place(instrument, order_type=OrderType.MARKET, quantity=testbed.quantity(instrument, quote.ask))
        await testbed.send(order)
        events = await testbed.finished(order.client_order_id)
        filled = [e for e in events if isinstance(e, OrderPartiallyFilled | OrderFilled)]
        fills = [e.fill for e in filled]
        # the venue's own trade ids, never one derived from the order
        assert fills and all(fill.trade_id and not fill.trade_id.startswith(DERIVED_TRADE_ID_PREFIX) for fill in fills)
        if testbed.venue in NO_FEE_ON_FILLS:
            assert all(fill.fee == 0 for fill in fills)
        else:
            assert all(fill.fee > 0 and fill.fee_currency for fill in fills)
        if testbed.venue in FEE_IN_BASE_ON_BUYS and testbed.emulator is not None:
            assert {fill.fee_currency for fill in fills} == {instrument.base}
        # what the buy holds: its quantity, less a fee paid in the asset bought
        held = order.quantity - sum((f.fee for f in fills if f.fee_currency == instrument.base), Decimal(0))

        def moved(messages: list[object]) -> bool:
            positions = [m for m in messages if isinstance(m, PositionUpdate) and m.symbol == instrument.symbol]
            balance = _latest_balance(messages, instrument.quote)
            return bool(positions) and positions[-1].quantity == held and balance is not None and (
                before is None or balance < before)

        await account_events.wait_for(moved, timeout=15)


async def test_balances_follow_the_private_stream(remote: VenueUnderTest) -> None:
    """With the read after fills put off for a minute, the fill's balance change still
    arrives: from the venue's balance stream."""
    if remote.venue not in BALANCE_STREAMS:
        pytest.skip(f"{remote.venue}: no private balance stream (balances are read after fills)")
    table = remote.settings.venues[remote.venue]
    venues = {remote.venue: {**table, "resilience": {**table.get("resilience", {}), "account_refresh_delay": 60.0}}}
    remote.settings = msgspec.structs.replace(remote.settings, venues=venues)
    remote.config = venue_config(remote.settings, remote.venue, env={})
    account_events = await collect(remote.nc, subjects.account_events(remote.venue, remote.account), account_decoder.decode)
    async with remote.connector():
        instrument = remote.instrument()
        quote = await remote.quote(instrument.symbol)
        await account_events.wait_for(lambda ms: any(isinstance(m, BalanceUpdate) and m.snapshot for m in ms), 15)
        await wait_until(lambda: _balance_stream_subscribed(remote), "the balance stream subscribed", timeout=15)
        before = _latest_balance(account_events.messages, instrument.quote)
        order = remote.place(instrument, order_type=OrderType.MARKET, quantity=remote.quantity(instrument, quote.ask))
        await remote.send(order)
        await remote.finished(order.client_order_id)
        await account_events.wait_for(lambda ms: (_latest_balance(ms, instrument.quote) or before) < before, timeout=10)


def _balance_stream_subscribed(remote: VenueUnderTest) -> bool:
    emulator: Any = remote.emulator
    if remote.venue == "bybit":
        return bool(emulator.streams.subscribers("wallet"))
    if remote.venue == "ibkr":  # TWS's account updates (reqAccountUpdates) for the account
        return any(session.account_updates == API_KEY for session in emulator.connections)
    return bool(emulator.user_stream_subscribed(API_KEY))  # Binance: one user data stream for orders and balances


def _latest_balance(messages: list[object], currency: str) -> Decimal | None:
    totals = [b.total for m in messages if isinstance(m, BalanceUpdate) for b in m.balances if b.currency == currency]
    return totals[-1] if totals else None
