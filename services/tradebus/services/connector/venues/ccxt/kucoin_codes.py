"""KuCoin spot error codes (www.kucoin.com/docs-new, "Errors"; the answers ccxt records in
kucoin.py) to the taxonomy. KuCoin overloads 400100 ("parameter error") and 600100 with
many meanings, told apart by the documented message.

The codes whose decision differs from ccxt's exception class, and why:
- 400002 (KC-API-TIMESTAMP invalid): ccxt raises InvalidNonce, a NetworkError (an unknown
  outcome on a place); KuCoin refused it before processing, so it is retried.
- 400303 (identity verification required): ccxt raises PermissionDenied, an authentication
  error; the key is fine, the account may not trade until verified.
- 400100 "account.available.amount": ccxt raises BadRequest; it is the available balance.
- 400100 / 600100 size rules ("Order size below the minimum requirement.", "Order size
  increment invalid.", ...): ccxt raises InvalidOrder, whose text names no rule the
  connector reads.
- 500000 "Internal Server Error": may have been carried out, stated here.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused

CODES = CodeTable(
    venue="kucoin",
    codes={
        "400001": AUTH,  # KC-API-KEY missing
        "400002": RETRYABLE,  # KC-API-TIMESTAMP invalid
        "400003": AUTH,  # KC-API-KEY not exists
        "400004": AUTH,  # KC-API-PASSPHRASE error
        "400005": AUTH,  # Signature error
        "400006": AUTH,  # The requested ip address is not in the api whitelist
        "400007": AUTH,  # Access denied, require more permission
        "400100": refused(RejectReason.MALFORMED),  # Parameter error (messages below)
        "400200": refused(RejectReason.VENUE_REJECTED),  # Forbidden to place an order
        "400303": refused(RejectReason.VENUE_REJECTED),  # identity verification required
        "400600": refused(RejectReason.UNKNOWN_INSTRUMENT),  # validation.createOrder.symbolNotAvailable
        "429000": RETRYABLE,  # Too many requests
        "500000": UNKNOWN,  # Internal Server Error
        "200004": refused(RejectReason.INSUFFICIENT_FUNDS),  # Balance insufficient
        "230003": refused(RejectReason.INSUFFICIENT_FUNDS),  # Balance insufficient!
        "600100": refused(RejectReason.MIN_NOTIONAL),  # Funds below the minimum requirement. (messages below)
    },
    messages={
        "400100": {
            "account.available.amount": refused(RejectReason.INSUFFICIENT_FUNDS),
            "Order size below the minimum requirement.": refused(RejectReason.LOT_SIZE),
            "The quantity is below the minimum requirement.": refused(RejectReason.LOT_SIZE),
            "order_not_exist_or_not_allow_to_cancel": refused(RejectReason.UNKNOWN_ORDER),
            "Unsupported trading pair.": refused(RejectReason.UNKNOWN_INSTRUMENT),
        },
        "600100": {
            "Order size increment invalid.": refused(RejectReason.LOT_SIZE),
        },
    },
)
