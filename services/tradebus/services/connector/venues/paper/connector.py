"""The paper venue's connector: a simulated market and matching engine behind the same
contract as every real venue.

A feed task advances the market (random walk or replay), lets the matching engine react
(resting orders fill, stops trigger, orders expire) and publishes quotes, trades, bars and
books for the subscribed streams. Commands go straight to the matching engine.

The venue keeps its orders, cash and positions nowhere but in its events: on start it
rebuilds the matching engine from its journal (stream EVENTS) before the first command,
order groups and trailing stops included (simulator/journal.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from decimal import Decimal

from tradebus.schemas.commands import OrderCommand
from tradebus.schemas.events import BalanceUpdate
from tradebus.schemas.market import Bar, BookChange, BookDelta, BookLevel, BookSnapshot, Instrument, Quote, Trade
from tradebus.schemas.values import GroupKind, MarketDataKind, OrderType, Side, TimeInForce
from tradebus.simulator.exchange import SimulatedExchange
from tradebus.simulator.market import MarketUpdate, RandomWalk, RecordedBar, Replay, TradePrint
from tradebus.simulator.rules import FillFees, OrderRules
from tradebus.simulator.state import Level

from ...base import Capabilities, VenueConnector, VenueEvent
from .config import FeeScheduleName, PaperConfig
from .india import IndianFees, IndianRules

log = logging.getLogger(__name__)

NANOS = 1_000_000_000
ZERO = Decimal(0)
FIREHOSE_SLICE = 1_000_000  # ns the feed may run without yielding when tick_interval is 0


class _BarBuilder:
    """Aggregates one symbol's trades into bars aligned on multiples of the interval."""

    __slots__ = ("interval", "start", "open", "high", "low", "close", "volume", "trades")
    # Set by the first trade's `add`; read only once a bar has trades.
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def __init__(self, interval_s: int) -> None:
        self.interval = interval_s * NANOS
        self.start = -1
        self.trades = 0

    def add(self, ts: int, price: Decimal, size: Decimal) -> RecordedBar | None:
        """Add a trade; return the previous bar if this trade starts a new one."""
        start = ts - ts % self.interval
        finished = None
        if start != self.start:
            if self.trades:
                finished = RecordedBar(self.start, self.open, self.high, self.low, self.close, self.volume, self.trades)
            self.start, self.open, self.high, self.low, self.volume, self.trades = start, price, price, price, Decimal(0), 0
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.trades += 1
        return finished


