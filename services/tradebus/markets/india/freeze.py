"""Freeze quantities: the most units one order may carry in NSE's index derivatives (NFO).
The exchange rejects ("freezes") a larger order; we refuse it before it leaves the fleet and
say so, never slicing it into several orders on our own.

Data as published by NSE circular of 30 January 2026, effective 1 February 2026
("Quantity freeze limits for indices", summarized at
https://rhnvrm.github.io/stock-market-circulars/circulars/nse/2026/nse-2026-01-30-d751e7619e402336-quantity-freeze-limits-for-indices).
As of 2026-12-06 this is the latest revision whose figures were found; NSE revises these
limits about monthly (a revision effective 2 March 2026 exists), so update the table from
NSE's current list (nseindia.com "Quantity freeze", file qtyfreeze) before live use. Stock
derivatives and BSE's index derivatives (BFO) have limits too; they are not in this table
and are left to the exchange's own refusal.
"""

from __future__ import annotations

from decimal import Decimal

from .segments import Segment

AS_OF = "2026-02-01"
FREEZE_QUANTITIES: dict[Segment, dict[str, Decimal]] = {
    Segment.NFO: {
        "NIFTY": Decimal(1800),
        "BANKNIFTY": Decimal(600),
        "FINNIFTY": Decimal(1800),
        "MIDCPNIFTY": Decimal(2800),
        "NIFTYNXT50": Decimal(600),
    },
}


def freeze_quantity(segment: Segment, underlying: str | None) -> Decimal | None:
    """The freeze quantity of `underlying`'s contracts on `segment`; None where none is known."""
    if underlying is None:
        return None
    return FREEZE_QUANTITIES.get(segment, {}).get(underlying)


def underlying_of(segment: Segment, name: str) -> str | None:
    """The underlying of a derivative named like `NIFTY26DECFUT` or `NIFTYNXT502612324000CE`:
    the longest underlying of the freeze table the name starts with, followed by the
    two-digit year of the expiry (so NIFTY is not taken for NIFTYNXT50)."""
    known = FREEZE_QUANTITIES.get(segment, {})
    matches = [u for u in known if name.startswith(u) and name[len(u):len(u) + 2].isdigit()]
    return max(matches, key=len) if matches else None
