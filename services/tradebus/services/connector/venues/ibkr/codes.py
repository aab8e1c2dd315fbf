"""IB's message codes to the taxonomy.

TWS reports errors, warnings and notices alike through one `error` message: request id (the
order id for an order), code and text. The codes and their meanings are IBKR's table,
"TWS API message codes" (interactivebrokers.github.io/tws-api/message_codes.html, now on
IBKR Campus "TWS API Error Codes"); the client-side codes (5xx) are EClientErrors
(interactivebrokers.github.io/tws-api/classIBApi_1_1EClientErrors.html). Three groups:

- NOTICES: not errors. The data-farm messages TWS sends at every connection (2104, 2106,
  2158: "connection is OK"; 2107, 2108: inactive) and order messages that come with a
  state the order's status reports anyway (202 "Order Canceled - reason:" after a cancel,
  399 "Order Message" warnings, 2109 outside-RTH notice). Logged at debug, never mapped.
- CONNECTIVITY: 1100 (TWS lost its servers, e.g. the nightly reset), 1101 (restored, data
  lost: market data must be requested again), 1102 (restored, data kept), 2103/2105/2157
  (one data farm is broken: warned, trading goes on), and the client's 502 (cannot
  connect), 504 (not connected). The connector reads them as the connection's state
  (connector.py), never as an order's.
- CODES: what a request's error means for it.
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason

from ...codes import AUTH, RETRYABLE, UNKNOWN, CodeTable, refused, taxonomy_error
from ...errors import VenueError

NOTICES = frozenset({202, 399, 2104, 2106, 2107, 2108, 2109, 2119, 2158, 10167})
LOST = frozenset({1100})  # TWS cannot reach IB's servers: nothing can be traded
FARM_BROKEN = frozenset({2103, 2105, 2157})  # one data farm (market, historical, sec-def) is down: warned
RESTORED_DATA_LOST = 1101  # reconnected to IB: market data subscriptions must be sent again
RESTORED = frozenset({1101, 1102})

CODES = CodeTable(
    venue="ibkr",
    codes={
        # Pacing: nothing was done, the same request later may work.
        "100": RETRYABLE,  # "Max rate of messages per second has been exceeded."
        "162": refused(RejectReason.VENUE_REJECTED),  # "Historical Market Data Service error message:" + why (MESSAGES)
        "420": RETRYABLE,  # "Invalid Real-time Query" (pacing violation)
        # Connectivity: TWS / the client could not act.
        "502": RETRYABLE,  # "Couldn't connect to TWS."
        "504": RETRYABLE,  # "Not connected"
        "1100": RETRYABLE,  # "Connectivity between IB and TWS has been lost."
        # The connection's identity: an operator must act (another program holds the client
        # id, or TWS refuses this address). Nothing works until then.
        "326": AUTH,  # "Unable connect as the client id is already in use."
        # Order refusals.
        "103": refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID),  # "Duplicate order id"
        "104": refused(RejectReason.ORDER_NOT_OPEN),  # "Can't modify a filled order."
        "105": refused(RejectReason.VENUE_REJECTED),  # "Order being modified does not match original order."
        "107": refused(RejectReason.MALFORMED),  # "Cannot transmit incomplete order."
        "109": refused(RejectReason.VENUE_REJECTED),  # "Price is out of the range defined by the Percentage setting"
        "110": refused(RejectReason.TICK_SIZE),  # "The price does not conform to the minimum price variation for this contract."
        "111": refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE),  # "The TIF (Tif type) and the order type are incompatible."
        "135": refused(RejectReason.UNKNOWN_ORDER),  # "Can't find order with ID ="
        "161": refused(RejectReason.ORDER_NOT_OPEN),  # "Cancel attempted when order is not in a cancellable state."
        "200": refused(RejectReason.UNKNOWN_INSTRUMENT),  # "No security definition has been found for the request."
        "201": refused(RejectReason.VENUE_REJECTED),  # "Order rejected - Reason:" (the text says why; see MESSAGES)
        "203": refused(RejectReason.VENUE_REJECTED),  # "The security <security> is not available or allowed for this account."
        "321": refused(RejectReason.MALFORMED),  # "Error validating request"
        "354": refused(RejectReason.VENUE_REJECTED),  # "Requested market data is not subscribed."
        "434": refused(RejectReason.LOT_SIZE),  # "The order size cannot be zero."
        "460": refused(RejectReason.VENUE_REJECTED),  # "No Trading Permission"
        "10318": refused(RejectReason.LOT_SIZE),  # "This order doesn't support fractional quantity trading"
        "10147": refused(RejectReason.UNKNOWN_ORDER),  # "OrderId <id> that needs to be cancelled is not found."
        "10148": refused(RejectReason.ORDER_NOT_OPEN),  # "OrderId <id> that needs to be cancelled can not be cancelled, state:"
        "10149": refused(RejectReason.UNKNOWN_ORDER),  # "Invalid order id"
        # TWS did not say what became of the request: looked up.
        "106": UNKNOWN,  # "Can't transmit order ID"
        "512": UNKNOWN,  # "Order Sending Error" (client side: the socket failed while sending)
    },
    messages={
        # 162 names its cause in its text; the pacing one is worth trying again later.
        "162": {"Historical Market Data Service error message:Historical data request pacing violation": RETRYABLE},
        # 201 carries the reason as text. The margin check's refusal starts so, whatever
        # figure it names next (EQUITY WITH LOAN VALUE, NET LIQ, ...): as TWS logs quote it
        # (tests/venues/ibkr/corpus/errors/201-margin.json).
        "201": {"Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION":
                refused(RejectReason.INSUFFICIENT_FUNDS)},
    },
)


def venue_error(code: str, message: str, *, changes_state: bool) -> VenueError:
    """The taxonomy error of one TWS error message. A code the table does not know is an
    unknown outcome: the order is looked up rather than reported rejected while it may work."""
    rule = CODES.rule(code, message) or UNKNOWN
    return taxonomy_error(rule, f"IB {code}: {message}"[:500], code=code, changes_state=changes_state,
                          retry_after=1.0 if rule is RETRYABLE else None)
