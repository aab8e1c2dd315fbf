"""OKX v5 error codes (www.okx.com/docs-v5/en/#error-code) to the taxonomy. A refused order
answers code "1" with the order's own code in `data[].sCode` (parsing.venue_answer), which
is the code looked up here.

The codes whose decision differs from ccxt's exception class, and why:
- 51016 "Duplicated clOrdId": ccxt raises InvalidOrder; the venue holds an order under this
  client order id, so the place goes to the duplicate recovery (look it up).
- 50102 "Timestamp request expired": ccxt raises InvalidNonce, a NetworkError (an unknown
  outcome on a place); OKX refused it before processing, so it is retried.
- 51010 (account mode does not support the endpoint), 50027 (account restricted from
  trading): ccxt raises PermissionDenied / AccountNotEnabled, authentication errors; the
  key is fine, the account may not place this order.
- 51121 (not a multiple of the lot size), 51020 (below the minimum amount): ccxt raises
  InvalidOrder, whose text names no rule the connector reads.
- 50004 "API endpoint request timeout" (the docs: it does not say whether the order
  succeeded): ccxt raises RequestTimeout; unknown outcome, stated here rather than left to
  the class.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused

CODES = CodeTable(
    venue="okx",
    codes={
        "50001": UNKNOWN,  # Service temporarily unavailable
        "50004": UNKNOWN,  # API endpoint request timeout (does not indicate success or failure)
        "50011": RETRYABLE,  # Rate limit reached
        "50013": UNKNOWN,  # System is busy
        "50026": UNKNOWN,  # System error
        "50027": refused(RejectReason.VENUE_REJECTED),  # Account restricted from trading
        "50061": RETRYABLE,  # Sub-account rate limit reached
        "50102": RETRYABLE,  # Timestamp request expired
        "50111": AUTH,  # Invalid OK-ACCESS-KEY
        "50113": AUTH,  # Invalid signature
        "51000": refused(RejectReason.MALFORMED),  # Parameter {param0} error
        "51001": refused(RejectReason.UNKNOWN_INSTRUMENT),  # Instrument ID does not exist
        "51008": refused(RejectReason.INSUFFICIENT_FUNDS),  # Insufficient balance
        "51010": refused(RejectReason.VENUE_REJECTED),  # account mode does not support this API
        "51016": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID),  # Duplicated clOrdId
        "51020": refused(RejectReason.LOT_SIZE),  # Order amount should be greater than the min available amount
        "51119": refused(RejectReason.INSUFFICIENT_FUNDS),  # insufficient balance
        "51121": refused(RejectReason.LOT_SIZE),  # Order count should be the integer multiples of the lot size
        "51131": refused(RejectReason.INSUFFICIENT_FUNDS),  # Insufficient balance
        "51155": refused(RejectReason.VENUE_REJECTED),  # local compliance restrictions
        "51400": refused(RejectReason.UNKNOWN_ORDER),  # cancellation failed: order does not exist
        "51603": refused(RejectReason.UNKNOWN_ORDER),  # Order does not exist
    },
)
