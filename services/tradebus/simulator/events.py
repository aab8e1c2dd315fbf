"""Event ids, and the events the simulated exchange builds under them.

Order events: `{venue}.{account}.{client_order_id}.{n}`, n counting that order's events.
Account events: `{venue}.{account}:account.{epoch}.{n}` (`:` cannot occur in a client order
id, so these never collide with order event ids; `epoch` is when the venue was first
created, kept across restores). CommandRejected: the command's dedupe id (action and
modify/request id included) + `.rejected.{reason}`. Timestamps: one clock reading per call
(`Core.now`), as ts_event and ts_recv.

The journal replay reads the numbers back (`order_event_number`, `account_event_number`)
to continue after the highest seen, and to tell this venue's events from other producers'.
"""

from __future__ import annotations

from typing import Any

from tradebus.schemas.commands import (
    CancelAllOrders,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    command_dedupe_id,
)
from tradebus.schemas.events import (
    BalanceUpdate,
    CommandAction,
    CommandRejected,
    OrderEventBase,
    OrderRejected,
    PositionUpdate,
)
from tradebus.schemas.values import RejectReason

from .rules import Violation
from .state import Core, Order, Position


class EventBuilder:
    def __init__(self, core: Core) -> None:
        self._core = core

    def order_event(self, event_type: type[Any], order: Order, **fields: Any) -> Any:
        core = self._core
        order.event_count += 1
        order.last_event = event_type(
            event_id=f"{core.venue}.{order.account}.{order.client_order_id}.{order.event_count}",
            client_order_id=order.client_order_id,
            venue=core.venue,
            account=order.account,
            symbol=order.symbol,
            venue_order_id=order.venue_order_id,
            ts_event=core.now,
            ts_recv=core.now,
            **fields,
        )
        return order.last_event

    def rejected(self, order: Order, violation: Violation) -> OrderRejected:
        rejected: OrderRejected = self.order_event(
            OrderRejected, order, reason=violation.reason, message=violation.message, side=order.side,
            order_type=order.order_type, quantity=order.quantity, price=order.price,
        )
        return rejected

    def command_rejected(self, command: OrderCommand, reason: RejectReason, message: str) -> CommandRejected:
        client_order_id: str | None = None
        request_id: str | None = None
        if isinstance(command, CancelAllOrders):
            action, request_id = CommandAction.CANCEL_ALL, command.request_id
        elif isinstance(command, PlaceOrderGroup):
            action, request_id = CommandAction.PLACE_GROUP, command.group_id
        else:
            client_order_id = command.client_order_id
            if isinstance(command, ModifyOrder):
                action, request_id = CommandAction.MODIFY, command.modify_id
            else:
                action = CommandAction.PLACE if isinstance(command, PlaceOrder) else CommandAction.CANCEL
        return CommandRejected(
            # The command's own dedupe id names the action and modify/request id; the reason
            # keeps a later, different refusal of the same command distinct.
            event_id=f"{command_dedupe_id(command)}.rejected.{reason.value}",
            action=action,
            venue=self._core.venue,
            account=command.account,
            client_order_id=client_order_id,
            request_id=request_id,
            reason=reason,
            message=message,
            ts_event=self._core.now,
            ts_recv=self._core.now,
        )

    def account_event_id(self, account: str) -> str:
        state = self._core.state
        account_state = state.accounts[account]
        account_state.event_count += 1
        return f"{self._core.venue}.{account}:account.{state.epoch}.{account_state.event_count}"

    def position_event(self, account: str, symbol: str, position: Position) -> PositionUpdate:
        return PositionUpdate(
            event_id=position.event_id,
            venue=self._core.venue,
            account=account,
            symbol=symbol,
            quantity=position.quantity,
            avg_price=position.avg_price,
            realized_pnl=position.realized_pnl,
            ts_event=position.ts,
            ts_recv=position.ts,
        )

    def order_event_number(self, event: OrderEventBase) -> int | None:
        """n of an order event id this venue gave (`{venue}.{account}.{client_order_id}.{n}`)."""
        prefix = f"{self._core.venue}.{event.account}.{event.client_order_id}."
        number = event.event_id.removeprefix(prefix)
        return int(number) if event.event_id.startswith(prefix) and number.isdecimal() else None

    def account_event_number(self, event: BalanceUpdate | PositionUpdate) -> tuple[int, int] | None:
        """(epoch, n) of an account event id this venue gave (`{venue}.{account}:account.{epoch}.{n}`)."""
        prefix = f"{self._core.venue}.{event.account}:account."
        epoch, _, number = event.event_id.removeprefix(prefix).partition(".")
        if event.event_id.startswith(prefix) and epoch.isdecimal() and number.isdecimal():
            return int(epoch), int(number)
        return None
