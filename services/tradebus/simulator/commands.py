"""Commands: placing, modifying and cancelling orders on the simulated exchange.

Placing
    Refused with OrderRejected, checked in this order: unknown account (or venue),
    unknown instrument, GTD already expired, market order facing an empty book, tick size,
    lot size and minimum quantity, min notional (a market order at the best opposite price,
    a stop at its stop price), post-only that would cross, reduce-only that cannot reduce
    (it may neither open nor flip a position), buy costing more than the available cash
    (quantity x limit price, or slipped best ask / stop price, x (1 + taker fee); available =
    cash minus what open buys lock the same way), and, with `allow_short=False`, a sell
    larger than the position minus pending sells. A reused client order id changes nothing:
    with the terms its order was placed with, the place is that order's own (re-delivered,
    e.g. after a bus restart) and is answered with the order's latest event under its
    original id; with other terms it gets CommandRejected(DUPLICATE_CLIENT_ORDER_ID) naming
    them. Rejected orders count as used ids too (refused the same way, their terms unknown).
    Otherwise OrderAccepted comes first, then whatever happens at once.

Modify and cancel
    Only open orders: an unknown one gets CommandRejected(UNKNOWN_ORDER), a terminal one
    ORDER_NOT_OPEN. A modify re-runs the placement checks on the new terms (the new quantity
    must also exceed the filled quantity; a price on an order without one is MALFORMED, as
    is a stop price on a trailing stop, whose stop follows the market: change its trail by
    cancelling it and placing a new one), emits OrderModified, then works the order again: a
    price that now crosses takes. An order held for its group can be modified and cancelled.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    group_violation,
    terms_differences,
)
from tradebus.schemas.events import CommandRejected, OrderAccepted, OrderModified, cancel_all_done
from tradebus.schemas.values import CancelReason, OrderType, RejectReason

from .book import OrderBook
from .events import EventBuilder
from .groups import Groups
from .ledger import Ledger
from .matching import Matcher
from .rules import InstrumentSpec, Violation, check_order
from .state import Account, Core, Event, Order, exact
from .trailing import followed_price, trailing_stop

_NEEDS_A_BOOK = (OrderType.MARKET, OrderType.TRAILING_STOP)  # takes or follows the opposite side


class Commands:
    def __init__(
        self, core: Core, events: EventBuilder, book: OrderBook, ledger: Ledger, matcher: Matcher, groups: Groups
    ) -> None:
        self._core = core
        self._events = events
        self._book = book
        self._ledger = ledger
        self._matcher = matcher
        self._groups = groups

    @exact
    def execute(self, command: OrderCommand) -> list[Event]:
        """Expire what is due, then run the command, then let groups follow what closed."""
        self._core.now = self._core.clock()
        events = self._book.expire_due()
        if isinstance(command, PlaceOrder):
            events += self._place(command)
        elif isinstance(command, ModifyOrder):
            events += self._modify(command)
        elif isinstance(command, CancelOrder):
            events += self._cancel_one(command)
        elif isinstance(command, PlaceOrderGroup):
            events += self._place_group(command)
        else:
            events += self._cancel_all(command)
        return events + self._matcher.follow_groups()

    def _place(self, command: PlaceOrder) -> list[Event]:
        order = _order(command, None)
        violation = self._unknown_account(command)
        if violation is not None:
            # Not recorded: there is no account to record it in. Its one event has the
            # same id on every retry, so the bus stores the rejection once.
            return [self._events.rejected(order, violation)]
        account = self._core.state.accounts[command.account]
        if account.used(command.client_order_id):
            return self._placed_again(account, command)
        violation = self._check_place(order)
        if violation is None and order.group_id is not None:
            violation = Violation(RejectReason.INVALID_ORDER_GROUP, "the orders of a group are placed as a place_group")
        if violation is not None:
            rejected = self._events.rejected(order, violation)
            account.rejected[order.client_order_id] = rejected
            return [rejected]
        account.orders[order.client_order_id] = order
        accepted = self._accept(order)
        return [accepted, *self._matcher.work(order)]

    def _place_group(self, group: PlaceOrderGroup) -> list[Event]:
        # Each order under the group's account (the one the group was sent to), even one
        # naming another, which `group_violation` refuses.
        places = [msgspec.structs.replace(place, account=group.account) for place in group.placed_orders()]
        orders = [_order(place, group.contingent_on(place)) for place in places]
        violation = self._unknown_account(group)
        if violation is not None:  # not recorded, as for a place
            return [self._events.rejected(order, violation) for order in orders]
        account = self._core.state.accounts[group.account]
        if any(account.used(order.client_order_id) for order in orders):
            return self._group_again(account, group)
        violation = self._check_group(account, group, orders)
        if violation is not None:
            rejected = [self._events.rejected(order, violation) for order in orders]
            account.rejected.update((event.client_order_id, event) for event in rejected)
            return list(rejected)
        account.groups[group.group_id] = [order.client_order_id for order in orders]
        events: list[Event] = []
        for order in orders:
            account.orders[order.client_order_id] = order
            events.append(self._accept(order))
        for order in orders:
            if order.is_open:  # not one its peer's fill cancelled; held ones do nothing yet
                events += self._matcher.work(order)
        return events

    def _check_group(self, account: Account, group: PlaceOrderGroup, orders: list[Order]) -> Violation | None:
        """The first reason to refuse the whole group, checking every order before placing any."""
        breach = group_violation(group)
        if breach is None and group.group_id in account.groups:
            breach = f"group id {group.group_id} already used"
        if breach is not None:
            return Violation(RejectReason.INVALID_ORDER_GROUP, breach)
        for order in orders:
            violation = self._check_place(order)
            if violation is not None:
                reason, message = violation
                return Violation(reason, f"{order.client_order_id}: {message}")
        return None

    def _group_again(self, account: Account, group: PlaceOrderGroup) -> list[Event]:
        """A group with known client order ids: the same group again, or a duplicate id."""
        again: list[Event] = []
        for place in group.placed_orders():
            order = account.orders.get(place.client_order_id)
            if order is None or order.accepted is None or order.group_id != group.group_id:
                break
            if terms_differences(order.accepted, place) or order.last_event is None:
                break
            again.append(order.last_event)
        else:
            return again
        used = [o.client_order_id for o in group.orders if account.used(o.client_order_id)]
        return [
            self._events.command_rejected(
                group,
                RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                f"client order ids already used, not by this group with these terms: {', '.join(used)}",
            )
        ]

    def _placed_again(self, account: Account, command: PlaceOrder) -> list[Event]:
        """A place under a used client order id (see Placing)."""
        order = account.orders.get(command.client_order_id)
        if order is None or order.accepted is None:  # rejected: no terms kept to recognize it by
            return [
                self._events.command_rejected(
                    command, RejectReason.DUPLICATE_CLIENT_ORDER_ID, "client order id already used by a rejected order"
                )
            ]
        differences = terms_differences(order.accepted, command)
        if differences:
            return [
                self._events.command_rejected(
                    command,
                    RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                    f"client order id already used with other terms: {', '.join(differences)}",
                )
            ]
        return [order.last_event] if order.last_event is not None else []

    def _check_place(self, order: Order) -> Violation | None:
        spec = self._core.instruments.get(order.symbol)
        if spec is None:
            return Violation(RejectReason.UNKNOWN_INSTRUMENT, f"no instrument {order.symbol}")
        if order.expire_time is not None and order.expire_time <= self._core.now:
            return Violation(RejectReason.EXPIRED_ON_ARRIVAL, "expire_time has passed")
        if order.order_type in _NEEDS_A_BOOK and not self._book.opposite_levels(order):
            return Violation(RejectReason.NO_LIQUIDITY, "the opposite side of the book is empty")
        return self._check_terms(spec, order, quantity=order.quantity, price=order.price, stop_price=order.stop_price)

    def _check_terms(
        self,
        spec: InstrumentSpec,
        order: Order,
        *,
        quantity: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
    ) -> Violation | None:
        """The checks a placement and a modify share, on the order's proposed terms."""
        if stop_price is None and order.order_type is OrderType.TRAILING_STOP:  # valued at its first stop
            stop_price = self._first_stop(order)
        violation = check_order(
            spec,
            quantity=quantity,
            prices=(price, stop_price),
            notional_price=self._book.reference_price(order, price, stop_price),
        )
        if violation is None and self._core.rules is not None:
            violation = self._core.rules(spec, quantity, (price, stop_price), self._core.now)
        if violation is not None or order.held:  # a held order's account is judged when it works
            return violation
        leaves = quantity - order.cum_quantity
        if order.post_only and price is not None and self._book.crossing_levels(order, price):
            return Violation(RejectReason.POST_ONLY_WOULD_TAKE, f"a {order.side.value} at {price} would take")
        if order.reduce_only and leaves > self._ledger.reducible(order):
            return Violation(RejectReason.REDUCE_ONLY_VIOLATION, "the order would open or flip the position")
        return self._ledger.afford(order, leaves, price, stop_price, excluding=[order, *self._peers(order)])

    def _first_stop(self, order: Order) -> Decimal | None:
        best = followed_price(order, self._book.book(order.symbol), None)
        return None if best is None else trailing_stop(order, best, self._core.instruments[order.symbol].tick_size)

    def _peers(self, order: Order) -> list[Order]:
        return [] if order.group_id is None or not order.is_open else self._groups.peers(order)

    def _accept(self, order: Order) -> OrderAccepted:
        state = self._core.state
        state.order_count += 1
        self._book.open_order(order, f"P{state.order_count}")
        accepted = self._events.order_event(
            OrderAccepted,
            order,
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            price=order.price,
            stop_price=order.stop_price,
            time_in_force=order.time_in_force,
            expire_time=order.expire_time,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            trail_amount=order.trail_amount,
            trail_percent=order.trail_percent,
            group_id=order.group_id,
            contingent_on=order.contingent_on,
        )
        assert isinstance(accepted, OrderAccepted)
        order.accepted = accepted
        return accepted

    def _modify(self, command: ModifyOrder) -> list[Event]:
        account = self._core.state.accounts.get(command.account)
        if account is not None:
            account.remember_modify(command.client_order_id, command.modify_id)
        order = self._find_open(command)
        if isinstance(order, CommandRejected):
            return [order]
        quantity = order.quantity if command.quantity is None else command.quantity
        price = order.price if command.price is None else command.price
        stop_price = order.stop_price if command.stop_price is None else command.stop_price
        violation = self._check_modify(command, order, quantity=quantity, price=price, stop_price=stop_price)
        if violation is not None:
            return [self._events.command_rejected(command, *violation)]
        self._book.change_terms(order, quantity, price, stop_price)
        modified = self._events.order_event(
            OrderModified,
            order,
            modify_id=command.modify_id,
            quantity=quantity,
            price=price,
            stop_price=stop_price,
        )
        return [modified, *self._matcher.work(order)]

    def _check_modify(
        self,
        command: ModifyOrder,
        order: Order,
        *,
        quantity: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
    ) -> Violation | None:
        if command.price is not None and order.price is None:
            return Violation(RejectReason.MALFORMED, f"a {order.order_type.value} order has no price")
        if command.stop_price is not None and order.order_type is OrderType.TRAILING_STOP:
            return Violation(RejectReason.MALFORMED, "a trailing stop's stop price follows the market: "
                             "cancel it and place one with the new trail")
        if command.stop_price is not None and order.stop_price is None:
            return Violation(RejectReason.MALFORMED, f"a {order.order_type.value} order has no stop price")
        if quantity <= order.cum_quantity:
            return Violation(RejectReason.LOT_SIZE, f"quantity must exceed the filled {order.cum_quantity}")
        spec = self._core.instruments[order.symbol]
        return self._check_terms(spec, order, quantity=quantity, price=price, stop_price=stop_price)

    def _cancel_one(self, command: CancelOrder) -> list[Event]:
        order = self._find_open(command)
        if isinstance(order, CommandRejected):
            return [order]
        return [self._book.cancel(order, CancelReason.REQUESTED)]

    def _cancel_all(self, command: CancelAllOrders) -> list[Event]:
        violation = self._unknown_account(command)
        if violation is not None:
            return [self._events.command_rejected(command, *violation)]
        cancelled = [
            self._book.cancel(order, CancelReason.REQUESTED)
            for order in self._book.open(account=command.account, symbol=command.symbol, side=command.side)
        ]  # an order's group follows after all are cancelled: nothing it releases escapes the cancel
        return [*cancelled, cancel_all_done(command, len(cancelled), self._core.now)]

    def _find_open(self, command: ModifyOrder | CancelOrder) -> Order | CommandRejected:
        violation = self._unknown_account(command)
        if violation is not None:
            return self._events.command_rejected(command, *violation)
        account = self._core.state.accounts[command.account]
        order = account.orders.get(command.client_order_id)
        if order is None and command.client_order_id not in account.rejected:
            return self._events.command_rejected(command, RejectReason.UNKNOWN_ORDER, "no such order")
        if order is None or not order.is_open:
            return self._events.command_rejected(command, RejectReason.ORDER_NOT_OPEN, "the order is no longer open")
        return order

    def _unknown_account(self, command: OrderCommand) -> Violation | None:
        venue = self._core.venue
        if command.venue != venue:
            return Violation(RejectReason.UNKNOWN_VENUE, f"this is venue {venue}, not {command.venue}")
        if command.account not in self._core.state.accounts:
            return Violation(RejectReason.UNKNOWN_ACCOUNT, f"no account {command.account}")
        return None


def _order(place: PlaceOrder, contingent_on: str | None) -> Order:
    """The order a place asks for; held if it waits for another order of its group."""
    return Order(
        account=place.account,
        client_order_id=place.client_order_id,
        symbol=place.symbol,
        side=place.side,
        order_type=place.order_type,
        quantity=place.quantity,
        price=place.price,
        stop_price=place.stop_price,
        time_in_force=place.time_in_force,
        expire_time=place.expire_time,
        post_only=place.post_only,
        reduce_only=place.reduce_only,
        trail_amount=place.trail_amount,
        trail_percent=place.trail_percent,
        group_id=place.group_id,
        contingent_on=contingent_on,
        held=contingent_on is not None,
    )
