"""Symbology and market data: every venue publishes the same normalized messages, each
stream numbered without gaps, and trades its symbols however the venue spells them."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from tradebus.client import Client
from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode, reply_decoder
from tradebus.schemas.control import Subscribe, Unsubscribe
from tradebus.schemas.market import Bar, BookDelta, BookSnapshot, Instrument, Quote, Trade
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind

from ..integration.helpers import collect, flowing, market_decoder, stopped, wait_until
from .testbed import VenueUnderTest, tag

# The message types of each stream kind; a book stream starts with a snapshot.
STREAM_TYPES = {MarketDataKind.QUOTE: (Quote,), MarketDataKind.TRADE: (Trade,), MarketDataKind.BAR: (Bar,),
                MarketDataKind.BOOK: (BookSnapshot, BookDelta)}


async def test_instruments_map_back_to_their_unified_symbols(testbed: VenueUnderTest) -> None:
    published = await collect(testbed.nc, subjects.market_data_filter(testbed.venue, MarketDataKind.INSTRUMENT),
                              market_decoder.decode)
    async with testbed.connector() as connector:
        listed = connector.instruments()
        assert listed, "the venue lists no instrument"
        await published.wait_for(lambda messages: len(messages) >= len(listed))
        for instrument in published.messages:
            assert isinstance(instrument, Instrument) and instrument.venue == testbed.venue
            assert connector.unified_symbol(instrument.venue_symbol) == instrument.symbol
            assert connector.venue_symbol(instrument.symbol) == instrument.venue_symbol
            assert instrument.tick_size > 0 and instrument.lot_size > 0 and instrument.min_quantity > 0
        assert {i.symbol for i in published.messages} == {i.symbol for i in listed}


async def test_a_late_client_learns_the_instruments_by_query_and_on_subscribe(testbed: VenueUnderTest) -> None:
    testbed.on_demand(lease=60)
    async with testbed.connector() as connector:
        listed = {i.symbol: i for i in connector.instruments()}
        client = Client(testbed.nc)  # not closed here: the connection is the testbed's
        assert {i.symbol: i.tick_size for i in await client.instruments(testbed.venue)} == \
            {symbol: i.tick_size for symbol, i in listed.items()}
        instrument = testbed.instrument()
        (answered,) = await client.instruments(testbed.venue, [instrument.symbol])
        assert (answered.tick_size, answered.lot_size, answered.min_quantity, answered.min_notional) == \
            (instrument.tick_size, instrument.lot_size, instrument.min_quantity, instrument.min_notional)

        published = await collect(testbed.nc, subjects.market_data(testbed.venue, MarketDataKind.INSTRUMENT, instrument.symbol),
                                  market_decoder.decode)
        request = Subscribe(symbols=[instrument.symbol], kinds=[MarketDataKind.INSTRUMENT], subscriber="late-client")
        await testbed.nc.request(subjects.market_data_control(testbed.venue), encode(request), timeout=5)
        (definition,) = await published.wait_for(lambda messages: len(messages) >= 1)
        assert definition.symbol == instrument.symbol and definition.tick_size == instrument.tick_size


async def test_a_stream_runs_while_any_subscriber_holds_it(testbed: VenueUnderTest) -> None:
    """Interest is counted per subscriber: one leaving keeps the stream for the other; a
    subscriber that stops renewing loses its interest when the lease runs out."""
    lease = 1.5
    testbed.on_demand(lease=lease)
    async with testbed.connector():
        symbol = testbed.instrument().symbol
        quotes = await collect(testbed.nc, subjects.market_data(testbed.venue, MarketDataKind.QUOTE, symbol),
                               market_decoder.decode)

        async def control(request: Subscribe | Unsubscribe) -> None:
            reply = await testbed.nc.request(subjects.market_data_control(testbed.venue), encode(request), timeout=5)
            assert reply_decoder(Family.MARKET_DATA_CONTROL).decode(reply.data).ok

        await stopped(quotes)  # on demand: nothing before anyone asks
        for subscriber in ("alice", "bob"):
            await control(Subscribe(symbols=[symbol], kinds=[MarketDataKind.QUOTE], subscriber=subscriber))
        await flowing(quotes, symbol, timeout=20)
        await control(Unsubscribe(symbols=[symbol], kinds=[MarketDataKind.QUOTE], subscriber="alice"))
        await flowing(quotes, symbol, timeout=20)
        # bob never renews
        interest = testbed.connector_instance.market_data.interest
        await wait_until(lambda: interest.leases() == 0, "bob's lease expired", timeout=5 * lease)
        await stopped(quotes, quiet=1.0)


async def test_an_order_on_a_dotted_symbol_is_placed_and_cancelled(testbed: VenueUnderTest) -> None:
    async with testbed.connector() as connector:
        dotted = [i for i in connector.instruments() if "." in i.symbol]
        if not dotted:
            pytest.skip(f"{testbed.venue} lists no symbol with a dot (such as BRK.B)")
        instrument = dotted[0]
        quote = await testbed.quote(instrument.symbol)
        price = testbed.price(instrument, quote.bid, "0.95")
        order = testbed.place(instrument, quantity=testbed.quantity(instrument, price), price=price)
        await testbed.send(order)
        (accepted,) = await testbed.until(order.client_order_id, "accepted")
        assert accepted.symbol == instrument.symbol
        await testbed.send(testbed.cancel(order.client_order_id))
        assert [tag(e) for e in await testbed.finished(order.client_order_id)] == ["accepted", "cancelled"]


async def test_market_data_is_normalized_and_numbered_without_gaps(testbed: VenueUnderTest) -> None:
    market = await collect(testbed.nc, subjects.market_data_filter(testbed.venue), market_decoder.decode)
    async with testbed.connector() as connector:
        instrument = testbed.instrument()
        kinds = connector.capabilities.market_data - {MarketDataKind.INSTRUMENT}
        assert MarketDataKind.QUOTE in kinds, "risk needs quotes to value orders"

        def streams() -> dict[str, list]:
            by_kind: dict[str, list] = defaultdict(list)
            for message in market.messages:
                if message.symbol == instrument.symbol and not isinstance(message, Instrument):
                    by_kind[tag(message).removesuffix("_snapshot").removesuffix("_delta")].append(message)
            return by_kind

        # two messages of every stream: a book's snapshot and what follows it
        await market.wait_for(lambda _: all(len(streams()[kind.value]) >= 2 for kind in kinds), timeout=20)
        for kind in kinds:
            stream = streams()[kind.value]
            assert all(isinstance(m, STREAM_TYPES[kind]) for m in stream), kind
            seqs = [m.seq for m in stream]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{kind.value}: seq not contiguous: {seqs}"
            assert all(m.ts_event > 0 and m.venue == testbed.venue for m in stream)
        for quote in streams()["quote"]:
            assert isinstance(quote.bid, Decimal) and 0 < quote.bid <= quote.ask and quote.bid_size > 0 < quote.ask_size
        for trade in streams().get("trade", []):
            assert trade.price > 0 and trade.size > 0 and trade.trade_id
        for bar in streams().get("bar", []):
            assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high and bar.volume >= 0
        if MarketDataKind.BOOK in kinds:
            book = streams()["book"]
            assert isinstance(book[0], BookSnapshot), "a book stream starts with a snapshot"
            snapshot = book[0]
            assert [level.price for level in snapshot.bids] == sorted((level.price for level in snapshot.bids), reverse=True)
            assert [level.price for level in snapshot.asks] == sorted(level.price for level in snapshot.asks)
            assert snapshot.bids[0].price < snapshot.asks[0].price
