"""The error taxonomy every venue maps its SDK's exceptions onto.

What matters to the order path is not what went wrong but what is known afterwards:

- `OrderRefused`: the venue answered and did nothing. The command is answered with a
  rejection carrying the shared reason code; retrying would not help.
- `VenueBusy`: the venue did nothing, and trying later may work (rate limit, maintenance,
  a connection that failed before the request was sent). Retried after `retry_after`.
- `OutcomeUnknown`: the request may or may not have been carried out (a timeout or a
  dropped connection after sending). Never retried blindly: the order is looked up by its
  client order id first.
- `AuthFailed`: the credentials are invalid or expired. Nothing works until an operator
  acts: the connector reports it on its status and rejects commands with AUTH_FAILED.
- `SessionExpired`: an `AuthFailed` that a new access token fixes: the day's session of a
  venue with daily tokens (Zerodha, Fyers) expired or was invalidated. The connector's
  session (session.py) refuses commands with SESSION_EXPIRED and waits for a new token.

Messages must be safe to log: venue adapters build them from the venue's error code and
text, never from request parameters or headers (which hold keys and signatures).
"""

from __future__ import annotations

from tradebus.schemas.values import RejectReason


class VenueError(Exception):
    def __init__(self, message: str, *, venue_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.venue_code = venue_code  # the venue's own code, for operators (e.g. "-2010")


class OrderRefused(VenueError):
    def __init__(self, reason: RejectReason, message: str, *, venue_code: str | None = None) -> None:
        super().__init__(message, venue_code=venue_code)
        self.reason = reason


class VenueBusy(VenueError):
    def __init__(self, message: str, *, retry_after: float | None = None, venue_code: str | None = None) -> None:
        super().__init__(message, venue_code=venue_code)
        self.retry_after = retry_after


class OutcomeUnknown(VenueError):
    pass


class AuthFailed(VenueError):
    reason = RejectReason.AUTH_FAILED  # what a command it stopped is refused with


class SessionExpired(AuthFailed):
    reason = RejectReason.SESSION_EXPIRED