class PaperConnector(VenueConnector[PaperConfig]):
    # Every order type, trailing stops included, and every kind of group, held natively by
    # the simulated exchange (tradebus.simulator: trailing.py, groups.py).
    capabilities = Capabilities(
        order_types=frozenset(OrderType), time_in_force=frozenset(TimeInForce), modify=True,
        market_data=frozenset(MarketDataKind) - {MarketDataKind.INSTRUMENT}, order_groups=frozenset(GroupKind),
    )

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        config = self.config
        fees: FillFees = config.fees
        rules: OrderRules | None = None
        if config.fee_schedule is FeeScheduleName.INDIA:
            fees = IndianFees(config.instruments, config.india)
            rules = IndianRules(config.instruments, config.india)
        self.exchange = SimulatedExchange(
            venue=self.venue, instruments=config.instruments, accounts=config.accounts, fees=fees,
            slippage_bps=config.slippage_bps, allow_short=config.allow_short, clock=time.time_ns, rules=rules,
        )
        self._source: RandomWalk | Replay = Replay(config.replay, config.instruments) if config.replay else RandomWalk(config)
        self._books: dict[str, tuple[list[Level], list[Level]]] = {}  # the venue's current book
        self._published_books: dict[str, tuple[list[Level], list[Level]]] = {}  # what subscribers have
        self._bars = {spec.symbol: _BarBuilder(config.bar_interval) for spec in config.instruments}
        self._deltas = dict.fromkeys(self._bars, 0)
        self._trade_ids = 0
        self._feed: asyncio.Task[None] | None = None
        self._streams = {
            (kind, spec.symbol): self.market_data.stream(kind, spec.symbol)
            for spec in config.instruments
            for kind in MarketDataKind
        }

    @property
    def accounts(self) -> frozenset[str]:
        return frozenset(self.config.accounts)

    def instruments(self) -> list[Instrument]:
        return [
            Instrument(
                venue=self.venue, symbol=spec.symbol, seq=0, ts_event=0, ts_recv=0, venue_symbol=spec.symbol,
                asset_class=spec.asset_class, base=spec.base, quote=spec.quote, tick_size=spec.tick_size,
                lot_size=spec.lot_size, min_quantity=spec.min_quantity, min_notional=spec.min_notional,
            )
            for spec in self.config.instruments
        ]

    async def start(self) -> None:
        await self._restore()
        listed = [spec.symbol for spec in self.config.instruments]
        symbols = listed if "*" in self.config.subscribe else [s for s in self.config.subscribe if s in listed]
        kinds = [kind for kind in MarketDataKind if kind is not MarketDataKind.INSTRUMENT]
        self.market_data.pin(symbols, kinds)
        self._feed = asyncio.create_task(self._run_feed(), name="paper-feed")

    async def stop(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            await asyncio.gather(self._feed, return_exceptions=True)

    async def execute(self, command: OrderCommand) -> list[VenueEvent]:
        if self.config.latency:
            await asyncio.sleep(self.config.latency)
        return self.exchange.execute(command)

    async def executed(self, command: OrderCommand) -> bool:
        return self.exchange.executed(command)

    async def reconcile(self, account: str, client_order_ids: list[str]) -> tuple[list[VenueEvent], list[str]]:
        return self.exchange.reconcile(account, client_order_ids)

    async def _restore(self) -> None:
        """Rebuild the venue from its journal; what a crash kept it from publishing goes out
        first, before any command or market update."""
        journal = await self.read_journal()
        owed = self.exchange.restore(journal)
        # An account that never reported its cash (a fresh venue) reports its opening balances,
        # so that balances and position sizing work before the first fill.
        reported = {event.account for event in journal if isinstance(event, BalanceUpdate)}
        owed += [self.exchange.balance_report(account) for account in sorted(self.accounts) if account not in reported]
        if owed:
            self.emit(owed)
        open_orders = sum(len(self.exchange.open_orders(account)) for account in self.accounts)
        log.info(
            "paper venue restored from its journal",
            extra={"events": len(journal), "open_orders": open_orders, "owed_events": len(owed)},
        )

    async def on_subscribed(self, symbol: str, kinds: Sequence[MarketDataKind]) -> None:
        """A new subscriber needs a snapshot: make the next book message one. Sending it from
        the feed, not from here, keeps snapshots and deltas in one consistent sequence."""
        if MarketDataKind.BOOK in kinds:
            self._published_books.pop(symbol, None)

    # --- the feed ---------------------------------------------------------------------------
    async def _run_feed(self) -> None:
        started = time.time_ns()
        outages = [(started + int(o.start * NANOS), started + int((o.start + o.duration) * NANOS)) for o in self.config.feed_outages]
        outage_start: int | None = None
        interval = self.config.tick_interval
        yielded = started
        while True:
            now = time.time_ns()
            in_outage = next((start for start, end in outages if start <= now < end), None)
            if outage_start is not None and in_outage is None:
                await self._recover(outage_start)
            outage_start = in_outage
            for update in self._source.advance(now):
                self._match(update)
                if outage_start is None:
                    await self._publish(update)
            # As fast as possible (interval 0) still yields to the event loop, but once per
            # FIREHOSE_SLICE rather than every step: each yield writes what was published
            # since to the socket, and a few large writes cost far less than many small ones.
            if interval or now - yielded >= FIREHOSE_SLICE:
                await asyncio.sleep(interval)
                yielded = now

    def _match(self, update: MarketUpdate) -> None:
        """The venue keeps trading whatever happens to the feed."""
        if update.bids is not None and update.asks is not None:
            self._books[update.symbol] = (update.bids, update.asks)
        bids, asks = self._books.get(update.symbol, ([], []))
        trade = (update.trade.price, update.trade.size) if update.trade else None
        events = self.exchange.on_market(update.symbol, bids=bids, asks=asks, trade=trade)
        if events:
            self.emit(events)

    async def _recover(self, outage_start: int) -> None:
        """After a feed outage: a gap and a reconnected marker on every active stream, then
        a fresh book snapshot."""
        log.warning("paper feed recovered from an outage", extra={"outage_ns": time.time_ns() - outage_start})
        for (kind, _symbol), stream in self._streams.items():
            if stream.active and kind is not MarketDataKind.INSTRUMENT:
                await self.market_data.gap(stream, gap_start=outage_start, reason="simulated feed outage")
                await self.market_data.reconnected(stream, reason="simulated feed outage ended")
        for symbol, (bids, asks) in self._books.items():
            await self._publish_snapshot(symbol, time.time_ns(), bids, asks)

    async def _publish(self, update: MarketUpdate) -> None:
        symbol, ts = update.symbol, update.ts
        if update.bids is not None and update.asks is not None:
            await self._publish_quote(symbol, ts, update.bids, update.asks)
            await self._publish_book(symbol, ts, update.bids, update.asks)
        if update.trade is not None:
            await self._publish_trade(symbol, ts, update.trade)
        if update.bar is not None:
            await self._publish_bar(symbol, ts, update.bar)

    async def _publish_quote(self, symbol: str, ts: int, bids: list[Level], asks: list[Level]) -> None:
        stream = self._streams[MarketDataKind.QUOTE, symbol]
        if stream.active and bids and asks:
            (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
            quote = Quote(
                venue=self.venue, symbol=symbol, seq=stream.next_seq(), ts_event=ts, ts_recv=ts,
                bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size,
            )
            await self.market_data.send(stream, quote)

    async def _publish_trade(self, symbol: str, ts: int, trade: TradePrint) -> None:
        self._trade_ids += 1
        stream = self._streams[MarketDataKind.TRADE, symbol]
        if stream.active:
            message = Trade(
                venue=self.venue, symbol=symbol, seq=stream.next_seq(), ts_event=ts, ts_recv=ts,
                price=trade.price, size=trade.size, aggressor=trade.aggressor, trade_id=f"T{self._trade_ids}",
            )
            await self.market_data.send(stream, message)
        if self.config.replay is None:  # recordings bring their own bars
            finished = self._bars[symbol].add(ts, trade.price, trade.size)
            if finished is not None:
                await self._publish_bar(symbol, finished.start + self._bars[symbol].interval, finished)

    async def _publish_bar(self, symbol: str, ts: int, bar: RecordedBar) -> None:
        stream = self._streams[MarketDataKind.BAR, symbol]
        if stream.active:
            message = Bar(
                venue=self.venue, symbol=symbol, seq=stream.next_seq(), ts_event=ts, ts_recv=ts,
                interval=self.config.bar_interval, start=bar.start, open=bar.open, high=bar.high, low=bar.low,
                close=bar.close, volume=bar.volume, trades=bar.trades,
            )
            await self.market_data.send(stream, message)

    async def _publish_book(self, symbol: str, ts: int, bids: list[Level], asks: list[Level]) -> None:
        stream = self._streams[MarketDataKind.BOOK, symbol]
        if not stream.active:
            return
        previous = self._published_books.get(symbol)
        if previous is None or self._deltas[symbol] >= self.config.book_snapshot_every:
            await self._publish_snapshot(symbol, ts, bids, asks)
            return
        changes = _changes(Side.BUY, previous[0], bids) + _changes(Side.SELL, previous[1], asks)
        self._published_books[symbol] = (bids, asks)
        self._deltas[symbol] += 1
        if changes:
            delta = BookDelta(venue=self.venue, symbol=symbol, seq=stream.next_seq(), ts_event=ts, ts_recv=ts, changes=changes)
            await self.market_data.send(stream, delta)

    async def _publish_snapshot(self, symbol: str, ts: int, bids: list[Level], asks: list[Level]) -> None:
        stream = self._streams[MarketDataKind.BOOK, symbol]
        if not stream.active:
            return
        self._published_books[symbol] = (bids, asks)
        self._deltas[symbol] = 0
        snapshot = BookSnapshot(
            venue=self.venue, symbol=symbol, seq=stream.next_seq(), ts_event=ts, ts_recv=ts,
            bids=[BookLevel(price=p, size=s) for p, s in bids], asks=[BookLevel(price=p, size=s) for p, s in asks],
        )
        await self.market_data.send(stream, snapshot)


def _changes(side: Side, before: list[Level], after: list[Level]) -> list[BookChange]:
    """Level changes from `before` to `after`; a level that disappeared gets size 0.

    Levels are compared as (price, size) pairs in sets: hashes of the Decimals are cached
    and a level kept from the previous book is the same pair, so this stays cheap."""
    old = set(before)
    changes = [BookChange(side=side, price=level[0], size=level[1]) for level in after if level not in old]
    prices = {price for price, _ in after}
    changes.extend(BookChange(side=side, price=price, size=ZERO) for price, _ in before if price not in prices)
    return changes
