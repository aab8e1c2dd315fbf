"""Order lifecycle and account events, published by connectors, and risk's rejections.

Order events travel on `tradebus.evt.order.<venue>.<account>`, account events on
`tradebus.evt.account.<venue>.<account>` (both published by the venue's connector only), and
risk's refusals on `tradebus.evt.reject.<venue>.<account>`: a family of its own that carries
rejections and nothing else, so the only service allowed to speak there cannot forge a fill.
Every event has an `event_id` that is unique and stable across re-deliveries; it is the
event's `Nats-Msg-Id`, so a re-published event is stored once.

Lifecycle (see docs/contract.md for the state machine):
submitted -> accepted -> [triggered] -> partially_filled* -> filled
                                      -> cancelled | expired
submitted -> rejected
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Union

import msgspec

from .commands import CancelAllOrders, ModifyOrder, OrderCommand, PlaceOrder, PlaceOrderGroup, command_dedupe_id
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
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    # The order group it belongs to (a `place_group`'s id), None for an order on its own.
    group_id: RequestId | None = None
    # The order of its group it waits for (a bracket's exit: the entry; an OTO's second: the
    # first): it works once that one is done with a fill. Set where the venue holds the group
    # (native): the order is accepted before it works. Orders of one group waiting for the same
    # order (a bracket's exits), or for none (an OCO's), cancel each other when one fills.
    contingent_on: ClientOrderId | None = None


class OrderRejected(OrderEventBase, frozen=True, kw_only=True, tag="rejected"):
    """The place command was refused (by risk or the venue). Terminal. Carries the refused
    order's terms, so a listing of a refused order says what was refused (`null` only from
    publishers older than these fields)."""

    reason: RejectReason
    message: Text = ""
    side: Side | None = None
    order_type: OrderType | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None


class OrderTriggered(OrderEventBase, frozen=True, kw_only=True, tag="triggered"):
    """A stop, stop-limit or trailing stop order's stop price was reached; it is now working."""


# The start of a trade id tradebus made up because the venue reported a fill without its trade.
DERIVED_TRADE_ID_PREFIX = "derived:"


class Fill(Message, frozen=True, kw_only=True, tag="fill"):
    """One execution, as the venue reported it: `trade_id` is the venue's, `fee` is charged in
    `fee_currency` (the venue's own choice: Binance and Bybit charge a spot buy in the base
    asset). When the venue reported the fill only as a change of the order's filled quantity
    and its list of the order's trades could not be read, the fill is derived: `trade_id` is
    `derived:<venue order id>:<cumulative quantity>`, the price comes from the order's average
    price and the fee from its cumulative fee (0 with `fee_currency` "" where the venue states
    none)."""

    trade_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: LiquiditySide
    # The fee's items by name where the venue itemizes it, in `fee_currency` (the paper
    # venue's Indian schedule: brokerage, stt, exchange, sebi, stamp, gst); they sum to `fee`.
    fee_detail: dict[str, Decimal] = {}


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
    PLACE_GROUP = "place_group"
    MODIFY = "modify"
    CANCEL = "cancel"
    CANCEL_ALL = "cancel_all"
    UNKNOWN = "unknown"  # the command could not be decoded far enough to tell


class CommandRejected(Message, frozen=True, kw_only=True, tag="command_rejected"):
    """A modify, cancel or cancel-all was refused, or a command broke its schema (`malformed`:
    `action` and the ids then say what its JSON still told, `unknown` / null when nothing).
    `action`, `client_order_id` and `request_id` (a modify's `modify_id`) name the command it
    answers. The order it names (if any) keeps its state."""

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


class CancelAllDone(Message, frozen=True, kw_only=True, tag="cancel_all_done"):
    """A cancel-all was carried out: the venue cancelled (or accepted to cancel) `cancelled`
    open orders, 0 when none was open. Each of those orders has its own `cancelled` event:
    before this one on a venue that answers a cancel at once (paper), possibly after it on
    one that confirms cancels on its own stream. A refused cancel-all gets a
    `command_rejected` instead."""

    event_id: str
    venue: VenueName
    account: AccountName
    request_id: RequestId
    cancelled: int
    ts_event: Nanos
    ts_recv: Nanos


def cancel_all_done(command: CancelAllOrders, cancelled: int, now: int) -> CancelAllDone:
    """What a venue emits once it carried out `command`. Named after the command: a
    re-delivered cancel-all is answered once."""
    return CancelAllDone(
        event_id=f"{command_dedupe_id(command)}.done", venue=command.venue, account=command.account,
        request_id=command.request_id, cancelled=cancelled, ts_event=now, ts_recv=now,
    )


class _CommandIds(msgspec.Struct):
    """What a command that broke the schema may still tell about itself: read leniently (any
    JSON value, unknown fields ignored) and kept only if it passes its own field's check."""

    type: Any = None
    client_order_id: Any = None
    modify_id: Any = None
    request_id: Any = None
    group_id: Any = None


_ids_decoder = msgspec.json.Decoder(_CommandIds)
_ACTIONS = {action.value: action for action in CommandAction if action is not CommandAction.UNKNOWN}


def _valid(value: Any, kind: Any) -> str | None:
    try:
        return str(msgspec.convert(value, kind))
    except msgspec.ValidationError:
        return None


