"""Bybit v5 retCodes (bybit-exchange.github.io/docs/v5/error: general codes, UTA and spot
trade codes) to the taxonomy.

The codes whose decision differs from ccxt's exception class, and why:
- 170141 "Duplicate clientOrderId" (and 110072 for derivatives): ccxt raises InvalidOrder;
  the venue holds an order under this orderLinkId, so the place goes to the duplicate
  recovery (look it up), never to a rejection.
- 10002 (request time outside the recv window): ccxt raises InvalidNonce; Bybit refused it
  before processing, so it is retried with a fresh timestamp.
- 10016 "Server error." (and 10000, 170001, 170007, 170146, 170147): ccxt raises a plain
  ExchangeError; a place that got it may have been carried out, so it is looked up, never
  published as a rejection.
- The spot order rules (170134, 170136, 170137, 170140, 170218): ccxt raises InvalidOrder,
  whose text names no rule the connector could recognise ("Order price decimal too long.").
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused

CODES = CodeTable(
    venue="bybit",
    codes={
        "10000": UNKNOWN,  # Server Timeout
        "10001": refused(RejectReason.MALFORMED),  # Request parameter error
        "10002": RETRYABLE,  # The request time exceeds the time window range.
        "10003": AUTH,  # API key is invalid.
        "10004": AUTH,  # Error sign
        "10005": AUTH,  # Permission denied, please check your API key permissions.
        "10006": RETRYABLE,  # Too many visits. Exceeded the API Rate Limit.
        "10007": AUTH,  # User authentication failed.
        "10009": AUTH,  # IP has been banned.
        "10010": AUTH,  # Unmatched IP, please check your API key's bound IP addresses.
        "10016": UNKNOWN,  # Server error.
        "10018": RETRYABLE,  # Exceeded the IP Rate Limit.
        "110001": refused(RejectReason.UNKNOWN_ORDER),  # Order does not exist
        "110004": refused(RejectReason.INSUFFICIENT_FUNDS),  # Wallet balance is insufficient
        "110007": refused(RejectReason.INSUFFICIENT_FUNDS),  # Available balance is insufficient
        "110008": refused(RejectReason.ORDER_NOT_OPEN),  # The order has been completed or cancelled.
        "110010": refused(RejectReason.ORDER_NOT_OPEN),  # The order has been cancelled
        "110012": refused(RejectReason.INSUFFICIENT_FUNDS),  # Insufficient available balance.
        "110072": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID),  # OrderLinkedID is duplicate
        "170001": UNKNOWN,  # Internal error.
        "170005": RETRYABLE,  # Too many new orders
        "170007": UNKNOWN,  # Timeout waiting for response from backend server.
        "170115": refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE),  # Invalid timeInForce.
        "170116": refused(RejectReason.UNSUPPORTED_ORDER_TYPE),  # Invalid orderType.
        "170121": refused(RejectReason.UNKNOWN_INSTRUMENT),  # Invalid symbol.
        "170131": refused(RejectReason.INSUFFICIENT_FUNDS),  # Balance insufficient
        "170134": refused(RejectReason.TICK_SIZE),  # Order price decimal too long.
        "170136": refused(RejectReason.LOT_SIZE),  # Order quantity lower than the minimum.
        "170137": refused(RejectReason.LOT_SIZE),  # Order volume decimal too long
        "170139": refused(RejectReason.ORDER_NOT_OPEN),  # Order has been filled.
        "170140": refused(RejectReason.MIN_NOTIONAL),  # Order value exceeded lower limit
        "170141": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID),  # Duplicate clientOrderId
        "170142": refused(RejectReason.ORDER_NOT_OPEN),  # Order has been cancelled
        "170146": UNKNOWN,  # Order creation timeout
        "170147": UNKNOWN,  # Order cancellation timeout
        "170148": refused(RejectReason.LOT_SIZE),  # Market order amount decimal too long
        "170190": refused(RejectReason.ORDER_NOT_OPEN),  # Cancel order has been finished
        "170210": refused(RejectReason.VENUE_REJECTED),  # New order rejected.
        "170213": refused(RejectReason.UNKNOWN_ORDER),  # Order does not exist.
        "170217": refused(RejectReason.UNSUPPORTED_ORDER_TYPE),  # Only LIMIT-MAKER order is supported
        "170218": refused(RejectReason.POST_ONLY_WOULD_TAKE),  # The LIMIT-MAKER order is rejected due to invalid price.
        "170222": RETRYABLE,  # Too many requests in this time frame.
    },
)
