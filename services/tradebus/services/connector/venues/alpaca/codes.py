"""Alpaca trading API error codes to the taxonomy.

Alpaca answers `{"code": <8 digits>, "message": ...}`; the first three digits repeat the
HTTP status, and some answers carry no code at all (a 401 `{"message": "unauthorized"}`),
so a code found in `CODES` decides first and the HTTP status (`BY_STATUS`) otherwise.

A 403 is not an authentication failure: it is what Alpaca answers for insufficient buying
power (40310000) and for its pattern day trading protection (40310100), both refusals of
one order by an account whose credentials are fine. Only a 401 (40110000) says the key is
refused; taking a PDT refusal for revoked credentials would stop all trading.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused

_DUPLICATE = {"client_order_id must be unique": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID)}

CODES = CodeTable(
    venue="alpaca",
    codes={
        "40010001": refused(RejectReason.MALFORMED),  # invalid request (messages below)
        "40110000": AUTH,  # request is not authorized
        "40310000": refused(RejectReason.VENUE_REJECTED),  # forbidden (messages below)
        "40310100": refused(RejectReason.VENUE_REJECTED),  # pattern day trading protection
        "40410000": refused(RejectReason.UNKNOWN_ORDER),  # order not found
        "42210000": refused(RejectReason.VENUE_REJECTED),  # unprocessable (messages below)
        "42910000": RETRYABLE,  # too many requests
        "50010000": UNKNOWN,  # internal server error
    },
    messages={
        "40010001": _DUPLICATE,
        "42210000": _DUPLICATE,
        "40310000": {
            "insufficient buying power": refused(RejectReason.INSUFFICIENT_FUNDS),
            "insufficient day trading buying power": refused(RejectReason.INSUFFICIENT_FUNDS),
            "insufficient qty available for order": refused(RejectReason.INSUFFICIENT_FUNDS),
        },
    },
)

# When the answer has no code this table knows: its HTTP status decides.
BY_STATUS = CodeTable(
    venue="alpaca",
    codes={
        "400": refused(RejectReason.MALFORMED),
        "401": AUTH,
        "403": refused(RejectReason.VENUE_REJECTED),
        "404": refused(RejectReason.UNKNOWN_ORDER),
        "422": refused(RejectReason.VENUE_REJECTED),
        "429": RETRYABLE,
    },
)
