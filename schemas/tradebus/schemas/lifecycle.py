"""The order state machine: one `OrderRecord` per client order id, advanced by commands and
events. Pure functions, so the order manager, its rebuild and any client apply exactly the
same rules.

Legal transitions (anything else is recorded as an anomaly and not applied):

    (new)            --routed-->            pending_new
    (new), pending_new --accepted-->        accepted
    (new), pending_new --rejected-->        rejected            (terminal)
    accepted          --triggered-->        triggered
    any open status   --partially_filled--> partially_filled
    any open status   --filled-->           filled              (terminal)
    any open status   --cancelled-->        cancelled           (terminal)
    any open status   --expired-->          expired             (terminal)
    any open status   --modified-->         (status unchanged, new terms)
    submitted                              (status unchanged)
    command_rejected                       (status unchanged; noted only once an order event was seen)

"Open" is pending_new, accepted, triggered or partially_filled: a fill, cancel or expiry may
arrive before the venue's acknowledgement on venues that report asynchronously. An event
whose `event_id` the record already saw is ignored, so re-delivery is harmless.

A record is the result of two streams, the routed place command (ROUTE) and the order's
events (EVENTS, in stream order), and must not depend on which of the two was read first:
so a refused command is noted only on a record that order events made (whether the place
command was read already says nothing about the stream), and the place command decides
only the terms no event has stated (`undecided_terms`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from .commands import PlaceOrder
from .events import (
    CommandRejected,
    FillEventBase,
    OrderAccepted,
    OrderCancelled,
    OrderEventBase,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderSubmitted,
    OrderTriggered,
)
from .values import (
    TERMINAL_STATUSES,
    AccountName,
    ClientOrderId,
    Message,
    Nanos,
    OrderStatus,
    OrderType,
    RejectReason,
    RequestId,
    Side,
    Symbol,
    Text,
    TimeInForce,
    VenueName,
)

StreamSeq = Annotated[int, msgspec.Meta(ge=0, description="A JetStream stream sequence number.")]
OPEN_STATUSES = frozenset(OrderStatus) - TERMINAL_STATUSES
# The order's terms: what a place command says and `OrderAccepted` / `OrderModified` restate.
TERMS = ("side", "order_type", "quantity", "price", "stop_price", "time_in_force")
MAX_ANOMALIES = 20  # keep the record small even if a venue misbehaves for a long time


class OrderRecord(Message, frozen=True, kw_only=True, tag="order"):
    """The order manager's view of one order. Terms are None while only a rejection is known."""

    client_order_id: ClientOrderId
    venue: VenueName
    account: AccountName
    symbol: Symbol
    status: OrderStatus
    side: Side | None = None
    order_type: OrderType | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    cum_quantity: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    # The fills' fees so far, by currency (the venue's choice, e.g. a spot buy's base asset on
    # Binance and Bybit; "" where the venue did not name it). Empty: no fill yet.
    fees: dict[str, Decimal] = {}
    venue_order_id: str | None = None
    reject_reason: RejectReason | None = None
    last_message: Text = ""
    seen_event_ids: list[str] = []  # every event applied or refused, in order (for idempotency)
    anomalies: list[str] = []  # illegal transitions seen, never applied
    created_at: Nanos
    updated_at: Nanos
    # The stream sequences of the last routed command and the last event applied to this
    # record (0: none yet, or a record written before they were kept). The order manager
    # ignores a message at or below them: a redelivery, or one it already applied.
    route_seq: StreamSeq = 0
    event_seq: StreamSeq = 0
    # A trailing stop's trail (one of them); the order group (`place_group`) it belongs to and
    # the order of that group it waits for (None: it works at once), from its place or its
    # acceptance.
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    group_id: RequestId | None = None
    contingent_on: ClientOrderId | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves_quantity(self) -> Decimal | None:
        return None if self.quantity is None else self.quantity - self.cum_quantity


def record_key(venue: str, account: str, client_order_id: str) -> str:
    """The record's key in the order manager's KV bucket (all three parts are token-safe)."""
    return f"{venue}.{account}.{client_order_id}"


def new_record(command: PlaceOrder, now: int, contingent_on: str | None = None) -> OrderRecord:
    """The record of an order that risk routed to its venue (`contingent_on`: the order of its
    group it waits for)."""
    return OrderRecord(
        client_order_id=command.client_order_id, venue=command.venue, account=command.account,
        symbol=command.symbol, status=OrderStatus.PENDING_NEW, side=command.side,
        order_type=command.order_type, quantity=command.quantity, price=command.price,
        stop_price=command.stop_price, time_in_force=command.time_in_force, created_at=now, updated_at=now,
        trail_amount=command.trail_amount, trail_percent=command.trail_percent, group_id=command.group_id,
        contingent_on=contingent_on,
    )


