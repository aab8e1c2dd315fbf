"""The venue's error codes to the taxonomy (connector/codes.py explains the outcomes).

The venue's code decides, never the SDK's exception class or a word found in the message.
Each code below is a placeholder for one outcome: replace them with the codes the venue
documents (cite the page beside each), and record every answer relied on under
tests/venues/<venue>/corpus/errors/ (the replay suite maps each through this table).
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason
from tradebus.services.connector.codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused, taxonomy_error
from tradebus.services.connector.errors import VenueError

CODES = CodeTable(
    venue="_template",
    codes={
        "invalid_api_key": AUTH,  # the credentials are refused: an operator must act
        "too_many_requests": RETRYABLE,  # refused before acting: tried again after its retry-after
        "insufficient_balance": refused(RejectReason.INSUFFICIENT_FUNDS),
        "order_not_found": refused(RejectReason.UNKNOWN_ORDER),
        "duplicate_client_order_id": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID),
        "internal_error": UNKNOWN,  # may have acted: looked up, never published as a rejection
    },
)


def venue_error(code: str | None, message: str, *, changes_state: bool, retry_after: float | None = None) -> VenueError:
    """The taxonomy error of one error answer. A code the table does not know is an unknown
    outcome: the order is looked up rather than reported rejected while it may be working."""
    rule = CODES.rule(code, message) or UNKNOWN
    return taxonomy_error(rule, message[:500], code=code, changes_state=changes_state, retry_after=retry_after)
