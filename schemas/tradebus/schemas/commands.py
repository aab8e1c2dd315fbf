"""Order commands: what a client asks a venue account to do.

Commands travel on `tradebus.cmd.<venue>.<account>` (client to risk) and, once approved,
unchanged on `tradebus.route.<venue>.<account>` (risk to connector). A place or modify has
a deadline (`ttl_ms` after intake); cancels have none, taking risk off is never too late.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Union

import msgspec

from .values import (
    AccountName,
    ClientOrderId,
    Nanos,
    OrderType,
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


class PlaceOrder(StrictMessage, frozen=True, kw_only=True, tag="place"):
    """A new order. `price` is required for limit and stop-limit, `stop_price` for stop and
    stop-limit; `expire_time` for GTD. Market orders carry no price."""

    client_order_id: ClientOrderId
    venue: VenueName
    account: AccountName
    symbol: Symbol
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_time: Nanos | None = None
    post_only: bool = False
    reduce_only: bool = False
    ts_created: Nanos = 0
    ttl_ms: TimeToLive | None = None

    def __post_init__(self) -> None:
        check_decimal("quantity", self.quantity)
        needs_price = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_price and self.price is None:
            raise ValueError(f"price is required for {self.order_type.value} orders")
        if not needs_price and self.price is not None:
            raise ValueError(f"price is not allowed on {self.order_type.value} orders")
        if needs_stop and self.stop_price is None:
            raise ValueError(f"stop_price is required for {self.order_type.value} orders")
        if not needs_stop and self.stop_price is not None:
            raise ValueError(f"stop_price is not allowed on {self.order_type.value} orders")
        if self.price is not None:
            check_decimal("price", self.price)
        if self.stop_price is not None:
            check_decimal("stop_price", self.stop_price)
        if (self.time_in_force is TimeInForce.GTD) != (self.expire_time is not None):
            raise ValueError("expire_time is required with GTD and only allowed with GTD")
        if self.post_only and self.order_type is not OrderType.LIMIT:
            raise ValueError("post_only is only allowed on limit orders")


class ModifyOrder(StrictMessage, frozen=True, kw_only=True, tag="modify"):
    """Change the quantity and/or prices of an open order. `modify_id` makes each modify of
    the same order a distinct command for de-duplication."""

    client_order_id: ClientOrderId
    modify_id: RequestId
    venue: VenueName
    account: AccountName
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    ts_created: Nanos = 0
    ttl_ms: TimeToLive | None = None

    def __post_init__(self) -> None:
        if self.quantity is None and self.price is None and self.stop_price is None:
            raise ValueError("a modify must change at least one of quantity, price, stop_price")
        for name in ("quantity", "price", "stop_price"):
            value = getattr(self, name)
            if value is not None:
                check_decimal(name, value)


class CancelOrder(StrictMessage, frozen=True, kw_only=True, tag="cancel"):
    client_order_id: ClientOrderId
    venue: VenueName
    account: AccountName
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


def command_dedupe_id(command: OrderCommand) -> str:
    """The `Nats-Msg-Id` of a command: the same command sent twice gets the same id, so
    JetStream stores it once."""
    scope = f"{command.venue}.{command.account}"
    if isinstance(command, PlaceOrder):
        return f"{scope}.{command.client_order_id}.place"
    if isinstance(command, ModifyOrder):
        return f"{scope}.{command.client_order_id}.modify.{command.modify_id}"
    if isinstance(command, CancelOrder):
        return f"{scope}.{command.client_order_id}.cancel"
    return f"{scope}.cancel_all.{command.request_id}"


def command_key(command: OrderCommand) -> str:
    """The order a command is about (or the cancel-all request), for logs and audit."""
    return command.request_id if isinstance(command, CancelAllOrders) else command.client_order_id