def _command_ids(payload: bytes) -> tuple[CommandAction, str | None, str | None]:
    """(action, client order id, modify, request or group id) of a command that failed to decode, as
    far as its JSON tells them; ids are checked by the same patterns as in a valid command, so
    a hostile value never reaches a subject or a key."""
    try:
        ids = _ids_decoder.decode(payload)
    except msgspec.DecodeError:  # not a JSON object
        return CommandAction.UNKNOWN, None, None
    action = _ACTIONS.get(ids.type, CommandAction.UNKNOWN) if isinstance(ids.type, str) else CommandAction.UNKNOWN
    # Only the ids the action has (as in command_identity): a place that is malformed because
    # it carries a `request_id` must still be recognized as that place.
    client_order_id = (None if action in (CommandAction.CANCEL_ALL, CommandAction.PLACE_GROUP)
                       else _valid(ids.client_order_id, ClientOrderId))
    if action is CommandAction.MODIFY:
        request_id = _valid(ids.modify_id, RequestId)
    elif action is CommandAction.PLACE_GROUP:
        request_id = _valid(ids.group_id, RequestId)
    elif action in (CommandAction.CANCEL_ALL, CommandAction.UNKNOWN):
        request_id = _valid(ids.request_id, RequestId)
    else:
        request_id = None
    return action, client_order_id, request_id


def malformed_command(*, venue: str, account: str, stream_seq: int, message: str, now: int, payload: bytes = b"",
                      issuer: str = "") -> CommandRejected:
    """The answer to a command that could not be decoded. Its id names the command's stream
    position (and the issuer, e.g. `risk:`), so a re-delivery is not answered twice. It names
    the action and ids `payload` still tells, so the sender's ticket gets its answer."""
    action, client_order_id, request_id = _command_ids(payload)
    return CommandRejected(
        event_id=f"{issuer}{venue}.{account}:malformed.{stream_seq}", action=action, venue=venue, account=account,
        client_order_id=client_order_id, request_id=request_id, reason=RejectReason.MALFORMED,
        message=message[:1024], ts_event=now, ts_recv=now,
    )


CommandIdentity = tuple[CommandAction, Union[str, None], Union[str, None]]


def command_identity(command: OrderCommand) -> CommandIdentity:
    """(action, client order id, modify or request id): what a `command_rejected` (or a
    `cancel_all_done`) answering `command` carries."""
    if isinstance(command, CancelAllOrders):
        return CommandAction.CANCEL_ALL, None, command.request_id
    if isinstance(command, PlaceOrderGroup):
        return CommandAction.PLACE_GROUP, None, command.group_id
    if isinstance(command, ModifyOrder):
        return CommandAction.MODIFY, command.client_order_id, command.modify_id
    return CommandAction.PLACE if isinstance(command, PlaceOrder) else CommandAction.CANCEL, command.client_order_id, None


def answer_identity(event: CommandRejected | CancelAllDone) -> CommandIdentity:
    """The `command_identity` of the command `event` answers."""
    if isinstance(event, CancelAllDone):
        return CommandAction.CANCEL_ALL, None, event.request_id
    return event.action, event.client_order_id, event.request_id


def command_refused(command: OrderCommand, *, event_id: str, reason: RejectReason, message: str,
                    now: int, keeps_order: bool = False) -> OrderRejected | CommandRejected:
    """The answer to a decoded command the fleet refuses before the venue sees it: a place
    becomes a rejected order, anything else a rejected command (the order keeps its state).
    `keeps_order`: a place refused because its client order id names an order already (a
    reuse of the id), also a rejected command: that order keeps its state."""
    if isinstance(command, PlaceOrder) and not keeps_order:
        return OrderRejected(
            event_id=event_id, client_order_id=command.client_order_id, venue=command.venue, account=command.account,
            symbol=command.symbol, reason=reason, message=message[:1024], ts_event=now, ts_recv=now,
            side=command.side, order_type=command.order_type, quantity=command.quantity, price=command.price,
        )
    action, client_order_id, request_id = command_identity(command)
    return CommandRejected(
        event_id=event_id, action=action, venue=command.venue, account=command.account,
        client_order_id=client_order_id, request_id=request_id, reason=reason, message=message[:1024],
        ts_event=now, ts_recv=now,
    )


def group_refused(group: PlaceOrderGroup, *, event_id: str, reason: RejectReason, message: str,
                  now: int) -> list[OrderRejected]:
    """The answer to a group the fleet refuses before the venue sees it: every order of the
    group rejected (each event id is `event_id` and the order's client order id), so whoever
    waits on any of its orders gets an answer."""
    rejected = [command_refused(order, event_id=f"{event_id}.{order.client_order_id}", reason=reason,
                                message=message, now=now) for order in group.placed_orders()]
    return [event for event in rejected if isinstance(event, OrderRejected)]


def group_unsupported(group: PlaceOrderGroup, message: str, now: int) -> list[OrderRejected]:
    """A venue's answer to a group it cannot hold: every order rejected, named after the group."""
    return group_refused(group, event_id=f"{command_dedupe_id(group)}.rejected", now=now,
                         reason=RejectReason.UNSUPPORTED_ORDER_GROUP, message=message)


OrderLifecycleEvent = Union[
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderTriggered,
    OrderPartiallyFilled,
    OrderFilled,
    OrderModified,
    OrderCancelled,
    OrderExpired,
]
"""The events about one order (every OrderEventBase): what narrowing an OrderEvent by
`isinstance(event, OrderEventBase)` leaves, named so that an order's latest event is typed."""

OrderEvent = Union[OrderLifecycleEvent, CommandRejected, CancelAllDone]

TERMINAL_EVENTS = (OrderRejected, OrderFilled, OrderCancelled, OrderExpired)

RejectionEvent = Union[OrderRejected, CommandRejected]
"""What the rejection family carries: the answers of a refused command, never a fill."""
REJECTION_EVENTS = (OrderRejected, CommandRejected)


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
