"""After-market orders (AMO): orders a venue takes outside the market's hours and sends to
the exchange when it opens. The window is the venue's, not the exchange's.

Zerodha (Kite variety `amo`), as of 2026-12-06, from
https://support.zerodha.com/category/trading-and-markets/kite-web-and-mobile/others/articles/what-is-amo-and-when-can-we-place-it :
AMOs are placed, modified or cancelled only from `opens` on a trading day until `closes` the
next morning: NSE and BSE equity 16:00-08:58, currency 17:00-08:59, F&O 15:45-09:10, MCX
from the evening session's close (23:30 March-November, 23:55 otherwise) to 08:58; and at any
time on weekends and trading holidays (Zerodha's earlier version of the same article:
https://support.zerodha.com/category/trading-and-markets/kite-web-and-mobile/articles/what-is-amo-and-when-can-we-place-it).

Fyers calls them Schedule Orders (equity, F&O and currency only, sent at 09:15 / 09:00:
https://support.fyers.in/portal/en/kb/articles/what-is-a-schedule-order-22-3-2022-old); the
Fyers connector places none (`offlineOrder` false), so no Fyers window is kept here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from .calendar import closure, ist, sessions
from .segments import Segment


@dataclass(frozen=True)
class AmoWindow:
    """On a trading day AMOs are taken before `closes` and from `opens` on; `opens` None
    means from the close of the day's last session (MCX, whose close moves with US DST)."""

    closes: time
    opens: time | None


ZERODHA_AMO: dict[Segment, AmoWindow] = {
    Segment.NSE: AmoWindow(closes=time(8, 58), opens=time(16, 0)),
    Segment.BSE: AmoWindow(closes=time(8, 58), opens=time(16, 0)),
    Segment.CDS: AmoWindow(closes=time(8, 59), opens=time(17, 0)),
    Segment.NFO: AmoWindow(closes=time(9, 10), opens=time(15, 45)),
    Segment.BFO: AmoWindow(closes=time(9, 10), opens=time(15, 45)),
    Segment.MCX: AmoWindow(closes=time(8, 58), opens=None),
}


def amo_refusal(windows: dict[Segment, AmoWindow], segment: Segment, when_ns: int) -> str | None:
    """Why an AMO for `segment` is not taken at `when_ns`; None when it is (CalendarUnknown
    for a year without calendar data)."""
    window = windows.get(segment)
    if window is None:
        return f"the venue takes no after-market orders for {segment.value}"
    at = ist(when_ns)
    if closure(segment, at.date()) is not None:
        return None  # weekends and holidays: any time
    held = sessions(segment, at.date())
    opens = window.opens if window.opens is not None else held[-1].end
    moment = at.time()
    if moment < window.closes or moment >= opens:
        return None
    return (f"after-market orders for {segment.value} are taken from {opens:%H:%M} to {window.closes:%H:%M} IST "
            f"on trading days, not at {at:%Y-%m-%d %H:%M} IST")
