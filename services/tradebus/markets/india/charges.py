"""What a trade costs on an Indian exchange through a discount broker: the rates (data;
fees.py computes with them). Percentages are of turnover (price x quantity; for options the
premium). As of 2026-12-06. Sources:

- Brokerage, Zerodha's published schedule (https://zerodha.com/charges, as reproduced at
  https://www.garvthakur.com/Broker/Zerodha/Brokerage-8 and
  https://support.zerodha.com/category/account-opening/charges-at-zerodha/trading-account-charges/articles/what-is-the-brokerage-for-futures-and-options):
  equity delivery free; intraday and futures (equity, currency, commodity) 0.03% or Rs 20
  per executed order, whichever is lower; options flat Rs 20 per executed order.
- STT (Securities Transaction Tax) and CTT (Commodities Transaction Tax): equity delivery
  0.1% on buy and sell, intraday 0.025% on the sell side, commodity futures 0.01% and
  options 0.05% on the sell side, none on currency derivatives
  (https://support.zerodha.com/category/account-opening/charges-at-zerodha/articles/what-are-the-various-statutory-charges-like-stamp-duty-and-taxes-etc);
  equity futures 0.02% and options 0.1% on the sell side until 31 March 2026
  (https://ipobell.com/?p=28073, Zerodha's schedule), 0.05% and 0.15% from 1 April 2026
  (Union Budget 2026-27, Finance Minister's speech of 1 February 2026:
  https://www.wionews.com/india-news/union-budget-2026-what-caused-sensex-nifty-to-crash-after-sitharaman-s-budget-announcement-1769934425738).
- Exchange transaction charges, as Zerodha's 2026 schedule states them (NSE's include its
  Investor Protection Fund Trust levy): NSE equity 0.00307%, BSE equity 0.00375%, NSE
  futures 0.00183%, NSE options 0.03553%, BSE futures 0, BSE options 0.0325%
  (https://proficientequities.com/elementskit-content/dynamic-content-widget-22fc413-c5bea74/ ,
  the post-Budget-2026 schedule); NSE currency futures 0.00035%, options 0.0311%
  (https://support.hdfcsky.com/portal/en/kb/articles/what-are-statutorycurrency); MCX
  futures 0.0021%, options 0.0418% (Zerodha's charges page on 19 June 2026, as quoted at
  https://v2.webnotes.in/mcx-transaction-charges-brokers/ ; also https://support.hdfcsky.com/cm8wqkt273510jzd8kqatb2om.html).
- SEBI turnover fee Rs 10 per crore (0.0001%), every segment (non-agricultural commodities).
- Stamp duty on the buy side: delivery 0.015%, intraday 0.003%, futures 0.002%, options
  0.003%, currency 0.0001%, commodity futures 0.002%, options 0.003% (Indian Stamp Act
  rates, as Zerodha lists them: https://www.garvthakur.com/Broker/Zerodha/Brokerage-8).
- GST 18% on brokerage + exchange transaction charges + SEBI fee.

Not modelled: STT on exercised options (the paper venue exercises nothing), DP charges on
delivery sells (charged per scrip per day by the depository, not per trade), agricultural
commodities' lower CTT and SEBI fee, Zerodha's Rs 40 per order on a negative balance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .segments import Kind, Segment

SEBI_FEE_PCT = Decimal("0.0001")  # Rs 10 per crore (1e7)
GST_PCT = Decimal(18)
BROKERAGE_CAP = Decimal(20)  # rupees per executed order


class EquityProduct(enum.Enum):
    """How an equity position is held, which decides its STT, stamp duty and brokerage."""

    DELIVERY = "CNC"  # cash and carry
    INTRADAY = "MIS"  # squared off the same day


@dataclass(frozen=True)
class Rates:
    """Percent rates of one kind of trade. Brokerage is `brokerage_pct` of the order's
    turnover up to `BROKERAGE_CAP` per executed order (0: none), or, with None, a flat
    `BROKERAGE_CAP` per executed order."""

    brokerage_pct: Decimal | None
    stt_buy: Decimal
    stt_sell: Decimal
    exchange: Decimal
    stamp_buy: Decimal


_ZERO = Decimal(0)
_CAPPED = Decimal("0.03")
Key = tuple[Segment, Kind, EquityProduct | None]


def _equity(exchange: Decimal) -> dict[EquityProduct, Rates]:
    return {
        EquityProduct.DELIVERY: Rates(brokerage_pct=_ZERO, stt_buy=Decimal("0.1"), stt_sell=Decimal("0.1"),
                                      exchange=exchange, stamp_buy=Decimal("0.015")),
        EquityProduct.INTRADAY: Rates(brokerage_pct=_CAPPED, stt_buy=_ZERO, stt_sell=Decimal("0.025"),
                                      exchange=exchange, stamp_buy=Decimal("0.003")),
    }


def _table(future_stt: Decimal, option_stt: Decimal) -> dict[Key, Rates]:
    table: dict[Key, Rates] = {}
    for segment, exchange in ((Segment.NSE, Decimal("0.00307")), (Segment.BSE, Decimal("0.00375"))):
        for product, rates in _equity(exchange).items():
            table[segment, Kind.EQUITY, product] = rates
    derivatives = {
        Segment.NFO: (Decimal("0.00183"), Decimal("0.03553"), future_stt, option_stt, Decimal("0.002"), Decimal("0.003")),
        Segment.BFO: (_ZERO, Decimal("0.0325"), future_stt, option_stt, Decimal("0.002"), Decimal("0.003")),
        Segment.CDS: (Decimal("0.00035"), Decimal("0.0311"), _ZERO, _ZERO, Decimal("0.0001"), Decimal("0.0001")),
        Segment.MCX: (Decimal("0.0021"), Decimal("0.0418"), Decimal("0.01"), Decimal("0.05"), Decimal("0.002"), Decimal("0.003")),
    }
    for segment, (fut_x, opt_x, fut_stt, opt_stt, fut_stamp, opt_stamp) in derivatives.items():
        table[segment, Kind.FUTURE, None] = Rates(brokerage_pct=_CAPPED, stt_buy=_ZERO, stt_sell=fut_stt,
                                                  exchange=fut_x, stamp_buy=fut_stamp)
        table[segment, Kind.OPTION, None] = Rates(brokerage_pct=None, stt_buy=_ZERO, stt_sell=opt_stt,
                                                  exchange=opt_x, stamp_buy=opt_stamp)
    return table


# (effective from, table), oldest first: the Budget 2026-27 STT rates on equity F&O from 1 April 2026.
RATE_TABLES: list[tuple[date, dict[Key, Rates]]] = [
    (date(2026, 1, 1), _table(Decimal("0.02"), Decimal("0.1"))),
    (date(2026, 4, 1), _table(Decimal("0.05"), Decimal("0.15"))),
]
class RatesUnknown(Exception):
    pass


def rates_for(segment: Segment, kind: Kind, product: EquityProduct, day: date) -> Rates:
    """The rates of a trade on `day` (RatesUnknown before the first table)."""
    current = [table for since, table in RATE_TABLES if since <= day]
    if not current:
        raise RatesUnknown(f"no Indian charge rates before {RATE_TABLES[0][0].isoformat()} (asked for {day.isoformat()})")
    rates = current[-1].get((segment, kind, product if kind is Kind.EQUITY else None))
    if rates is None:
        raise RatesUnknown(f"no Indian charge rates for {kind.value} on {segment.value}")
    return rates
