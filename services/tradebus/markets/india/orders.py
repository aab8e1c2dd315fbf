"""The pre-trade check of an order for an Indian exchange, run before it leaves the fleet.

Where: in the connector (Zerodha, Fyers) and the paper venue, not in risk. The facts the
check needs are the venue's: the instrument master (segment, tick, lot, underlying) is
loaded by the connector, and whether an order is an after-market order, and when AMOs are
taken, is the venue's own product (Kite's variety `amo`). Risk is venue-agnostic and sees
symbols only; giving it these rules would mean a second copy of every instrument master.
So one function, called by each of them just before the venue call.

Refusals name the rule and the numbers (RejectReason + message), in this order: tick size,
lot size (whole lots; equity lots are 1), freeze quantity, then the clock: outside the
segment's sessions `market_closed` (an AMO outside its window: `amo_window_closed`), a year
without calendar data `market_calendar_unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from tradebus.schemas.values import RejectReason

from .amo import AmoWindow, amo_refusal
from .calendar import CalendarUnknown, Phase, market_state
from .freeze import freeze_quantity
from .segments import Listing, Segment


class Refusal(NamedTuple):
    reason: RejectReason
    message: str


def check_terms(listing: Listing, quantity: Decimal | None, prices: Iterable[Decimal | None]) -> Refusal | None:
    """Tick, lot and freeze quantity of an order's (or a modify's) terms."""
    for price in prices:
        if price is not None and price % listing.tick_size:
            return Refusal(RejectReason.TICK_SIZE, f"price {price} is not a multiple of the tick {listing.tick_size}")
    if quantity is None:
        return None
    if quantity != quantity.to_integral_value() or quantity % listing.lot_size:
        return Refusal(RejectReason.LOT_SIZE, f"quantity {quantity} is not a multiple of the lot {listing.lot_size}")
    limit = freeze_quantity(listing.segment, listing.underlying)
    if limit is not None and quantity > limit:
        lots = limit // listing.lot_size
        return Refusal(RejectReason.FREEZE_QUANTITY,
                       f"quantity {quantity} is above the {listing.segment.value} freeze quantity {limit} of "
                       f"{listing.underlying}: one order carries at most {lots * listing.lot_size} "
                       f"({lots} lots of {listing.lot_size}); not split here")
    return None


def check_clock(listing: Listing, when_ns: int, amo: dict[Segment, AmoWindow] | None = None) -> Refusal | None:
    """Whether the segment takes the order at `when_ns`: a regular order (`amo` None) in a
    session (pre-open included), an after-market order inside the venue's AMO window."""
    try:
        if amo is not None:
            refused = amo_refusal(amo, listing.segment, when_ns)
            return None if refused is None else Refusal(RejectReason.AMO_WINDOW_CLOSED, refused)
        state = market_state(listing.segment, when_ns)
    except CalendarUnknown as exc:
        return Refusal(RejectReason.MARKET_CALENDAR_UNKNOWN, str(exc))
    if state.phase is Phase.CLOSED:
        return Refusal(RejectReason.MARKET_CLOSED, state.describe())
    return None


def check_order(listing: Listing, quantity: Decimal | None, prices: Iterable[Decimal | None], *, when_ns: int,
                amo: dict[Segment, AmoWindow] | None = None, clock: bool = True) -> Refusal | None:
    """Every check, terms first; `clock=False` skips the session check (a venue that trades
    around the clock, like an emulator or a paper venue without market hours)."""
    refused = check_terms(listing, quantity, prices)
    if refused is None and clock:
        refused = check_clock(listing, when_ns, amo)
    return refused
