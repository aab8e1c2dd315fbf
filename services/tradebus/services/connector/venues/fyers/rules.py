"""Fyers symbols as the Indian exchange rules see them (tradebus.markets.india).

Fyers writes a symbol as `<exchange>:<name>`, derivatives included: `NSE:SBIN-EQ` (NSE
equity), `NSE:NIFTY26DECFUT` and `NSE:NIFTY26D1524000CE` (NFO), `NSE:USDINR26DECFUT` (CDS),
`BSE:SENSEX26DECFUT` (BFO), `MCX:CRUDEOIL26DECFUT` (MCX) ("Symbology format",
https://myapi.fyers.in/docsv3). The segment is the exchange for cash symbols and the
exchange's derivatives segment for names ending in FUT, CE or PE.
"""

from __future__ import annotations

from decimal import Decimal

from tradebus.markets import india

CURRENCY_PAIRS = ("USDINR", "EURINR", "GBPINR", "JPYINR")  # NSE's currency derivatives (INR pairs)
_DERIVATIVES = {"NSE": india.Segment.NFO, "BSE": india.Segment.BFO, "MCX": india.Segment.MCX}


def listing(symbol: str, tick_size: Decimal, lot_size: Decimal) -> india.Listing | None:
    """What the exchange rules need of `symbol`; None for an exchange without rules here."""
    exchange, _, name = symbol.partition(":")
    kind = (india.Kind.FUTURE if name.endswith("FUT") else
            india.Kind.OPTION if name.endswith(("CE", "PE")) else india.Kind.EQUITY)
    if kind is india.Kind.EQUITY:
        segment = india.segment_of(exchange)
        if segment is None or not segment.cash:
            return None
    elif exchange == "NSE" and name.startswith(CURRENCY_PAIRS):
        segment = india.Segment.CDS
    elif exchange in _DERIVATIVES:
        segment = _DERIVATIVES[exchange]
    else:
        return None
    return india.Listing(segment=segment, kind=kind, tick_size=tick_size, lot_size=lot_size,
                         underlying=india.underlying_of(segment, name) if kind is not india.Kind.EQUITY else None)
