"""Which commands risk has decided, and which client order ids each venue account has used.

A command is known by its dedupe id (commands.py `command_dedupe_id`); the ledger remembers
the CMD stream sequence of the message risk decided for it. The same message again (a
re-delivery, whatever its delivery count says after a server restart) is skipped: its
decision is stored. Another message with the same dedupe id is a retry JetStream no longer
de-duplicated (its window passed): it is answered "already received", never executed again.

A client order id names one order for good. A place whose id the account already used (its
order routed, or refused by risk) is answered with a `command_rejected` (action place,
`duplicate_client_order_id`) naming how its terms differ, so the earlier order keeps its
state and the retry's sender learns why; a refused order's id is spent too (send the
corrected order under a new id), as at the venues.

An order group (`place_group`) is decided once, by its own dedupe id, and spends the client
order id of every order in it, and its group id. A group naming an id already used is
refused whole with a `command_rejected` (action place_group), so the earlier order keeps its
state. Risk refuses a group with one rejection per order (event id `risk:<group dedupe
id>.<client order id>`, `decided_id` reads the group's dedupe id back from it).

Rebuilt at start from ROUTE (routes: Nats-Msg-Id = dedupe id, `Tradebus-Command-Seq` header)
and EVENTS: risk's own rejections (event id `risk:<dedupe id>`, same header), and every
order's acceptance or rejection, so an id stays used after its route aged out of ROUTE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tradebus.schemas.commands import OrderCommand, PlaceOrder, PlaceOrderGroup, terms_differences
from tradebus.schemas.events import CommandRejected, OrderAccepted, OrderEvent, OrderRejected, command_refused
from tradebus.schemas.values import RejectReason

from .exposure import RISK_EVENT_PREFIX

COMMAND_SEQ = "Tradebus-Command-Seq"  # header of routes and rejections: the CMD sequence decided
UNKNOWN_SEQ = 0  # decided before risk recorded sequences: any message with that id is taken as it
_GROUP_PARTS = 5  # a group's dedupe id: <venue>.<account>.<group id>.group.<digest> (ids hold no dots)


def decided_id(event_id: str) -> str:
    """The dedupe id of the command one of risk's own answers (`risk:...`) decided: a refused
    group's rejections name the group and then the order."""
    answered = event_id.removeprefix(RISK_EVENT_PREFIX)
    parts = answered.split(".")
    if len(parts) == _GROUP_PARTS + 1 and parts[3] == "group":
        return answered.rpartition(".")[0]
    return answered


@dataclass(slots=True, frozen=True)
class TakenId:
    """A client order id an account used: the place that used it, or its acceptance (None when
    only its refusal is known, after a restart), and, if that place was refused, why."""

    dedupe_id: str  # of the place, if risk decided it ("" when known from the venue's events only)
    place: PlaceOrder | OrderAccepted | None
    refusal: RejectReason | None


