"""Order lifecycle and account events, published by connectors (and by risk for rejections).

Order events travel on `tradebus.evt.order.<venue>.<account>`, account events on
`tradebus.evt.account.<venue>.<account>`. Every event has an `event_id` that is unique and
stable across re-deliveries; it is the event's `Nats-Msg-Id`, so a re-published event is
stored once.

Lifecycle (see docs/contract.md for the state machine):
submitted -> accepted -> [triggered] -> partially_filled* -> filled
                                      -> cancelled | expired
submitted -> rejected
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Union

from .commands import CancelAllOrders, OrderCommand, PlaceOrder
from .values import (
    AccountName,
    CancelReason,
    ClientOrderId,
    LiquiditySide,
    Message,
    Nanos,
    OrderType,
    RejectReason,
    RequestId,
    Side,
    Symbol,
    Text,
    TimeInForce,
    TradingState,
    VenueName,
)


class OrderEventBase(Message, frozen=True, kw_only=True):
    event_id: str
    client_order_id: ClientOrderId
    venue: VenueName
    account: AccountName
    symbol: Symbol
    venue_order_id: str | None = None
    ts_event: Nanos
    ts_recv: Nanos


class OrderSubmitted(OrderEventBase, frozen=True, kw_only=True, tag="submitted"):
    """The connector sent the order to the venue and awaits its answer."""


class OrderAccepted(OrderEventBase, frozen=True, kw_only=True, tag="accepted"):
    """The venue holds the order. Carries the order's terms so the event stream alone is
    enough to rebuild every order's state."""

    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce
    expire_time: Nanos | None = None
    post_only: bool = False
    reduce_only: bool = False


class OrderRejected(OrderEventBase, frozen=True, kw_only=True, tag="rejected"):
    """The place command was refused (by risk or the venue). Terminal."""

    reason: RejectReason
    message: Text = ""


class OrderTriggered(OrderEventBase, frozen=True, kw_only=True, tag="triggered"):
    """A stop or stop-limit order's stop price was reached; it is now working."""


class Fill(Message, frozen=True, kw_only=True, tag="fill"):
    trade_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: LiquiditySide


class FillEventBase(OrderEventBase, frozen=True, kw_only=True):
    fill: Fill
    cum_quantity: Decimal
    leaves_quantity: Decimal
    avg_price: Decimal


class OrderPartiallyFilled(FillEventBase, frozen=True, kw_only=True, tag="partially_filled"):
    pass


class OrderFilled(FillEventBase, frozen=True, kw_only=True, tag="filled"):
    """The last fill: nothing is left open. Terminal."""


class OrderModified(OrderEventBase, frozen=True, kw_only=True, tag="modified"):
    modify_id: RequestId
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None


class OrderCancelled(OrderEventBase, frozen=True, kw_only=True, tag="cancelled"):
    """Terminal. `cum_quantity` is what filled before the cancel."""

    reason: CancelReason
    cum_quantity: Decimal


class OrderExpired(OrderEventBase, frozen=True, kw_only=True, tag="expired"):
    """A DAY or GTD order reached its end. Terminal."""

    cum_quantity: Decimal


class CommandAction(enum.Enum):
    PLACE = "place"
    MODIFY = "modify"
    CANCEL = "cancel"
    CANCEL_ALL = "cancel_all"
    UNKNOWN = "unknown"  # the command could not be decoded far enough to tell


class CommandRejected(Message, frozen=True, kw_only=True, tag="command_rejected"):
    """A modify, cancel or cancel-all was refused, or a command could not be decoded at all.
    The order it names (if any) keeps its state."""

    event_id: str
    action: CommandAction
    venue: VenueName
    account: AccountName
    client_order_id: str | None = None
    request_id: str | None = None
    reason: RejectReason
    message: Text = ""
    ts_event: Nanos
    ts_recv: Nanos


def command_refused(command: OrderCommand, *, event_id: str, reason: RejectReason, message: str,
                    now: int) -> OrderRejected | CommandRejected:
    """The answer to a decoded command the fleet refuses before the venue sees it: a place
    becomes a rejected order, anything else a rejected command (the order keeps its state)."""
    if isinstance(command, PlaceOrder):
        return OrderRejected(
            event_id=event_id, client_order_id=command.client_order_id, venue=command.venue, account=command.account,
            symbol=command.symbol, reason=reason, message=message[:1024], ts_event=now, ts_recv=now,
        )
    cancel_all = isinstance(command, CancelAllOrders)
    return CommandRejected(
        event_id=event_id, action=CommandAction(command.__struct_config__.tag), venue=command.venue,
        account=command.account, reason=reason, message=message[:1024], ts_event=now, ts_recv=now,
        client_order_id=None if cancel_all else command.client_order_id,
        request_id=command.request_id if cancel_all else getattr(command, "modify_id", None),
    )


def malformed_command(*, venue: str, account: str, stream_seq: int, message: str, now: int, issuer: str = "") -> CommandRejected:
    """The answer to a command that could not be decoded. Its id names the command's stream
    position (and the issuer, e.g. `risk:`), so a re-delivery is not answered twice."""
    return CommandRejected(
        event_id=f"{issuer}{venue}.{account}:malformed.{stream_seq}", action=CommandAction.UNKNOWN, venue=venue,
        account=account, reason=RejectReason.MALFORMED, message=message[:1024], ts_event=now, ts_recv=now,
    )


OrderEvent = Union[
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderTriggered,
    OrderPartiallyFilled,
    OrderFilled,
    OrderModified,
    OrderCancelled,
    OrderExpired,
    CommandRejected,
]

TERMINAL_EVENTS = (OrderRejected, OrderFilled, OrderCancelled, OrderExpired)


class Balance(Message, frozen=True, kw_only=True, tag="balance"):
    currency: str
    total: Decimal
    available: Decimal


class BalanceUpdate(Message, frozen=True, kw_only=True, tag="balances"):
    """The account's balances in every currency that changed (or all, on a snapshot)."""

    event_id: str
    venue: VenueName
    account: AccountName
    balances: list[Balance]
    snapshot: bool = False
    ts_event: Nanos
    ts_recv: Nanos


class PositionUpdate(Message, frozen=True, kw_only=True, tag="position"):
    """Net position in one instrument: `quantity` is signed (negative = short)."""

    event_id: str
    venue: VenueName
    account: AccountName
    symbol: Symbol
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    ts_event: Nanos
    ts_recv: Nanos


AccountEvent = Union[BalanceUpdate, PositionUpdate]


class TradingStateChanged(Message, frozen=True, kw_only=True, tag="trading_state_changed"):
    """The risk gate's trading state changed for an account, or the fleet (`account` None).
    Published on `tradebus.evt.risk` so the audit trail records every halt and resume."""

    event_id: str
    account: AccountName | None = None
    state: TradingState
    reason: Text = ""
    changed_by: Text = ""
    ts_event: Nanos


RiskEvent = Union[TradingStateChanged]
