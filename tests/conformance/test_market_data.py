"""Market data and symbology: every venue publishes the same normalized streams."""

from __future__ import annotations

from collections import defaultdict

from tradebus.schemas import subjects
from tradebus.schemas.market import BookDelta, BookSnapshot, Instrument
from tradebus.schemas.values import MarketDataKind

from ..integration.helpers import collect, market_decoder
from .testbed import VenueUnderTest


async def test_instruments_map_between_venue_and_unified_symbols(testbed: VenueUnderTest) -> None:
    published = await collect(
        testbed.nc, subjects.market_data_filter(testbed.venue, MarketDataKind.INSTRUMENT), market_decoder.decode
    )
    async with testbed.connector() as connector:
        listed = connector.instruments()
        assert listed
        messages = await published.wait_for(lambda m: len(m) >= len(listed))
        for instrument in messages:
            assert isinstance(instrument, Instrument) and instrument.venue == testbed.venue
            assert connector.unified_symbol(instrument.venue_symbol) == instrument.symbol
            assert connector.venue_symbol(instrument.symbol) == instrument.venue_symbol
            assert instrument.tick_size > 0 and instrument.lot_size > 0


async def test_every_stream_is_normalized_and_sequenced(testbed: VenueUnderTest) -> None:
    ticks = await collect(testbed.nc, subjects.market_data_filter(testbed.venue), market_decoder.decode)
    async with testbed.connector() as connector:
        symbol = testbed.instrument().symbol
        kinds = connector.capabilities.market_data
        assert MarketDataKind.QUOTE in kinds

        def of(kind: MarketDataKind) -> list[object]:
            return [m for subject, m in ticks.items if subject == subjects.market_data(testbed.venue, kind, symbol)]

        await ticks.wait_for(lambda _: all(len(of(kind)) >= 3 for kind in kinds), timeout=30)
        streams: dict[MarketDataKind, list[int]] = defaultdict(list)
        for kind in kinds:
            for message in of(kind):
                assert message.venue == testbed.venue and message.symbol == symbol
                assert message.ts_event > 0 and message.ts_recv > 0
                streams[kind].append(message.seq)
        for kind, seqs in streams.items():
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{kind.value} sequence has a hole or repeats"
        if MarketDataKind.BOOK in kinds:
            books = of(MarketDataKind.BOOK)
            assert isinstance(books[0], BookSnapshot), "a book stream starts with a snapshot"
            assert all(isinstance(book, BookSnapshot | BookDelta) for book in books)
            first = books[0]
            assert first.bids and first.asks and first.bids[0].price < first.asks[0].price
