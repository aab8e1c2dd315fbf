"""Cancels that reach the connector before their place: held, not refused.

A client's cancel can be routed before its place: the client retried a place whose publish
ack it lost after it had sent the cancel, or sent them over two connections. Refusing the
cancel (`unknown_order`) would leave the order resting once the place arrives. So a cancel
the venue does not know the order of is held, unacknowledged, and executed right after its
place; if the place never comes, the cancel gets the venue's `unknown_order` when the hold
runs out. Bounded in time (`connector.cancel_hold`, by default the longest time to live a
place may have: after it, no place sent before the cancel can still execute) and in count
(MAX_HELD: beyond it a cancel is answered at once).

A held cancel stays unacknowledged (kept from redelivery by progress notes to the server):
if the connector dies, its successor gets it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg

from tradebus.schemas.commands import CancelOrder
from tradebus.schemas.events import CommandRejected
from tradebus.schemas.values import RejectReason

MAX_HELD = 1000


@dataclass(slots=True)
class HeldCancel:
    msg: Msg
    command: CancelOrder
    until: float  # monotonic seconds


def unknown_order(events: Sequence[object], cancel: CancelOrder) -> CommandRejected | None:
    """The venue's `unknown_order` answer to `cancel` among its events, if that is what it said."""
    return next((event for event in events if isinstance(event, CommandRejected)
                 and event.reason is RejectReason.UNKNOWN_ORDER and event.client_order_id == cancel.client_order_id), None)


class HeldCancels:
    def __init__(self, *, hold: float, limit: int = MAX_HELD, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_for = hold
        self.limit = limit
        self._clock = clock
        self._held: dict[tuple[str, str], HeldCancel] = {}  # (account, client order id)

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, msg: Msg, cancel: CancelOrder) -> bool:
        """Hold `cancel` for its place; False when full (answer it now). A redelivery of a
        held cancel replaces the earlier delivery and keeps its expiry."""
        key = (cancel.account, cancel.client_order_id)
        earlier = self._held.get(key)
        if earlier is None and len(self._held) >= self.limit:
            return False
        until = earlier.until if earlier is not None else self._clock() + self.hold_for
        self._held[key] = HeldCancel(msg, cancel, until)
        return True

    def release(self, account: str, client_order_id: str) -> HeldCancel | None:
        """The cancel held for this order, no longer held: its place has come."""
        return self._held.pop((account, client_order_id), None)

    def expired(self) -> list[HeldCancel]:
        """Take out every cancel whose hold ran out."""
        now = self._clock()
        keys = [key for key, held in self._held.items() if held.until <= now]
        return [self._held.pop(key) for key in keys]

    def messages(self) -> list[Msg]:
        return [held.msg for held in self._held.values()]
