"""Fyers sessions: when an access token stops working, and how to get the next one.

A Fyers access token is a JWT (the validate-authcode answer's `access_token`, docs
myapi.fyers.in/docsv3 "Login flow"); its `exp` claim is when Fyers stops taking it (a
trading day's session). Read without verifying the signature, which only Fyers can: it
decides only when the status shows `expiring`; an expired token is known from Fyers' own
answer (codes.py, -8 / -15 / -16 / -17). A token that is not a JWT has no known expiry.

The next token: the login flow (docs/venues.md "Fyers: logging in"), ending in
`tradebus login fyers --auth-code <auth_code>`.
"""

from __future__ import annotations

import base64
import binascii
import json

from ...session import SessionRules


def expires_at(token: str, seen_ns: int) -> int | None:
    """The token's `exp` claim (ns), None if it carries none."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return int(expiry) * 1_000_000_000 if isinstance(expiry, int | float) and not isinstance(expiry, bool) else None


RULES = SessionRules(expires_at=expires_at, login="tradebus login fyers --auth-code <auth_code from Fyers' login redirect>")
