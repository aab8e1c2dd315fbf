"""Fyers API v3 error codes to the taxonomy.

Fyers answers `{"s": "error", "code": <negative int>, "message": ...}` (myapi.fyers.in/docsv3,
"Request & Response Structure" and "Common API Error Codes"); a code not listed there comes
from the older MyAPI table Fyers publishes with its Postman collection
(FyersDev/fyers-api-sample-code, Postman/FYERS_MyAPI - API Error Codes and Messages).

-99 is two things: Fyers' "order placement rejected" (the message says why), and what
fyers-apiv3 itself returns when a request failed before any answer came (its shared
`error_resp`, "Bad request"): parsing.py tells them apart by that object, never by the text.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, SESSION, UNKNOWN, CodeTable, refused

CODES = CodeTable(
    venue="fyers",
    codes={
        # the access token (a day's login) is refused: a new login fixes it (session.py)
        "-8": SESSION,  # token expired
        "-15": SESSION,  # invalid token
        "-16": SESSION,  # server unable to authenticate the token
        "-17": SESSION,  # token invalid or expired
        "-352": AUTH,  # invalid app id
        "-50": refused(RejectReason.MALFORMED),  # invalid parameters (message names them)
        "-51": refused(RejectReason.UNKNOWN_ORDER),  # invalid order id (look-up, modify, cancel)
        "-99": refused(RejectReason.VENUE_REJECTED),  # order placement rejected (message says why)
        "-300": refused(RejectReason.UNKNOWN_INSTRUMENT),  # invalid symbol
        "-310": refused(RejectReason.LOT_SIZE),  # invalid order quantity
        "-392": refused(RejectReason.TICK_SIZE),  # price not a multiple of the tick size
        "-161": refused(RejectReason.ORDER_NOT_OPEN),  # order already cancelled
        "-162": refused(RejectReason.ORDER_NOT_OPEN),  # order already traded
        "-164": refused(RejectReason.ORDER_NOT_OPEN),  # order already rejected
        "-429": RETRYABLE,  # API rate limit exceeded (per second, minute or day)
        "-353": RETRYABLE,  # API limit exceeded (older table)
        "-201": UNKNOWN,  # connection error (older table): the request may have reached the exchange
        "-96": UNKNOWN,  # unexpected error
    },
    # -99 carries the reason in its text. Fyers' risk check (RMS) refuses a place the account
    # cannot margin with "RED:Margin Shortfall:INR <required> Available:INR <available> for
    # C-<client> [FYERS_RISK_CUG]" (the text Fyers users' code matches on the place answer;
    # the order book then lists the order with status 5 and the same message).
    messages={"-99": {"RED:Margin Shortfall": refused(RejectReason.INSUFFICIENT_FUNDS)}},
)

# When the body has no code this table knows: its HTTP status decides (docs "HTTP Status Codes").
BY_STATUS = CodeTable(
    venue="fyers",
    codes={
        "400": refused(RejectReason.MALFORMED),
        "401": SESSION,  # "User could not be authenticated": the token (a bad app id has its own code)
        "403": refused(RejectReason.VENUE_REJECTED),
        "429": RETRYABLE,
        "500": UNKNOWN,
    },
)
