"""The charges of one fill on an Indian exchange, itemized (rates: charges.py).

Brokerage is per executed order: a capped percentage is charged on the order's cumulative
turnover, so each fill pays what its turnover adds until the order reaches the cap, and a
flat fee is charged on the order's first fill. The statutory charges are proportional to
each fill's turnover. Each item is rounded to the paisa (half up) per fill, GST on the
rounded items; contract notes round some items per day and scrip instead (STT to the
rupee), which a per-fill account cannot reproduce, so a day's total may differ by a few
paise to a rupee from a broker's contract note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .charges import BROKERAGE_CAP, GST_PCT, SEBI_FEE_PCT, EquityProduct, Rates, rates_for
from .segments import Kind, Segment

PAISA = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


def _paise(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


def _pct(turnover: Decimal, pct: Decimal) -> Decimal:
    return turnover * pct / HUNDRED


@dataclass(frozen=True)
class Charges:
    """One fill's charges in rupees, each rounded to the paisa."""

    brokerage: Decimal
    stt: Decimal  # STT, or CTT on MCX
    exchange: Decimal  # exchange transaction charges
    sebi: Decimal
    stamp: Decimal
    gst: Decimal

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange + self.sebi + self.stamp + self.gst

    def itemized(self) -> dict[str, Decimal]:
        """The items by name, as a fill's `fee_detail` carries them."""
        return {"brokerage": self.brokerage, "stt": self.stt, "exchange": self.exchange, "sebi": self.sebi,
                "stamp": self.stamp, "gst": self.gst}


def brokerage(rates: Rates, order_turnover: Decimal) -> Decimal:
    """The brokerage of an executed order of `order_turnover` (0 before anything executed)."""
    if order_turnover == 0:
        return ZERO
    if rates.brokerage_pct is None:
        return BROKERAGE_CAP
    return min(_pct(order_turnover, rates.brokerage_pct), BROKERAGE_CAP)


def fill_charges(rates: Rates, *, buy: bool, price: Decimal, quantity: Decimal, order_turnover_before: Decimal) -> Charges:
    """The charges of a fill of `quantity` at `price` of an order that had executed
    `order_turnover_before` (price x quantity of its earlier fills)."""
    turnover = price * quantity
    paid = _paise(brokerage(rates, order_turnover_before))
    fee = _paise(brokerage(rates, order_turnover_before + turnover)) - paid
    stt = _paise(_pct(turnover, rates.stt_buy if buy else rates.stt_sell))
    exchange = _paise(_pct(turnover, rates.exchange))
    sebi = _paise(_pct(turnover, SEBI_FEE_PCT))
    stamp = _paise(_pct(turnover, rates.stamp_buy)) if buy else ZERO
    gst = _paise(_pct(fee + exchange + sebi, GST_PCT))
    return Charges(brokerage=fee, stt=stt, exchange=exchange, sebi=sebi, stamp=stamp, gst=gst)


def charges_of(segment: Segment, kind: Kind, product: EquityProduct, day: date, *, buy: bool, price: Decimal,
               quantity: Decimal, order_turnover_before: Decimal = ZERO) -> Charges:
    """`fill_charges` at the rates of `day` (charges.RatesUnknown for an instrument or date without rates)."""
    return fill_charges(rates_for(segment, kind, product, day), buy=buy, price=price, quantity=quantity,
                        order_turnover_before=order_turnover_before)


def most_pct(segment: Segment, kind: Kind, product: EquityProduct, day: date) -> Decimal:
    """The largest percentage of turnover a buy may cost in charges other than brokerage's
    flat part (what the paper venue locks for an open buy, with `BROKERAGE_CAP` on top)."""
    rates = rates_for(segment, kind, product, day)
    taxes = rates.stt_buy + rates.exchange + SEBI_FEE_PCT + rates.stamp_buy
    broker = rates.brokerage_pct or ZERO
    return taxes + broker + (broker + rates.exchange + SEBI_FEE_PCT) * GST_PCT / HUNDRED
