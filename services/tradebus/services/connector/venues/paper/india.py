"""The paper venue as an Indian exchange (`fee_schedule = "india"`): a discount broker's
charges on every fill, itemized in the fill's `fee_detail`, and the exchange rules the
Indian connectors check (tradebus.markets.india): tick, lot, freeze quantity and, with
`market_hours`, the segment's sessions.

An instrument's segment is its symbol's prefix (`NSE:INFY`, `NFO:NIFTY26DECFUT`), its kind
its `asset_class` (equity, future, option), the underlying of a derivative its `underlying`.
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import msgspec

from tradebus.markets import india
from tradebus.markets.india.calendar import ist
from tradebus.markets.india.charges import BROKERAGE_CAP, EquityProduct, RatesUnknown, rates_for
from tradebus.markets.india.fees import HUNDRED, fill_charges, most_pct
from tradebus.schemas.values import RejectReason, Side
from tradebus.simulator.rules import FillTerms, InstrumentSpec, Violation


class IndiaSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[paper.india]` table."""

    product_equity: EquityProduct = EquityProduct.DELIVERY  # CNC (delivery) or MIS (intraday): the equity charges
    # Refuse orders outside the segment's sessions, as the exchange would; off by default so
    # the simulated market can be tried at any hour.
    market_hours: bool = False
    # A directory of the operator's `<year>.toml` exchange calendars, over the shipped years (a
    # year in both: the operator's file); docs/venues.md, Indian market rules. Read at start.
    calendar_dir: str | None = None


def listing(spec: InstrumentSpec) -> india.Listing:
    """The exchange's view of a paper instrument; ValueError for one not on an Indian segment."""
    exchange, colon, _ = spec.symbol.partition(":")
    segment = india.segment_of(exchange) if colon else None
    if segment is None:
        raise ValueError(f"instrument {spec.symbol}: the india fee schedule needs an Indian segment prefix "
                         f"({', '.join(s.value for s in india.Segment)}:SYMBOL)")
    return india.Listing(segment=segment, kind=india.kind_of(spec.asset_class), tick_size=spec.tick_size,
                         lot_size=spec.lot_size, underlying=spec.underlying)


def _day(now: int) -> date:
    return ist(now).date()


class IndianFees:
    """Zerodha's brokerage with the statutory charges (tradebus.markets.india.charges)."""

    def __init__(self, instruments: list[InstrumentSpec], settings: IndiaSettings) -> None:
        self._listings = {spec.symbol: listing(spec) for spec in instruments}
        self._product = settings.product_equity
        for found in self._listings.values():  # every instrument priced, or the venue does not start
            try:
                rates_for(found.segment, found.kind, self._product, _day(time.time_ns()))
            except RatesUnknown as exc:
                raise ValueError(str(exc)) from None

    def charge(self, fill: FillTerms) -> tuple[Decimal, dict[str, Decimal]]:
        found = self._listings[fill.spec.symbol]
        rates = rates_for(found.segment, found.kind, self._product, _day(fill.now))
        charges = fill_charges(rates, buy=fill.side is Side.BUY, price=fill.price, quantity=fill.quantity,
                               order_turnover_before=fill.order_notional)
        return charges.total, charges.itemized()

    def most(self, spec: InstrumentSpec, notional: Decimal, now: int) -> Decimal:
        found = self._listings[spec.symbol]
        pct = most_pct(found.segment, found.kind, self._product, _day(now))
        return notional * pct / HUNDRED + BROKERAGE_CAP * 2  # covers a flat brokerage with its GST (23.60)


class IndianRules:
    """Freeze quantity and, with `market_hours`, the sessions (tick and lot the simulator checks itself)."""

    def __init__(self, instruments: list[InstrumentSpec], settings: IndiaSettings) -> None:
        self._listings = {spec.symbol: listing(spec) for spec in instruments}
        self._market_hours = settings.market_hours
        india.use_calendars(settings.calendar_dir)

    def __call__(self, spec: InstrumentSpec, quantity: Decimal, prices: tuple[Decimal | None, ...], now: int) -> Violation | None:
        refused = india.check_order(self._listings[spec.symbol], quantity, prices, when_ns=now, clock=self._market_hours)
        return None if refused is None else Violation(RejectReason(refused.reason), refused.message)
