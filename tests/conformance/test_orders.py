"""Order commands through the real SDK: every venue answers them the same way on the bus."""

from __future__ import annotations

from decimal import Decimal

from tradebus.schemas import subjects
from tradebus.schemas.events import (
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
)
from tradebus.schemas.values import CancelReason, OrderType, RejectReason, Side, TimeInForce

from ..integration.helpers import collect, event_decoder
from .test_resilience import place_directly, venue_market
from .testbed import VenueUnderTest, tag


async def test_a_resting_limit_order_is_accepted_then_cancelled(testbed: VenueUnderTest) -> None:
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        price = testbed.price(instrument, quote.bid, "0.95")
        order = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price)
        await testbed.send(order)
        (accepted,) = await testbed.until(order.client_order_id, "accepted")
        assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id
        assert (accepted.quantity, accepted.price, accepted.side) == (order.quantity, order.price, Side.BUY)
        await testbed.send(testbed.cancel(order.client_order_id))
        events = await testbed.finished(order.client_order_id)
        assert [tag(e) for e in events] == ["accepted", "cancelled"]
        assert events[-1].reason is CancelReason.REQUESTED and events[-1].cum_quantity == 0
        if testbed.emulator is not None:
            (held,) = await testbed.venue_orders(order.client_order_id)
            assert held["status"] == "cancelled"


async def test_modify_changes_the_order_or_is_refused_as_unsupported(testbed: VenueUnderTest) -> None:
    async with testbed.connector() as connector:
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        price = testbed.price(instrument, quote.bid, "0.95")
        order = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price)
        await testbed.send(order)
        await testbed.until(order.client_order_id, "accepted")
        new_price = testbed.price(instrument, quote.bid, "0.94")
        modify = testbed.modify(order.client_order_id, price=new_price)
        await testbed.send(modify)
        if connector.capabilities.modify:
            events = await testbed.until(order.client_order_id, "modified")
            assert events[-1].price == new_price and events[-1].modify_id == modify.modify_id
        else:
            events = await testbed.until(order.client_order_id, "command_rejected")
            assert events[-1].reason is RejectReason.UNSUPPORTED_ORDER_TYPE
        await testbed.send(testbed.cancel(order.client_order_id))
        assert tag((await testbed.until(order.client_order_id, "cancelled"))[-1]) == "cancelled"


async def test_a_market_order_fills_with_consistent_quantities(testbed: VenueUnderTest) -> None:
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        order = testbed.place(instrument, order_type=OrderType.MARKET, quantity=testbed.quantity(instrument, quote.ask))
        await testbed.send(order)
        events = await testbed.finished(order.client_order_id)
        assert tag(events[0]) == "accepted" and isinstance(events[-1], OrderFilled)
        fills = [e for e in events if isinstance(e, OrderPartiallyFilled | OrderFilled)]
        assert sum(e.fill.quantity for e in fills) == order.quantity == events[-1].cum_quantity
        assert events[-1].leaves_quantity == 0 and events[-1].avg_price > 0
        assert len({e.event_id for e in events}) == len(events)


async def test_an_order_larger_than_the_touch_fills_partly_and_rests(testbed: VenueUnderTest) -> None:
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        # Ten basis points through the ask crosses the displayed book; 900,000 of notional is
        # more than every venue here displays, so the rest of the order rests.
        price = testbed.price(instrument, quote.ask, "1.001")
        quantity = testbed.quantity(instrument, price, notional="900000")
        order = testbed.place(instrument, quantity=quantity, price=price)
        await testbed.send(order)
        events = await testbed.until(order.client_order_id, "accepted", "partially_filled")
        partial = next(e for e in events if isinstance(e, OrderPartiallyFilled))
        assert 0 < partial.cum_quantity < quantity and partial.leaves_quantity == quantity - partial.cum_quantity
        await testbed.send(testbed.cancel(order.client_order_id))
        final = (await testbed.finished(order.client_order_id))[-1]
        if isinstance(final, OrderCancelled):  # the market may have filled the rest meanwhile
            filled = max(e.cum_quantity for e in testbed.of(order.client_order_id) if isinstance(e, OrderPartiallyFilled))
            assert final.cum_quantity == filled
        else:
            assert isinstance(final, OrderFilled | CommandRejected)


