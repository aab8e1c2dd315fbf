"""Order commands: what a client asks a venue account to do.

Commands travel on `tradebus.cmd.<venue>.<account>` (client to risk) and, once approved,
unchanged on `tradebus.route.<venue>.<account>` (risk to connector). A place or modify has
a deadline (`ttl_ms` after intake); cancels have none, taking risk off is never too late.
"""

from __future__ import annotations

import hashlib
import operator
from typing import Annotated, ClassVar, Union

import msgspec

from .rules import AnySet, FieldRule, SetWhen, check_field_rules
from .values import (
    AccountName,
    ClientOrderId,
    Nanos,
    OrderType,
    PositiveDecimal,
    RequestId,
    Side,
    StrictMessage,
    Symbol,
    TimeInForce,
    VenueName,
    check_decimal,
)

TimeToLive = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=3_600_000,
        description="Milliseconds from intake (the command's store time in the CMD stream) after which the fleet "
        "refuses to send the command to the venue (`deadline_exceeded`). Default: the fleet's `risk.command_ttl`; "
        "capped at `risk.max_command_ttl`.",
    ),
]


def _check_decimals(command: PlaceOrder | ModifyOrder) -> None:
    """Bounds the wire pattern cannot state (see check_decimal)."""
    for name in ("quantity", "price", "stop_price"):
        value = getattr(command, name)
        if value is not None:
            check_decimal(name, value)


class PlaceOrder(StrictMessage, frozen=True, kw_only=True, tag="place"):
    """A new order. `price` is required for limit and stop-limit, `stop_price` for stop and
    stop-limit; `expire_time` for GTD. Market orders carry no price."""

    client_order_id: ClientOrderId
    venue: VenueName
    account: AccountName
    symbol: Symbol
    side: Side
    order_type: OrderType
    quantity: PositiveDecimal
    price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_time: Nanos | None = None
    post_only: bool = False
    reduce_only: bool = False
    ts_created: Nanos = 0
    ttl_ms: TimeToLive | None = None

    field_rules: ClassVar[tuple[FieldRule, ...]] = (
        SetWhen("price", "order_type", (OrderType.LIMIT, OrderType.STOP_LIMIT)),
        SetWhen("stop_price", "order_type", (OrderType.STOP, OrderType.STOP_LIMIT)),
        SetWhen("expire_time", "time_in_force", (TimeInForce.GTD,)),
        SetWhen("post_only", "order_type", (OrderType.LIMIT,), required=False),
    )

    def __post_init__(self) -> None:
        check_field_rules(self)
        _check_decimals(self)


class ModifyOrder(StrictMessage, frozen=True, kw_only=True, tag="modify"):
    """Change the quantity and/or prices of an open order. `modify_id` makes each modify of
    the same order a distinct command for de-duplication."""

    client_order_id: ClientOrderId
    modify_id: RequestId
    venue: VenueName
    account: AccountName
    quantity: PositiveDecimal | None = None
    price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    ts_created: Nanos = 0
    ttl_ms: TimeToLive | None = None

    field_rules: ClassVar[tuple[FieldRule, ...]] = (AnySet(("quantity", "price", "stop_price")),)

    def __post_init__(self) -> None:
        check_field_rules(self)
        _check_decimals(self)


CancelId = Annotated[
    RequestId,
    msgspec.Meta(
        description="Names this cancel for de-duplication, so a refused cancel can be sent again under a new id and "
        "a cancel of an id not (yet) placed uses up nothing. Send a fresh one per cancel and reuse it only to retry "
        "that cancel. Absent: the cancel is named after its order alone (older clients): then only the first cancel of "
        "an order within the de-duplication window is stored.",
    ),
]


class CancelOrder(StrictMessage, frozen=True, kw_only=True, tag="cancel"):
    client_order_id: ClientOrderId
    venue: VenueName
    account: AccountName
    cancel_id: CancelId | None = None
    ts_created: Nanos = 0


class CancelAllOrders(StrictMessage, frozen=True, kw_only=True, tag="cancel_all"):
    """Cancel every open order of the account, optionally only one symbol and/or side."""

    request_id: RequestId
    venue: VenueName
    account: AccountName
    symbol: Symbol | None = None
    side: Side | None = None
    ts_created: Nanos = 0


OrderCommand = Union[PlaceOrder, ModifyOrder, CancelOrder, CancelAllOrders]


_TIMING = ("ts_created", "ttl_ms")
_digested = operator.attrgetter(*(name for name in PlaceOrder.__struct_fields__ if name not in _TIMING))
_terms_encoder = msgspec.json.Encoder()


def place_digest(command: PlaceOrder) -> str:
    """16 hex digits of the sha256 of the JSON array of the place's field values in schema
    order, all but its timing (`ts_created`, `ttl_ms`), defaults included (docs/raw-protocol.md
    shows one): the same for a retry of the same order, different for other terms under the
    same client order id."""
    return hashlib.sha256(_terms_encoder.encode(_digested(command))).hexdigest()[:16]


def command_dedupe_id(command: OrderCommand) -> str:
    """The `Nats-Msg-Id` of a command: the same command sent twice gets the same id, so
    JetStream stores it once. A place's id carries the digest of its terms, so a place that
    reuses a client order id with other terms is stored (and refused by risk, loudly)
    instead of being dropped as a duplicate."""
    scope = f"{command.venue}.{command.account}"
    if isinstance(command, PlaceOrder):
        return f"{scope}.{command.client_order_id}.place.{place_digest(command)}"
    if isinstance(command, ModifyOrder):
        return f"{scope}.{command.client_order_id}.modify.{command.modify_id}"
    if isinstance(command, CancelOrder):
        named = f".{command.cancel_id}" if command.cancel_id is not None else ""
        return f"{scope}.{command.client_order_id}.cancel{named}"
    return f"{scope}.cancel_all.{command.request_id}"


PLACE_TERMS = ("symbol", "side", "order_type", "quantity", "price", "stop_price", "time_in_force", "expire_time",
               "post_only", "reduce_only")
"""What a place asks the venue for (besides its ids and timing); `OrderAccepted` carries the same fields."""


def terms_differences(earlier: object, place: PlaceOrder, terms: tuple[str, ...] = PLACE_TERMS) -> list[str]:
    """How `place` differs from `earlier` (a place, or the accepted event of one) in its
    `terms`, e.g. `price 101 (was 100)`; empty if it asks for the same order. Decimals compare
    by value: `1.0` and `1` are the same quantity."""
    differences = []
    for name in terms:
        before, now = getattr(earlier, name), getattr(place, name)
        if before != now:
            differences.append(f"{name} {_shown(now)} (was {_shown(before)})")
    return differences


def _shown(value: object) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


def command_key(command: OrderCommand) -> str:
    """The order a command is about (or the cancel-all request), for logs and audit."""
    return command.request_id if isinstance(command, CancelAllOrders) else command.client_order_id
