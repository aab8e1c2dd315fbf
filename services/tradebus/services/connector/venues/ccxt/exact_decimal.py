"""Venue decimal text into the wire's exact `Decimal`s, on the native market-data path.

Binance and Bybit send prices and sizes as decimal strings; the wire messages hold them as
`Decimal` (schemas/values.py) and encode them back into strings. The native streams decode a
trade's or a book ticker's decimals as text, in C with the rest of the frame, and make each
`Decimal` where the wire message is built, with `exact`: a decimal context's
`create_decimal` at unbounded precision and exponent range. That gives the value and the
text `Decimal(text)` gives (tests/venues/test_exact_decimal.py), and nothing can be rounded:
were anything ever inexact, rounded or clamped, the context traps it instead. Measured
(bench/normalize.py's frames), a value costs about a fifth less this way than through
msgspec's `Decimal` decoding, which calls `Decimal(text)` with its keyword parsing, context
look-up and white-space stripping; at up to four decimals a frame, making them is the
largest single cost of the path.

It is stricter than `Decimal(text)`: surrounding white space and `_` between digits are no
decimal. Text that is none raises `decimal.InvalidOperation`; `refusing_malformed` turns
that into the end of the watch (a gap on the bus), as a frame the connector cannot read is
data lost, not data to skip in silence.

Book levels stay `Decimal` fields decoded by msgspec: they are the local book's keys,
compared and ordered, and most of them never reach the wire.
"""

from __future__ import annotations

import contextlib
import decimal
from collections.abc import Callable, Iterator
from decimal import Decimal

from ...errors import VenueBusy

_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                         traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Rounded, decimal.Clamped])

exact: Callable[[str], Decimal] = _EXACT.create_decimal


@contextlib.contextmanager
def refusing_malformed(venue: str, symbol: str) -> Iterator[None]:
    """Around a market's stream: a decimal that `exact` cannot read ends it with VenueBusy."""
    try:
        yield
    except decimal.DecimalException as exc:
        raise VenueBusy(f"{venue} {symbol}: a frame with a price or size that is no decimal "
                        f"({type(exc).__name__})") from exc