async def test_cancel_all_cancels_every_open_order_of_the_scope(testbed: VenueUnderTest) -> None:
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        orders = []
        for factor in ("0.95", "0.94"):
            price = testbed.price(instrument, quote.bid, factor)
            orders.append(testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price))
            await testbed.send(orders[-1])
        for order in orders:
            await testbed.until(order.client_order_id, "accepted")
        cancel_all = testbed.cancel_all(symbol=instrument.symbol)
        await testbed.send(cancel_all)
        for order in orders:
            assert tag((await testbed.finished(order.client_order_id))[-1]) == "cancelled"
        assert (await testbed.cancel_all_done(cancel_all.request_id)).cancelled == 2


async def test_cancel_all_with_nothing_open_says_so(testbed: VenueUnderTest) -> None:
    async with testbed.connector():
        cancel_all = testbed.cancel_all()
        await testbed.send(cancel_all)
        assert (await testbed.cancel_all_done(cancel_all.request_id)).cancelled == 0


async def test_order_types_and_time_in_force_outside_the_capabilities_are_refused(testbed: VenueUnderTest) -> None:
    async with testbed.connector() as connector:
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        quantity = testbed.quantity(instrument, quote.ask)
        for order_type in OrderType:
            terms: dict[str, object] = {"order_type": order_type, "quantity": quantity}
            if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                terms["price"] = testbed.price(instrument, quote.bid, "0.9")
            if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
                terms["stop_price"] = testbed.price(instrument, quote.ask, "1.2")
            if order_type is OrderType.TRAILING_STOP:
                terms["trail_percent"] = Decimal(20)
            order = testbed.place(instrument, **terms)
            await testbed.send(order)
            first = (await testbed.until(order.client_order_id, *(["accepted"] if order_type in connector.capabilities.order_types else ["rejected"])))[0]
            if order_type not in connector.capabilities.order_types:
                assert first.reason is RejectReason.UNSUPPORTED_ORDER_TYPE
        # IOC at a price that cannot trade: nothing rests
        ioc = testbed.place(instrument, quantity=quantity, price=testbed.price(instrument, quote.bid, "0.9"),
                            time_in_force=TimeInForce.IOC)
        await testbed.send(ioc)
        events = await testbed.finished(ioc.client_order_id)
        if TimeInForce.IOC in connector.capabilities.time_in_force:
            assert [tag(e) for e in events] == ["accepted", "cancelled"] and events[-1].reason is CancelReason.IOC_REMAINDER
        else:
            assert events[-1].reason is RejectReason.UNSUPPORTED_TIME_IN_FORCE


async def test_venue_refusals_map_to_the_shared_reasons(testbed: VenueUnderTest) -> None:
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        price = testbed.price(instrument, quote.bid, "0.95")
        broke = testbed.place(instrument, quantity=testbed.quantity(instrument, price, notional="1000000000"), price=price)
        off_tick = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price + instrument.tick_size / 2)
        off_lot = testbed.place(instrument, quantity=testbed.quantity(instrument, price) + instrument.lot_size / 2, price=price)
        for order in (broke, off_tick, off_lot):
            await testbed.send(order)
        assert (await testbed.finished(broke.client_order_id))[-1].reason is RejectReason.INSUFFICIENT_FUNDS
        assert (await testbed.finished(off_tick.client_order_id))[-1].reason is RejectReason.TICK_SIZE
        assert (await testbed.finished(off_lot.client_order_id))[-1].reason is RejectReason.LOT_SIZE
        await testbed.send(testbed.cancel("never-placed"))  # held for its place first (CANCEL_HOLD)
        (unknown,) = await testbed.until("never-placed", "command_rejected")
        assert unknown.reason is RejectReason.UNKNOWN_ORDER
        good = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price)
        await testbed.send(good)
        await testbed.until(good.client_order_id, "accepted")
        again = testbed.place(instrument, client_order_id=good.client_order_id, quantity=good.quantity * 2, price=price)
        await testbed.send(again, outside_dedupe_window=True)
        events = await testbed.until(good.client_order_id, "command_rejected")
        assert events[-1].reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
        assert [tag(e) for e in events].count("accepted") == 1
        if testbed.emulator is not None:
            assert len(await testbed.venue_orders(good.client_order_id)) == 1


