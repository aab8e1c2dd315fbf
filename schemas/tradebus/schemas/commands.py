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

from .rules import AnySet, FieldRule, OneSetWhen, SetWhen, check_field_rules
from .values import (
    AccountName,
    ClientOrderId,
    GroupKind,
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


GroupId = Annotated[
    RequestId,
    msgspec.Meta(description="Names an order group (`place_group`), unique per venue account; its orders carry it."),
]

def _check_decimals(command: PlaceOrder | ModifyOrder) -> None:
    """Bounds the wire pattern cannot state (see check_decimal)."""
    for name in ("quantity", "price", "stop_price", "trail_amount", "trail_percent"):
        value = getattr(command, name, None)
        if value is not None:
            check_decimal(name, value)


class PlaceOrder(StrictMessage, frozen=True, kw_only=True, tag="place"):
    """A new order. `price` is required for limit and stop-limit, `stop_price` for stop and
    stop-limit, one of `trail_amount` (in price units) and `trail_percent` for a trailing
    stop; `expire_time` for GTD. Market orders carry no price. `group_id` is set on the orders
    of a `place_group` (the group's id; a place on its own leaves it unset)."""

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
    # Later additions: a place that leaves them unset has the digest it had before them (place_digest).
    trail_amount: PositiveDecimal | None = None
    trail_percent: PositiveDecimal | None = None
    group_id: GroupId | None = None

    field_rules: ClassVar[tuple[FieldRule, ...]] = (
        SetWhen("price", "order_type", (OrderType.LIMIT, OrderType.STOP_LIMIT)),
        SetWhen("stop_price", "order_type", (OrderType.STOP, OrderType.STOP_LIMIT)),
        SetWhen("expire_time", "time_in_force", (TimeInForce.GTD,)),
        SetWhen("post_only", "order_type", (OrderType.LIMIT,), required=False),
        SetWhen("trail_amount", "order_type", (OrderType.TRAILING_STOP,), required=False),
        SetWhen("trail_percent", "order_type", (OrderType.TRAILING_STOP,), required=False),
        OneSetWhen(("trail_amount", "trail_percent"), "order_type", (OrderType.TRAILING_STOP,)),
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


class PlaceOrderGroup(StrictMessage, frozen=True, kw_only=True, tag="place_group"):
    """Orders that depend on each other (GroupKind), decided and routed as one command: the
    whole group is approved or refused. `orders[0]` is a bracket's entry or an OTO's first
    order; a bracket's exits follow it (a take-profit limit and/or a stop-loss stop, stop-limit
    or trailing stop, each on the other side for the entry's quantity). An OCO's two orders
    are on one side. The orders are full places of the group's venue, account and symbol, each
    with its own client order id; their `group_id` is the group's or unset, their `ttl_ms`
    unset (the group's deadline applies to the orders sent at once; one sent later, when its
    trigger comes, is fresh then). These rules between the orders are beyond a JSON Schema:
    risk checks them (`group_violation`) and refuses a group that breaks one with
    `invalid_order_group`, every order of it rejected."""

    group_id: GroupId
    venue: VenueName
    account: AccountName
    kind: GroupKind
    orders: Annotated[list[PlaceOrder], msgspec.Meta(min_length=2, max_length=3)]
    ts_created: Nanos = 0
    ttl_ms: TimeToLive | None = None

    @property
    def first(self) -> PlaceOrder:
        """A bracket's entry, an OTO's first order, an OCO's first leg."""
        return self.orders[0]

    @property
    def contingent(self) -> list[PlaceOrder]:
        """The orders that work only once the first is done with a fill (bracket exits, an
        OTO's second); none for an OCO, whose orders all work at once."""
        return [] if self.kind is GroupKind.OCO else self.orders[1:]

    def contingent_on(self, order: PlaceOrder) -> str | None:
        """The client order id `order` waits for (OrderAccepted.contingent_on), None if it works at once."""
        waiting = {leg.client_order_id for leg in self.contingent}
        return self.first.client_order_id if order.client_order_id in waiting else None

    def placed_orders(self) -> list[PlaceOrder]:
        """The orders as each is placed: carrying the group's id."""
        return [order if order.group_id == self.group_id else msgspec.structs.replace(order, group_id=self.group_id)
                for order in self.orders]


_STOP_LOSS_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)


def group_violation(group: PlaceOrderGroup) -> str | None:
    """Which rule between a group's orders it breaks (PlaceOrderGroup), None if none."""
    try:
        _check_group(group)
    except ValueError as exc:
        return str(exc)
    return None


def _check_group(group: PlaceOrderGroup) -> None:
    orders = group.orders
    for index, order in enumerate(orders):
        where = f"orders[{index}]"
        if (order.venue, order.account) != (group.venue, group.account):
            raise ValueError(f"{where}: venue and account must be the group's")
        if order.symbol != orders[0].symbol:
            raise ValueError(f"{where}: every order of a group is for one symbol")
        if order.group_id not in (None, group.group_id):
            raise ValueError(f"{where}: group_id must be the group's or unset")
        if order.ttl_ms is not None:
            raise ValueError(f"{where}: ttl_ms is the group's, not an order's")
    if len({order.client_order_id for order in orders}) != len(orders):
        raise ValueError("the orders of a group need distinct client order ids")
    if group.kind is GroupKind.OCO:
        if len(orders) != 2 or orders[0].side != orders[1].side:
            raise ValueError("an oco group is two orders on one side")
    elif group.kind is GroupKind.OTO:
        if len(orders) != 2:
            raise ValueError("an oto group is two orders: the first, and the one it triggers")
    else:
        _check_bracket(orders[0], orders[1:])


def _check_bracket(entry: PlaceOrder, exits: list[PlaceOrder]) -> None:
    take_profits = [order for order in exits if order.order_type is OrderType.LIMIT]
    stop_losses = [order for order in exits if order.order_type in _STOP_LOSS_TYPES]
    if len(take_profits) > 1 or len(stop_losses) > 1 or len(take_profits) + len(stop_losses) != len(exits):
        raise ValueError("a bracket's exits are at most one take-profit (limit) and one stop-loss "
                         "(stop, stop_limit or trailing_stop)")
    for order in exits:
        if order.side == entry.side or order.quantity != entry.quantity:
            raise ValueError("a bracket's exits are on the other side of its entry, for the entry's quantity")
    # Where the entry's price is known, an exit on the wrong side of it would fill or trigger at once.
    reference = entry.price or entry.stop_price
    if reference is None:
        return
    long = entry.side is Side.BUY  # a long's take-profit sells above the entry, its stop-loss below
    for order in take_profits:
        assert order.price is not None
        if not (order.price > reference if long else order.price < reference):
            raise ValueError(f"the take-profit price {order.price} must be {'above' if long else 'below'} "
                             f"the entry's {reference}")
    for order in stop_losses:
        stop = order.stop_price
        if stop is not None and not (stop < reference if long else stop > reference):
            raise ValueError(f"the stop-loss stop_price {stop} must be {'below' if long else 'above'} "
                             f"the entry's {reference}")


OrderCommand = Union[PlaceOrder, PlaceOrderGroup, ModifyOrder, CancelOrder, CancelAllOrders]


_TIMING = ("ts_created", "ttl_ms")
_LATER_FIELDS = ("trail_amount", "trail_percent", "group_id")
_digested = operator.attrgetter(*(name for name in PlaceOrder.__struct_fields__
                                  if name not in _TIMING and name not in _LATER_FIELDS))
_later = operator.attrgetter(*_LATER_FIELDS)
_terms_encoder = msgspec.json.Encoder()


def place_digest(command: PlaceOrder) -> str:
    """16 hex digits of the sha256 of the JSON array of the place's field values in schema
    order, all but its timing (`ts_created`, `ttl_ms`), defaults included (docs/raw-protocol.md
    shows one): the same for a retry of the same order, different for other terms under the
    same client order id. The fields added later (`trail_amount`, `trail_percent`,
    `group_id`) join the array only when one of them is set, so a place that uses none of
    them keeps the digest it had before they existed."""
    values = _digested(command)
    later = _later(command)
    if any(value is not None for value in later):
        values = (*values, *later)
    return hashlib.sha256(_terms_encoder.encode(values)).hexdigest()[:16]


def group_digest(group: PlaceOrderGroup) -> str:
    """16 hex digits naming a group's terms: its kind and its orders' digests in order."""
    parts = [group.kind.value, *(place_digest(order) for order in group.placed_orders())]
    return hashlib.sha256(_terms_encoder.encode(parts)).hexdigest()[:16]


def command_dedupe_id(command: OrderCommand) -> str:
    """The `Nats-Msg-Id` of a command: the same command sent twice gets the same id, so
    JetStream stores it once. A place's id carries the digest of its terms, so a place that
    reuses a client order id with other terms is stored (and refused by risk, loudly)
    instead of being dropped as a duplicate."""
    scope = f"{command.venue}.{command.account}"
    if isinstance(command, PlaceOrder):
        return f"{scope}.{command.client_order_id}.place.{place_digest(command)}"
    if isinstance(command, PlaceOrderGroup):
        return f"{scope}.{command.group_id}.group.{group_digest(command)}"
    if isinstance(command, ModifyOrder):
        return f"{scope}.{command.client_order_id}.modify.{command.modify_id}"
    if isinstance(command, CancelOrder):
        named = f".{command.cancel_id}" if command.cancel_id is not None else ""
        return f"{scope}.{command.client_order_id}.cancel{named}"
    return f"{scope}.cancel_all.{command.request_id}"


PLACE_TERMS = ("symbol", "side", "order_type", "quantity", "price", "stop_price", "time_in_force", "expire_time",
               "post_only", "reduce_only", "trail_amount", "trail_percent")
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
    """The order a command is about (the group, the cancel-all request), for logs and audit."""
    if isinstance(command, PlaceOrderGroup):
        return command.group_id
    return command.request_id if isinstance(command, CancelAllOrders) else command.client_order_id
