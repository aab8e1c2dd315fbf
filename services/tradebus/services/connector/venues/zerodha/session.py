"""Kite Connect sessions: when an access token stops working, and how to get the next one.

Kite's session answer documents its `access_token`: unless invalidated through the API or
by a master logout from Kite Web, it expires at 6 AM on the next day, a regulatory
requirement (kite.trade/docs/connect/v3/user/, "Response attributes"). So a token seen at any
time is done at the next 06:00 IST. An earlier end (a logout) is known from the venue's
answer: 403 TokenException (codes.py), which Kite also answers once the token expired.

The next token: the login flow (docs/venues.md "Zerodha: logging in"), ending in
`tradebus login zerodha --request-token <request_token>`.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from ...session import SessionRules

IST = timezone(timedelta(hours=5, minutes=30))
SESSION_END = time(6, 0)  # IST


def expires_at(token: str, seen_ns: int) -> int:
    """The next 06:00 IST after the token was first seen (ns)."""
    seen = datetime.fromtimestamp(seen_ns / 1e9, IST)
    end = datetime.combine(seen.date(), SESSION_END, IST)
    if end <= seen:
        end += timedelta(days=1)
    return int(end.timestamp()) * 1_000_000_000


RULES = SessionRules(expires_at=expires_at, login="tradebus login zerodha --request-token <request_token from Kite's login redirect>")