async def test_a_place_delivered_again_is_answered_with_its_order_never_rejected(testbed: VenueUnderTest) -> None:
    """After a bus restart a place the venue executed can come again as a new delivery (the
    count starts over): it is the same order, never `rejected` or refused."""
    async with testbed.connector():
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        price = testbed.price(instrument, quote.bid, "0.95")
        order = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price)
        await testbed.send(order)
        await testbed.until(order.client_order_id, "accepted")
        await testbed.send(order, outside_dedupe_window=True)
        later = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price)
        await testbed.send(later)
        await testbed.until(later.client_order_id, "accepted")  # commands run in order: the repeat was answered
        tags = [tag(e) for e in testbed.of(order.client_order_id)]
        assert "rejected" not in tags and "command_rejected" not in tags, tags
        if testbed.emulator is not None:
            assert len(await testbed.venue_orders(order.client_order_id)) == 1


async def test_an_order_at_the_venue_under_the_same_id_is_recognized_by_its_terms(remote: VenueUnderTest) -> None:
    """The venue holds an order under the client order id already (placed before a crash kept
    its events from the journal, or by another tool): the same terms are that order, other
    terms a refused command, never a rejected order."""
    market = venue_market(remote)
    async with remote.connector():
        instrument = remote.instrument()
        price = remote.price(instrument, market.bid, "0.95")
        coid = await place_directly(remote, market.symbol, order_type="limit", quantity=str(market.unit), price=str(price))
        other = remote.place(instrument, client_order_id=coid, quantity=2 * market.unit, price=price)
        await remote.send(other)
        refusal = (await remote.until(coid, "command_rejected"))[-1]
        assert refusal.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
        assert f"quantity {2 * market.unit} (was {market.unit}" in refusal.message
        same = remote.place(instrument, client_order_id=coid, quantity=market.unit, price=price)
        await remote.send(same)
        await remote.until(coid, "accepted")
        assert "rejected" not in [tag(e) for e in remote.of(coid)]
        assert len(await remote.venue_orders(coid)) == 1


async def test_a_command_for_an_account_the_connector_does_not_trade_is_refused(testbed: VenueUnderTest) -> None:
    """Every account's commands reach the venue's connector; one for an account it holds no
    credentials for is refused before the venue sees it, never executed on its own account."""
    async with testbed.connector():
        stranger = "not-this-connectors"
        assert stranger not in testbed.connector_instance.accounts
        instrument = testbed.instrument()
        quote = await testbed.quote(instrument.symbol)
        refused = await collect(testbed.nc, subjects.order_events(testbed.venue, stranger), event_decoder.decode)
        order = testbed.place(instrument, order_type=OrderType.MARKET, quantity=testbed.quantity(instrument, quote.ask),
                              account=stranger)
        await testbed.send(order)
        await refused.wait_for(lambda events: len(events) >= 1, timeout=15)
        assert [(type(e), e.reason) for e in refused.messages] == [(OrderRejected, RejectReason.UNKNOWN_ACCOUNT)]
        # nothing of it on the connector's own account, at the venue or on the bus
        assert testbed.of(order.client_order_id) == []
        if testbed.emulator is not None:
            assert await testbed.venue_orders(order.client_order_id) == []
