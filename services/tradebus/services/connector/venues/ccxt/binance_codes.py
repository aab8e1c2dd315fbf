"""Binance spot error codes (developers.binance.com, "Error codes for Binance": codes, their
messages for -1010 / -2010 / -2011, and the filter failures of -1013) to the taxonomy.

The codes whose decision differs from ccxt's exception class, and why:
- -2010 "Duplicate order sent.": ccxt raises InvalidOrder; the venue holds an order under
  this client order id, so the place goes to the duplicate recovery (look it up), never to
  a rejection.
- -1021 (timestamp outside recvWindow): ccxt raises InvalidNonce / BadRequest; Binance
  refused it before processing, so it is retried with a fresh timestamp, never looked up
  as an unknown outcome.
- "This account may not place or cancel orders." and the like (-2010): ccxt raises
  PermissionDenied, an authentication error; the key is fine, the account is restricted.
- -1006 / -1007: Binance documents "execution status unknown".
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused

# -1010, -2010 and -2011 share the matching engine's messages.
_ENGINE_MESSAGES = {
    "Duplicate order sent.": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID),
    "Account has insufficient balance for requested action.": refused(RejectReason.INSUFFICIENT_FUNDS),
    "Order would immediately match and take.": refused(RejectReason.POST_ONLY_WOULD_TAKE),
    "Unknown order sent.": refused(RejectReason.UNKNOWN_ORDER),
}

CODES = CodeTable(
    venue="binance",
    codes={
        "-1000": UNKNOWN,  # UNKNOWN: an unknown error occurred while processing the request
        "-1001": UNKNOWN,  # DISCONNECTED: internal error
        "-1003": RETRYABLE,  # TOO_MANY_REQUESTS
        "-1006": UNKNOWN,  # UNEXPECTED_RESP: execution status unknown
        "-1007": UNKNOWN,  # TIMEOUT: send status unknown; execution status unknown
        "-1008": RETRYABLE,  # SERVER_BUSY
        "-1010": refused(RejectReason.VENUE_REJECTED),  # ERROR_MSG_RECEIVED (messages below)
        "-1013": refused(RejectReason.VENUE_REJECTED),  # INVALID_MESSAGE (filter failures below)
        "-1015": RETRYABLE,  # TOO_MANY_ORDERS
        "-1016": RETRYABLE,  # SERVICE_SHUTTING_DOWN
        "-1021": RETRYABLE,  # INVALID_TIMESTAMP: refused before processing
        "-1022": AUTH,  # INVALID_SIGNATURE
        "-1100": refused(RejectReason.MALFORMED),
        "-1101": refused(RejectReason.MALFORMED),
        "-1102": refused(RejectReason.MALFORMED),
        "-1103": refused(RejectReason.MALFORMED),
        "-1104": refused(RejectReason.MALFORMED),
        "-1105": refused(RejectReason.MALFORMED),
        "-1106": refused(RejectReason.MALFORMED),
        "-1111": refused(RejectReason.MALFORMED),  # BAD_PRECISION (price / quantity below)
        "-1115": refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE),
        "-1116": refused(RejectReason.UNSUPPORTED_ORDER_TYPE),
        "-1121": refused(RejectReason.UNKNOWN_INSTRUMENT),
        "-2010": refused(RejectReason.VENUE_REJECTED),  # NEW_ORDER_REJECTED (messages below)
        "-2011": refused(RejectReason.VENUE_REJECTED),  # CANCEL_REJECTED (messages below)
        "-2013": refused(RejectReason.UNKNOWN_ORDER),  # NO_SUCH_ORDER
        "-2014": AUTH,  # BAD_API_KEY_FMT
        "-2015": AUTH,  # REJECTED_MBX_KEY: invalid key, IP or permissions (ccxt may call it a ban)
        "-2026": refused(RejectReason.UNKNOWN_ORDER),  # ORDER_ARCHIVED
    },
    messages={
        "-1010": _ENGINE_MESSAGES,
        "-2010": _ENGINE_MESSAGES,
        "-2011": _ENGINE_MESSAGES,
        "-1013": {
            "Filter failure: PRICE_FILTER": refused(RejectReason.TICK_SIZE),
            "Filter failure: LOT_SIZE": refused(RejectReason.LOT_SIZE),
            "Filter failure: MARKET_LOT_SIZE": refused(RejectReason.LOT_SIZE),
            "Filter failure: MIN_NOTIONAL": refused(RejectReason.MIN_NOTIONAL),
            "Filter failure: NOTIONAL": refused(RejectReason.MIN_NOTIONAL),
            "Filter failure: MAX_NUM_ORDERS": refused(RejectReason.MAX_OPEN_ORDERS),
        },
        "-1111": {
            "Parameter 'price' has too much precision.": refused(RejectReason.TICK_SIZE),
            "Parameter 'quantity' has too much precision.": refused(RejectReason.LOT_SIZE),
        },
    },
)
