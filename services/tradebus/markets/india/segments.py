"""Exchange segments and what is traded on them.

A segment is named as Kite names its exchanges (the instrument master's `exchange`
column): NSE and BSE are the cash (equity) markets, NFO and BFO their futures and options,
CDS NSE's currency derivatives, MCX the commodity exchange. Our instrument ids carry it as
their prefix (`NSE:INFY`, `NFO:NIFTY26DECFUT`); Fyers writes derivatives with the exchange
(`NSE:NIFTY26DECFUT`), so its connector names the segment itself (venues/fyers/market.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")  # every exchange time here is Indian Standard Time (UTC+05:30, no DST)
CURRENCY = "INR"


class Segment(enum.Enum):
    NSE = "NSE"  # NSE capital market (equity)
    BSE = "BSE"  # BSE equity
    NFO = "NFO"  # NSE futures and options
    BFO = "BFO"  # BSE futures and options
    CDS = "CDS"  # NSE currency derivatives
    MCX = "MCX"  # Multi Commodity Exchange: commodity futures and options

    @property
    def cash(self) -> bool:
        return self in (Segment.NSE, Segment.BSE)


class Kind(enum.Enum):
    """What an instrument is, as far as the rules and charges care."""

    EQUITY = "equity"
    FUTURE = "future"
    OPTION = "option"


@dataclass(frozen=True)
class Listing:
    """What the rules need to know about one instrument: its segment and kind, its tick and
    lot (from the venue's instrument master), and the underlying its freeze quantity is
    set for (`NIFTY` for every NIFTY contract; None where there is none or it is not known)."""

    segment: Segment
    kind: Kind
    tick_size: Decimal
    lot_size: Decimal
    underlying: str | None = None


def segment_of(exchange: str) -> Segment | None:
    """The segment an exchange code names (Kite's and ours), None for one we have no rules for."""
    try:
        return Segment(exchange)
    except ValueError:
        return None


def kind_of(asset_class: str) -> Kind:
    """Our instruments' asset class (`equity`, `future`, `option`) as a kind; anything else
    (an ETF listed as `equity` included) trades like equity."""
    try:
        return Kind(asset_class)
    except ValueError:
        return Kind.EQUITY
