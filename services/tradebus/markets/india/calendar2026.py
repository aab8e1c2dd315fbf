"""The 2026 trading calendar of the Indian exchanges (data; calendar.py reads it).

As of 2026-12-06. Sources:
- NSE trading holidays 2026 (equity, equity derivatives; the circular of December 2025 as
  listed at https://www.stocktrack.co.in/2026/01/nse-trading-holidays-2026.html and
  https://www.ndtvprofit.com/markets/stock-market-holiday-in-march-2026-nse-bse-to-remain-closed-for-12-days-check-full-list-11128901),
  with 15 January added by NSE circular CMTR72260 of 12 January 2026 (Municipal Corporation
  elections in Maharashtra: https://nsearchives.nseindia.com/content/circulars/CMTR72260.pdf).
  BSE keeps the same days. NDTV Profit states the closures cover equity derivatives and
  currency derivatives too, so CDS follows this list; NSE's separate currency-derivatives
  circular (which may add RBI holidays) was not found, so CDS days are the equity list.
- The live trading session of Sunday 1 February 2026 (Union Budget), standard timings:
  NSE circular of 16 January 2026, summarized at
  https://rhnvrm.github.io/stock-market-circulars/circulars/nse/2026/nse-2026-01-16-1a4d7ab520aed307-live-trading-session-on-february-01-2026-presentation-of-union-budget ;
  MCX traded 09:00-17:00 that day (https://www.indiatoday.in/amp/business/market/story/stock-markets-open-sunday-budget-2026-nse-bse-trading-february-1-2860849-2026-01-31).
- MCX 2026 holidays with the sessions they close: https://rupeezy.in/mcx-holiday (from MCX's
  circular), and the evening session of 15 January open (https://notifications.geojit.com/exchange-circulars/others).
- MCX's evening session ends at 23:30 while the United States keep daylight-saving time and
  at 23:55 otherwise (https://pre-prod.tradejini.com/jinivoice/after-market-order/ ; Zerodha's
  AMO article below gives the same two times). US DST 2026 runs 8 March to 1 November; MCX
  moves on the next trading day: 9 March and 2 November.

Not modelled: Muhurat trading on Sunday 8 November 2026 (Diwali Laxmi Pujan; the day counts
as closed), NSE's closing session 15:40-16:00, MCX's earlier close (21:00) for internationally
linked agricultural commodities, NSE's cross-currency hours to 19:30.
"""

from __future__ import annotations

from datetime import date, time

from .segments import Segment

YEAR = 2026

# NSE, BSE, NFO, BFO and CDS are closed all day (weekdays only; weekend holidays need no entry).
EQUITY_HOLIDAYS: dict[date, str] = {
    date(2026, 1, 15): "Municipal Corporation elections in Maharashtra",
    date(2026, 1, 26): "Republic Day",
    date(2026, 3, 3): "Holi",
    date(2026, 3, 26): "Shri Ram Navami",
    date(2026, 3, 31): "Shri Mahavir Jayanti",
    date(2026, 4, 3): "Good Friday",
    date(2026, 4, 14): "Dr. Baba Saheb Ambedkar Jayanti",
    date(2026, 5, 1): "Maharashtra Day",
    date(2026, 5, 28): "Bakri Id",
    date(2026, 6, 26): "Muharram",
    date(2026, 9, 14): "Ganesh Chaturthi",
    date(2026, 10, 2): "Mahatma Gandhi Jayanti",
    date(2026, 10, 20): "Dussehra",
    date(2026, 11, 10): "Diwali Balipratipada",
    date(2026, 11, 24): "Prakash Gurpurb Sri Guru Nanak Dev",
    date(2026, 12, 25): "Christmas",
}

# MCX: the sessions ("morning" 09:00-17:00, "evening" 17:00-close) each holiday closes.
MORNING, EVENING = "morning", "evening"
MCX_HOLIDAYS: dict[date, tuple[str, frozenset[str]]] = {
    date(2026, 1, 1): ("New Year Day", frozenset({EVENING})),
    date(2026, 1, 15): ("Municipal Corporation elections in Maharashtra", frozenset({MORNING})),
    date(2026, 2, 1): ("Union Budget: special session, morning only", frozenset({EVENING})),
    date(2026, 1, 26): ("Republic Day", frozenset({MORNING, EVENING})),
    date(2026, 3, 3): ("Holi", frozenset({MORNING})),
    date(2026, 3, 31): ("Shri Mahavir Jayanti", frozenset({MORNING})),
    date(2026, 4, 3): ("Good Friday", frozenset({MORNING, EVENING})),
    date(2026, 4, 14): ("Dr. Baba Saheb Ambedkar Jayanti", frozenset({MORNING})),
    date(2026, 5, 1): ("Maharashtra Day", frozenset({MORNING})),
    date(2026, 5, 28): ("Bakri Id", frozenset({MORNING})),
    date(2026, 6, 26): ("Muharram", frozenset({MORNING})),
    date(2026, 9, 14): ("Ganesh Chaturthi", frozenset({MORNING})),
    date(2026, 10, 2): ("Mahatma Gandhi Jayanti", frozenset({MORNING, EVENING})),
    date(2026, 10, 20): ("Dussehra", frozenset({MORNING})),
    date(2026, 11, 10): ("Diwali Balipratipada", frozenset({MORNING})),
    date(2026, 11, 24): ("Guru Nanak Jayanti", frozenset({MORNING})),
    date(2026, 12, 25): ("Christmas", frozenset({MORNING, EVENING})),
}

# Weekend days with trading in the segments named (their regular sessions, less what
# MCX_HOLIDAYS closes: MCX traded its morning session only on 1 February).
SPECIAL_SESSIONS: dict[date, tuple[str, frozenset[Segment]]] = {
    date(2026, 2, 1): ("Union Budget live trading session",
                       frozenset({Segment.NSE, Segment.BSE, Segment.NFO, Segment.BFO, Segment.MCX})),
}

# MCX's evening session closes at 23:30 from the first date up to (not including) the second.
MCX_EARLY_CLOSE = (date(2026, 3, 9), date(2026, 11, 2))
MCX_CLOSE_EARLY, MCX_CLOSE_LATE = time(23, 30), time(23, 55)
