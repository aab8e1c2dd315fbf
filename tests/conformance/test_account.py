"""Fees and account state, the same on every venue: a fill carries the venue's trade id, fee
and fee currency, and is followed on the account subject by the position it moved and the balance
it changed (remote venues: the venue's balances, read after the fill)."""

from __future__ import annotations

from decimal import Decimal

from tradebus.schemas import subjects
from tradebus.schemas.events import BalanceUpdate, OrderFilled, OrderPartiallyFilled, PositionUpdate
from tradebus.schemas.values import OrderType

from ..integration.helpers import account_decoder, collect
from .testbed import VenueUnderTest

# Alpaca's fill events carry no fee: equities trade without commission and a crypto fee is
# taken from the credited asset, off the event (docs/venues.md). Every other venue charges one.
NO_FEE_ON_FILLS = frozenset({"alpaca"})


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
        # the venue's own trade ids, never one derived from the order (`<venue order id>:<cum>`)
        assert fills and all(e.fill.trade_id and not e.fill.trade_id.startswith(f"{e.venue_order_id}:") for e in filled)
        if testbed.venue in NO_FEE_ON_FILLS:
            assert all(fill.fee == 0 for fill in fills)
        else:
            assert all(fill.fee > 0 and fill.fee_currency for fill in fills)

        def moved(messages: list[object]) -> bool:
            positions = [m for m in messages if isinstance(m, PositionUpdate) and m.symbol == instrument.symbol]
            balance = _latest_balance(messages, instrument.quote)
            return bool(positions) and positions[-1].quantity == order.quantity and balance is not None and (
                before is None or balance < before)

        await account_events.wait_for(moved, timeout=15)


def _latest_balance(messages: list[object], currency: str) -> Decimal | None:
    totals = [b.total for m in messages if isinstance(m, BalanceUpdate) for b in m.balances if b.currency == currency]
    return totals[-1] if totals else None
