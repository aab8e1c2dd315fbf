"""Kraken spot errors (docs.kraken.com/exchange/guides/general/errors; support.kraken.com
"API Error Codes") to the taxonomy. Kraken names its errors instead of numbering them
(`{"error":["EOrder:Insufficient funds"]}`): the name is the code.

The errors whose decision differs from ccxt's exception class, and why:
- EAPI:Invalid nonce: ccxt raises InvalidNonce, a NetworkError, so a place would be looked
  up as an unknown outcome; Kraken refused it before processing, so it is retried.
- EAPI:Invalid signature: ccxt has no entry and raises a plain ExchangeError (an order
  refusal); the credentials are wrong.
- EOrder:Unknown order: ccxt raises InvalidOrder; it is the order the venue does not know.
- EOrder:Order minimum not met / EOrder:Cost minimum not met / EQuery:Unknown asset pair:
  ccxt raises InvalidOrder / ExchangeError, whose text names no rule the connector reads.
- EService:Market in cancel_only mode / post_only mode: ccxt raises OnMaintenance, a
  NetworkError (an unknown outcome on a place); the market refused the order.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused

CODES = CodeTable(
    venue="kraken",
    codes={
        "EAPI:Invalid key": AUTH,
        "EAPI:Invalid signature": AUTH,
        "EAPI:Invalid nonce": RETRYABLE,  # refused before processing
        "EGeneral:Permission denied": AUTH,  # the key lacks the permission: an operator must act
        "EGeneral:Temporary lockout": RETRYABLE,
        "EAPI:Rate limit exceeded": RETRYABLE,
        "EOrder:Rate limit exceeded": RETRYABLE,
        "EGeneral:Too many requests": RETRYABLE,
        "EOrder:Insufficient funds": refused(RejectReason.INSUFFICIENT_FUNDS),
        "EOrder:Order minimum not met": refused(RejectReason.LOT_SIZE),
        "EOrder:Cost minimum not met": refused(RejectReason.MIN_NOTIONAL),
        "EOrder:Unknown order": refused(RejectReason.UNKNOWN_ORDER),
        "EQuery:Unknown asset pair": refused(RejectReason.UNKNOWN_INSTRUMENT),
        "EQuery:Invalid asset pair": refused(RejectReason.UNKNOWN_INSTRUMENT),
        "EGeneral:Invalid arguments": refused(RejectReason.MALFORMED),
        "EService:Market in cancel_only mode": refused(RejectReason.VENUE_REJECTED),
        "EService:Market in post_only mode": refused(RejectReason.VENUE_REJECTED),
        "EService:Unavailable": UNKNOWN,
        "EService:Busy": UNKNOWN,
        "EGeneral:Internal error": UNKNOWN,
    },
)
