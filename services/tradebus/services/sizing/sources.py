"""What a size is computed from, asked of the fleet: the instrument's rules from the venue's
connector (`tradebus.ctl.instruments.<venue>`, kept for a while) and the account's equity
from the order manager's balances (`GetBalances` on `tradebus.ctl.oms`).

The order manager is the equity source because it already keeps every venue account's latest
balances, durably, and answers for them: following account events here as risk does would
hold a second copy that starts empty after every restart until each venue reports again.
Equity is the account's total balance in the instrument's quote currency: cash, without the
value of positions held (that would need a mark price per position), and without balances in
other currencies (the fleet has no conversion rates), so it errs small; an account holding
none of the quote currency has no equity for that instrument."""

from __future__ import annotations

import time
from decimal import Decimal

from tradebus.client import Client, QueryError, Unanswered
from tradebus.schemas.market import Instrument
from tradebus.schemas.sizing import SizingRefusal


class Refused(Exception):
    """The size cannot be computed: `refusal` says why in a word."""

    def __init__(self, refusal: SizingRefusal, detail: str) -> None:
        super().__init__(detail)
        self.refusal = refusal


class InstrumentRules:
    """Instrument definitions by (venue, symbol), each asked again after `ttl` seconds."""

    def __init__(self, client: Client, *, ttl: float, timeout: float) -> None:
        self.client = client
        self.ttl = ttl
        self.timeout = timeout
        self._held: dict[tuple[str, str], tuple[Instrument, float]] = {}

    async def get(self, venue: str, symbol: str) -> Instrument:
        key, now = (venue, symbol), time.monotonic()
        held = self._held.get(key)
        if held is not None and now - held[1] < self.ttl:
            return held[0]
        try:
            listed = await self.client.instruments(venue, [symbol], timeout=self.timeout)
        except Unanswered as exc:
            raise Refused(SizingRefusal.VENUE_UNAVAILABLE, str(exc)) from exc
        except QueryError as exc:
            raise Refused(SizingRefusal.UNKNOWN_INSTRUMENT, f"venue {venue!r}: {exc}") from exc
        self._held[key] = (listed[0], now)
        return listed[0]


async def equity(client: Client, venue: str, account: str, currency: str) -> Decimal:
    """The account's total balance in `currency`, as its venue last reported it."""
    try:
        balances = await client.balances(venue=venue, account=account)
    except QueryError as exc:  # not answered, or refused: either way nothing to size from
        raise Refused(SizingRefusal.OMS_UNAVAILABLE, str(exc)) from exc
    if not balances:
        raise Refused(SizingRefusal.UNKNOWN_ACCOUNT, f"the order manager holds no balance of {venue}/{account}")
    total = sum((b.total for b in balances if b.currency == currency), Decimal(0))
    if total <= 0:
        held = ", ".join(sorted({b.currency for b in balances}))
        raise Refused(SizingRefusal.NO_EQUITY, f"{venue}/{account} holds no {currency} (it holds {held})")
    return total
