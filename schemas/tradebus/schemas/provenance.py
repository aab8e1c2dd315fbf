"""Provenance: who may publish on a stored subject, and whether an event fits its subject.

The bus decides who may publish where (each service's user may publish on its own
subjects only); a subject therefore names its publisher's *scope*, and a reader that trusts
an event only as far as that scope keeps a compromised service from speaking for another:

- `tradebus.evt.order.<venue>.<account>`, `tradebus.evt.account.<venue>.<account>`:
  `connector.<venue>`, that venue's connector. It speaks for its own venue's accounts only,
  so an event whose body names another venue or account than its subject is refused. A
  connector answers commands too (`rejected`, `command_rejected`, `cancel_all_done`: the
  venue refused, an order unknown to the venue, a deadline passed before it was sent), so
  every order-event type stays allowed there.
- `tradebus.evt.reject.<venue>.<account>`: `risk`. Risk refuses commands and states
  nothing else: any type but `rejected` and `command_rejected` is refused there, so risk
  cannot forge a fill or an acceptance.
- `tradebus.cmd.*` `client`, `tradebus.route.*` `risk`, `tradebus.evt.risk`
  `risk_control` (risk answering `tradebus.ctl.risk`, or an operator's halt / resume).

Pure (no I/O): the order manager refuses with it, the audit logger records the scope with
each message, and `tradebus oms rebuild` replays with the same rules.
"""

from __future__ import annotations

import enum
from typing import Any

from .events import REJECTION_EVENTS
from .subjects import Family, ParsedSubject

UNKNOWN_SCOPE = "unknown"
"""The scope of a subject outside the registry: nobody the fleet knows may publish it."""

_FIXED_SCOPES = {
    Family.COMMAND: "client",
    Family.ROUTE: "risk",
    Family.REJECTION: "risk",
    Family.RISK_EVENT: "risk_control",
}
_VENUE_SCOPED = (Family.ORDER_EVENT, Family.ACCOUNT_EVENT)


class Refusal(enum.Enum):
    """Why an event that decoded is not taken as true (the `Tradebus-Reason` of its dead letter)."""

    SUBJECT_MISMATCH = "subject_mismatch"  # its body names another venue or account than its subject
    NOT_A_REJECTION = "not_a_rejection"  # a type other than a rejection on the rejection family


def scope(subject: ParsedSubject) -> str:
    """The publisher scope the bus allows on `subject` (`connector.<venue>`, `risk`, ...)."""
    if subject.family in _VENUE_SCOPED:
        return f"connector.{subject.venue}"
    return _FIXED_SCOPES.get(subject.family, UNKNOWN_SCOPE)


def refusal(subject: ParsedSubject, event: Any) -> Refusal | None:
    """Why `event`, read on `subject` (an order, account or rejection event), cannot have
    come from the subject's scope; None when it can."""
    if subject.family is Family.REJECTION and not isinstance(event, REJECTION_EVENTS):
        return Refusal.NOT_A_REJECTION
    if (event.venue, event.account) != (subject.venue, subject.account):
        return Refusal.SUBJECT_MISMATCH
    return None