def grouping(record: OrderRecord, place: PlaceOrder, contingent_on: str | None) -> dict[str, object]:
    """What a place adds to a record events made: the trail and group fields they left unset."""
    known = {"trail_amount": place.trail_amount, "trail_percent": place.trail_percent, "group_id": place.group_id,
             "contingent_on": contingent_on}
    return {name: value for name, value in known.items() if getattr(record, name) is None and value is not None}


def undecided_terms(record: OrderRecord) -> tuple[str, ...]:
    """The terms of `record` that its place command still decides: those no event stated.
    `OrderAccepted` states all six and is the only event that sets `side`; `OrderModified`
    states quantity, price and stop price, and its quantity is never None."""
    if record.side is not None:  # accepted, or the place command was applied already
        return ()
    if record.quantity is not None:  # modified only
        return ("side", "order_type", "time_in_force")
    return TERMS


def _target(event: OrderEventBase) -> OrderStatus | None:
    """The status an event moves an order to; None for events that keep the status."""
    match event:
        case OrderAccepted():
            return OrderStatus.ACCEPTED
        case OrderRejected():
            return OrderStatus.REJECTED
        case OrderTriggered():
            return OrderStatus.TRIGGERED
        case OrderPartiallyFilled():
            return OrderStatus.PARTIALLY_FILLED
        case OrderFilled():
            return OrderStatus.FILLED
        case OrderCancelled():
            return OrderStatus.CANCELLED
        case OrderExpired():
            return OrderStatus.EXPIRED
    return None


_ALLOWED_FROM: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.ACCEPTED: frozenset({OrderStatus.PENDING_NEW}),
    OrderStatus.REJECTED: frozenset({OrderStatus.PENDING_NEW}),
    OrderStatus.TRIGGERED: frozenset({OrderStatus.ACCEPTED}),
    OrderStatus.PARTIALLY_FILLED: OPEN_STATUSES,
    OrderStatus.FILLED: OPEN_STATUSES,
    OrderStatus.CANCELLED: OPEN_STATUSES,
    OrderStatus.EXPIRED: OPEN_STATUSES,
}


def _refuse(record: OrderRecord, event: OrderEventBase, anomaly: str, now: int) -> OrderRecord:
    anomalies = [*record.anomalies, anomaly][-MAX_ANOMALIES:]
    seen = [*record.seen_event_ids, event.event_id]
    return msgspec.structs.replace(record, anomalies=anomalies, seen_event_ids=seen, updated_at=now)


def apply_event(record: OrderRecord | None, event: OrderEventBase | CommandRejected, now: int) -> OrderRecord:
    """Advance `record` (None: first news of this order) by one order event."""
    if isinstance(event, CommandRejected):
        assert record is not None, "a command rejection without an order is not an order event"
        if not record.seen_event_ids:
            return record
        return msgspec.structs.replace(record, last_message=f"{event.reason.value}: {event.message}", updated_at=now)
    if record is None:
        record = OrderRecord(
            client_order_id=event.client_order_id, venue=event.venue, account=event.account, symbol=event.symbol,
            status=OrderStatus.PENDING_NEW, created_at=now, updated_at=now,
        )
    if event.event_id in record.seen_event_ids:
        return record
    target = _target(event)
    if target is not None and record.status not in _ALLOWED_FROM[target]:
        return _refuse(record, event, f"{event.event_id}: {record.status.value} -> {target.value} refused", now)
    changes: dict[str, object] = {
        "seen_event_ids": [*record.seen_event_ids, event.event_id],
        "updated_at": now,
        "venue_order_id": event.venue_order_id or record.venue_order_id,
    }
    if target is not None:
        changes["status"] = target
    if isinstance(event, OrderAccepted):
        changes.update(side=event.side, order_type=event.order_type, quantity=event.quantity, price=event.price,
                       stop_price=event.stop_price, time_in_force=event.time_in_force)
        stated = {"trail_amount": event.trail_amount, "trail_percent": event.trail_percent,
                  "group_id": event.group_id, "contingent_on": event.contingent_on}
        changes.update({name: value for name, value in stated.items() if value is not None})
    elif isinstance(event, OrderRejected):
        changes.update(reject_reason=event.reason, last_message=event.message)
        # a place risk refused never reached ROUTE: its terms come with the rejection
        refused_terms = {"side": event.side, "order_type": event.order_type, "quantity": event.quantity,
                         "price": event.price}
        changes.update({name: value for name, value in refused_terms.items() if getattr(record, name) is None})
    elif isinstance(event, FillEventBase):
        fees = dict(record.fees)
        fees[event.fill.fee_currency] = fees.get(event.fill.fee_currency, Decimal(0)) + event.fill.fee
        changes.update(cum_quantity=event.cum_quantity, avg_price=event.avg_price, fees=fees)
    elif isinstance(event, OrderModified):
        changes.update(quantity=event.quantity, price=event.price, stop_price=event.stop_price)
    elif isinstance(event, OrderSubmitted):
        pass  # the venue has it; the status stays pending_new until it answers
    return msgspec.structs.replace(record, **changes)