class CommandLedger:
    def __init__(self) -> None:
        self.decided: dict[str, int] = {}  # dedupe id -> CMD stream sequence of the decided message
        self.taken: dict[tuple[str, str, str], TakenId] = {}  # (venue, account, client order id)
        self.groups: dict[tuple[str, str, str], str] = {}  # (venue, account, group id) -> dedupe id ("": from events)

    # --- recording -----------------------------------------------------------------------
    def decide(self, dedupe_id: str, seq: int, place: PlaceOrder | None = None,
               refusal: RejectReason | None = None) -> None:
        """Record a decision; a place (routed, or refused with `refusal`) uses up its id."""
        self.decided[dedupe_id] = seq
        if place is not None:
            self.taken.setdefault((place.venue, place.account, place.client_order_id),
                                  TakenId(dedupe_id, place, refusal))

    def decide_group(self, dedupe_id: str, seq: int, group: PlaceOrderGroup,
                     refusal: RejectReason | None = None) -> None:
        """Record a group's decision: it uses up its group id and every order's id."""
        self.decided[dedupe_id] = seq
        self.groups.setdefault((group.venue, group.account, group.group_id), dedupe_id)
        for order in group.placed_orders():
            self.taken.setdefault((order.venue, order.account, order.client_order_id), TakenId(dedupe_id, order, refusal))

    def forget(self, dedupe_ids: Iterable[str]) -> None:
        """Undo decisions whose publication failed: their commands are decided again."""
        undone = set(dedupe_ids)
        for dedupe_id in undone:
            self.decided.pop(dedupe_id, None)
        for key in [key for key, taken in self.taken.items() if taken.dedupe_id in undone]:
            del self.taken[key]
        for group in [group for group, dedupe_id in self.groups.items() if dedupe_id in undone]:
            del self.groups[group]

    def on_route(self, dedupe_id: str, seq: int, command: OrderCommand) -> None:
        if isinstance(command, PlaceOrderGroup):
            self.decide_group(dedupe_id, seq, command)
        else:
            self.decide(dedupe_id, seq, command if isinstance(command, PlaceOrder) else None)

    def on_order_event(self, event: OrderEvent, seq: int) -> None:
        """An event read from EVENTS (`seq`: its `Tradebus-Command-Seq` header, if any)."""
        dedupe_id = ""
        if event.event_id.startswith(RISK_EVENT_PREFIX):  # one of risk's own answers
            dedupe_id = decided_id(event.event_id)
            self.decided[dedupe_id] = seq
        if isinstance(event, OrderAccepted) and event.group_id is not None:
            self.groups.setdefault((event.venue, event.account, event.group_id), dedupe_id)
        if isinstance(event, (OrderAccepted, OrderRejected)):
            key = (event.venue, event.account, event.client_order_id)
            if key not in self.taken:  # a refused place spends its id too
                self.taken[key] = (TakenId(dedupe_id, event, None) if isinstance(event, OrderAccepted)
                                   else TakenId(dedupe_id, None, event.reason))

    # --- questions -----------------------------------------------------------------------
    def is_decided(self, dedupe_id: str, seq: int) -> bool:
        """Whether this very message was decided (a re-delivery: skip it)."""
        decided = self.decided.get(dedupe_id)
        return decided is not None and decided in (seq, UNKNOWN_SEQ)

    def answer_repeat(self, command: OrderCommand, dedupe_id: str, seq: int, now: int) -> CommandRejected | None:
        """The answer to a command that repeats an earlier one in a new message: the same
        command after the de-duplication window, or a place reusing a used client order id
        (recorded as decided, like any refusal)."""
        decided = self.decided.get(dedupe_id)
        if decided is not None:
            return self._refusal(command, f"{RISK_EVENT_PREFIX}{dedupe_id}.received.{seq}", now,
                                 f"this command was already received (stream sequence {decided}) and is not executed "
                                 "again; the order's state tells its outcome")
        if isinstance(command, PlaceOrderGroup):
            reuse = self._group_reuse(command)
        elif isinstance(command, PlaceOrder):
            taken = self.taken.get((command.venue, command.account, command.client_order_id))
            reuse = None if taken is None else _reuse_message(command, taken)
        else:
            return None
        if reuse is None:
            return None
        self.decide(dedupe_id, seq)
        return self._refusal(command, f"{RISK_EVENT_PREFIX}{dedupe_id}", now, reuse)

    def _group_reuse(self, group: PlaceOrderGroup) -> str | None:
        """Why the group's ids are not free: its group id, or an order's client order id, used already."""
        if (group.venue, group.account, group.group_id) in self.groups:
            return f"group id {group.group_id} is already used by an earlier group (send a new group under a new id)"
        for order in group.placed_orders():
            taken = self.taken.get((order.venue, order.account, order.client_order_id))
            if taken is not None:
                return _reuse_message(order, taken)
        return None

    @staticmethod
    def _refusal(command: OrderCommand, event_id: str, now: int, message: str) -> CommandRejected:
        refusal = command_refused(command, event_id=event_id, reason=RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                                  message=message, now=now, keeps_order=True)
        assert isinstance(refusal, CommandRejected)
        return refusal


def _reuse_message(place: PlaceOrder, taken: TakenId) -> str:
    earlier = f"client order id {place.client_order_id} is already used by an earlier place"
    if taken.refusal is not None:
        earlier += f" (refused: {taken.refusal.value}; send a corrected order under a new client order id)"
    if taken.place is None:
        return f"{earlier}; its terms are not known here"
    differences = terms_differences(taken.place, place)
    if not differences:
        return f"{earlier} with the same terms: this order was already received; the order's state tells its outcome"
    return f"{earlier} with other terms: {', '.join(differences)}"
