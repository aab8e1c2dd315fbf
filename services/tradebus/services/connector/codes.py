"""Venue error codes to the taxonomy (errors.py): one table per venue, kept in the venue's
folder, read here the same way for every venue.

The decision belongs to the venue's code, not to the SDK's exception class: an SDK maps
codes onto its own classes for its own purposes (ccxt raises InvalidOrder for Binance's
duplicate client order id and BadRequest for its stale timestamp, PermissionDenied, an
authentication error, for an account that may not trade), and those classes do not say
what the connector must do next. A code is looked up first; the venue's message is read
only where the venue overloads one code with several meanings (Binance -2010 and -1013,
Alpaca 40310000 and 40010001), and then matched as the documented text it starts with,
never as a word found somewhere in it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tradebus.schemas.values import RejectReason

from .errors import AuthFailed, OrderRefused, OutcomeUnknown, SessionExpired, VenueBusy, VenueError


class Outcome(enum.Enum):
    REFUSED = "refused"  # the venue answered and did nothing: a rejection with `reason`
    RETRYABLE = "retryable"  # nothing was done and trying again may work (rate limit, stale timestamp)
    UNKNOWN = "outcome_unknown"  # may have been done: looked up, never published as a rejection
    AUTH = "auth"  # the credentials themselves are refused: an operator must act
    SESSION = "session_expired"  # the day's access token expired or was invalidated: a new login fixes it


@dataclass(frozen=True)
class Rule:
    outcome: Outcome
    reason: RejectReason | None = None  # for REFUSED


def refused(reason: RejectReason) -> Rule:
    return Rule(Outcome.REFUSED, reason)


RETRYABLE = Rule(Outcome.RETRYABLE)
UNKNOWN = Rule(Outcome.UNKNOWN)
AUTH = Rule(Outcome.AUTH)
SESSION = Rule(Outcome.SESSION)


@dataclass(frozen=True)
class CodeTable:
    """`codes`: the rule per venue code; `messages`: per overloaded code, the rule per
    documented message (matched as the start of the venue's text: Alpaca appends details,
    "insufficient qty available for order (requested: 1000, available: 0)")."""

    venue: str
    codes: dict[str, Rule]
    messages: dict[str, dict[str, Rule]] = field(default_factory=dict)

    def rule(self, code: str | None, message: str) -> Rule | None:
        if code is None:
            return None
        for text, rule in self.messages.get(code, {}).items():
            if message.startswith(text):
                return rule
        return self.codes.get(code)


def taxonomy_error(rule: Rule, message: str, *, code: str | None, changes_state: bool,
                   retry_after: float | None = None) -> VenueError:
    """The taxonomy error a rule decides. `changes_state`: the request could have acted at
    the venue (place, amend, cancel), so an unknown outcome must be looked up."""
    if rule.outcome is Outcome.REFUSED:
        return OrderRefused(rule.reason or RejectReason.VENUE_REJECTED, message, venue_code=code)
    if rule.outcome is Outcome.RETRYABLE:
        return VenueBusy(message, retry_after=retry_after, venue_code=code)
    if rule.outcome is Outcome.AUTH:
        return AuthFailed(message, venue_code=code)
    if rule.outcome is Outcome.SESSION:
        return SessionExpired(message, venue_code=code)
    return OutcomeUnknown(message, venue_code=code) if changes_state else VenueBusy(message, venue_code=code)
