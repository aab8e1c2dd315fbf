"""IBKR's fixed commission schedule, per order (interactivebrokers.com/en/pricing/commissions-*.php,
"Fixed" pricing; exchange, regulatory and clearing fees, which IBKR passes through on top of
these for futures and options, left out):

- US stocks: USD 0.005 per share, at least USD 1.00 and at most 1% of the trade value per order;
- forex (IDEALPRO): 0.20 basis points of the trade value, at least USD 2.00 per order;
- futures: USD 0.85 per contract;
- US options: USD 0.65 per contract, at least USD 1.00 per order.

An order's minimum is charged once: each execution pays what the order's commission so far
grows by, so a first partial fill pays at least the minimum and later ones the rate.
"""

from __future__ import annotations

from decimal import Decimal

from .listings import Listing

CENT = Decimal("0.01")


def order_commission(listing: Listing, quantity: Decimal, value: Decimal) -> Decimal:
    """The commission of an order that has traded `quantity` for `value` so far."""
    if listing.sec_type == "STK":
        return min(max(Decimal("0.005") * quantity, Decimal("1.00")), value / 100).quantize(CENT)
    if listing.sec_type == "CASH":
        return max(value * Decimal("0.00002"), Decimal("2.00")).quantize(CENT)
    if listing.sec_type == "FUT":
        return (Decimal("0.85") * quantity).quantize(CENT)
    return max(Decimal("0.65") * quantity, Decimal("1.00")).quantize(CENT)
