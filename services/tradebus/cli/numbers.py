"""Decimals as a trader reads them: exact, without float artefacts or scientific notation.

Wire decimals keep whatever exponent their producer gave them (`58000.0`, `5.8E+4`); a
derived value such as an average price carries up to 28 digits. Prices and quantities are
printed exactly, trailing zeros dropped; derived values are rounded first.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

DERIVED_PLACES = Decimal(10) ** -8  # averages and P&L: finer than any venue's tick


def plain(value: Decimal | None) -> str:
    """`58000.0` -> `58000`, `5.8E+4` -> `58000`, `0.000001` stays `0.000001`; None -> `-`."""
    if value is None:
        return "-"
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def derived(value: Decimal | None) -> str:
    """A computed value (average price, P&L), rounded to 8 decimal places."""
    if value is None or not value.is_finite():
        return plain(value)
    with localcontext() as context:  # room for every integer digit, however large
        context.prec = max(context.prec, value.adjusted() + 9)
        return plain(value.quantize(DERIVED_PLACES, rounding=ROUND_HALF_EVEN))
