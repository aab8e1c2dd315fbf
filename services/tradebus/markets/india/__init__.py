"""Indian exchanges (NSE, BSE, their derivatives segments NFO and BFO, NSE's currency
segment CDS, and MCX): segments, sessions and holidays (calendar.py, reading the yearly
calendar files of calendarfile.py), after-market-order windows (amo.py), freeze quantities
(freeze.py), the pre-trade check both Indian connectors and the paper venue run (orders.py),
and the charges of a trade (charges.py, fees.py).

One place on purpose: Zerodha, Fyers and the paper venue must refuse the same order for the
same reason, and a rate or a holiday is corrected here once.
"""

from .amo import ZERODHA_AMO, AmoWindow
from .calendar import CalendarUnknown, MarketState, Phase, market_state, use_calendars
from .freeze import freeze_quantity, underlying_of
from .orders import Refusal, check_clock, check_order, check_terms
from .segments import IST, Kind, Listing, Segment, kind_of, segment_of

__all__ = [
    "IST", "ZERODHA_AMO", "AmoWindow", "CalendarUnknown", "Kind", "Listing", "MarketState", "Phase", "Refusal",
    "Segment", "check_clock", "check_order", "check_terms", "freeze_quantity", "kind_of", "market_state",
    "segment_of", "underlying_of", "use_calendars",
]
