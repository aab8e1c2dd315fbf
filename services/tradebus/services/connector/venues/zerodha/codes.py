"""Kite Connect's error answers to the taxonomy.

Kite answers an error with an HTTP status and `{"status": "error", "message": ...,
"error_type": <exception name>}` (kite.trade/docs/connect/v3/exceptions/); there are no
finer codes (Zerodha, kite.trade/forum/discussion/comment/42301: "there are no sub code").
pykiteconnect raises the exception class `error_type` names (GeneralException for a name it
does not define) with the HTTP status as `.code`. So the exception name decides, and the
status where one name covers answers with different outcomes:

- TokenException (403): the session expired or was invalidated: an operator must log in
  again (docs: "clear the user's session and re-initiate a login"); a new access token
  fixes it, so it is the session's outcome (session.py), not a refused key.
- InputException (400): missing or bad parameters: refused, nothing done.
- OrderException / MarginException / HoldingException: the OMS refused the order.
  MarginException is "insufficient funds" and HoldingException "insufficient holdings"
  (docs); pykiteconnect raises both as GeneralException with their status, so they are
  mapped here by name for the SDKs and proxies that pass `error_type` on.
- NetworkException (503) / DataException (502): the API could not reach or understand
  the OMS: the request may have been carried out (outcome unknown for a place / modify /
  cancel; a read is retried).
- GeneralException: unclassified; 429 (too many requests, docs "HTTP codes") is retryable,
  another status is looked up (unknown) rather than published as a refusal.
- PermissionException (403): the call is not allowed for this app / account: refused.

No message is read: Kite documents none of its texts, and an order that is not there is
found out by listing the day's orders (connector.lookup), never from an error's wording.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, SESSION, UNKNOWN, CodeTable, refused

CODES = CodeTable(
    venue="zerodha",
    codes={
        "TokenException": SESSION,
        "UserException": AUTH,  # "user account related errors": nothing works until an operator acts
        "InputException": refused(RejectReason.MALFORMED),
        "OrderException": refused(RejectReason.VENUE_REJECTED),
        "MarginException": refused(RejectReason.INSUFFICIENT_FUNDS),
        "HoldingException": refused(RejectReason.INSUFFICIENT_FUNDS),
        "PermissionException": refused(RejectReason.VENUE_REJECTED),
        "NetworkException": UNKNOWN,
        "DataException": UNKNOWN,
        "GeneralException": UNKNOWN,
    },
)

# Decided by the HTTP status before the name: a 429 is a rate limit whatever class carries it.
BY_STATUS = CodeTable(venue="zerodha", codes={"429": RETRYABLE})

# A place Kite's OMS takes and its risk management system (RMS) then rejects is not an
# error answer: the order is REJECTED, its `status_message` says why. These are the texts
# the rejection starts with, each as recorded (Kite publishes no list of them).
REJECTIONS = CodeTable(
    venue="zerodha",
    codes={},
    messages={"REJECTED": {
        # github.com/zerodha/kiteconnect-mocks orders.json (order 220524001859672):
        # "Insufficient funds. Required margin is 95417.84 but available margin is 74251.80. ..."
        "Insufficient funds.": refused(RejectReason.INSUFFICIENT_FUNDS),
    }},
)
