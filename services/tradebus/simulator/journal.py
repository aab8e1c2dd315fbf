"""The simulated exchange's journal: rebuilding the venue from the events it returned.

Journal
    The events the exchange returns, stored in order by its owner (the paper connector
    keeps them in stream EVENTS), are its journal: `restore` rebuilds a fresh exchange from
    them. Orders come back from OrderAccepted (their terms), fills (cumulative quantity and
    notional), OrderModified (terms, and time priority exactly as a live modify moves it),
    OrderTriggered and terminal events; rejected placements from OrderRejected (their client
    order ids stay used); cash from BalanceUpdate totals, positions from PositionUpdate.
    Venue order ids, trade ids and event ids continue after the highest seen, account event
    ids in the journal's epoch. Events this venue did not give (risk's rejections on the
    same subjects) and order events whose number was already applied (re-published by
    `reconcile`) change nothing; orders of accounts or instruments no longer configured are
    dropped. Books are not restored: the next market update brings them.
    Groups come back from OrderAccepted (`group_id`, `contingent_on`: an order waiting for
    another is held until that one's terminal event shows it done with a fill), released
    quantities and trailing stops from OrderModified: nothing about them is kept elsewhere.
    A trailing stop's stop is all its state (trailing.py), so it comes back exactly; no
    market moved it while the venue was down, since the paper venue's market is its own.
    A crash can cut the journal inside one call's events. `restore` then returns what the
    venue still owes: the BalanceUpdate and PositionUpdate of a fill stored without them;
    for groups, the cancel (reason CONTINGENT) of an order whose peer filled or whose first
    order ended unfilled, and the OrderModified of a release; and a cancel (reason VENUE) of
    every working order whose work was cut short and may not rest (market, triggered stop,
    IOC, FOK) or a buy trailing stop cut off before its first stop, then what those cancels
    do to their groups.

Re-delivered commands
    A command re-delivered after a crash may have been executed already. `executed` answers
    from state the journal restores: a place whose client order id is used, a modify its
    (known) order recorded, applied or refused, a group all of whose client order ids are used
    (a group is decided whole), a cancel of an order that is no longer open
    (whatever closed it, executing the cancel again could only add an ORDER_NOT_OPEN
    rejection). A cancel-all never counts as executed: running it again cancels only what is
    still open. `execute` itself never consults it: a place arriving as a new delivery is
    recognized by its terms (see commands.py, Placing).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from tradebus.schemas.commands import CancelAllOrders, ModifyOrder, OrderCommand, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.events import (
    BalanceUpdate,
    CommandAction,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderEventBase,
    OrderExpired,
    OrderFilled,
    OrderLifecycleEvent,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
    PositionUpdate,
)
from tradebus.schemas.values import CancelReason, OrderType, Side

from .book import OrderBook
from .events import EventBuilder
from .groups import RELEASE_MODIFY_ID, Groups
from .ledger import Ledger
from .matching import Matcher
from .state import Core, Event, Order, Position, exact


class _Replay(msgspec.Struct):
    """What `restore` tracks while it reads the journal, besides the state itself."""

    account_ids: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)  # highest (epoch, n) seen
    # Fills whose BalanceUpdate / PositionUpdate are not in the journal (dicts: ordered sets).
    unreported_cash: dict[tuple[str, str], None] = msgspec.field(default_factory=dict)  # (account, currency)
    unreported_positions: dict[tuple[str, str], None] = msgspec.field(default_factory=dict)  # (account, symbol)


class Journal:
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
    def restore(self, journal: Iterable[Event]) -> list[Event]:
        """Rebuild this fresh exchange from the events it returned before, oldest first, and
        return the events it still owes (see "Journal")."""
        replay = _Replay()
        for event in journal:
            if isinstance(event, (BalanceUpdate, PositionUpdate)):
                self._replay_account_event(event, replay)
            elif isinstance(event, CommandRejected):
                self._replay_command_rejected(event)
            elif isinstance(event, OrderEventBase):  # not a cancel_all_done: nothing to rebuild from it
                self._replay_order_event(event, replay)
        self._continue_account_ids(replay)
        # A crash may have cut the journal inside one call: settle what that call still owed.
        self._core.now = self._core.clock()
        # Orders first (a stop-less trailing stop cannot be valued without a market), their
        # events after the fill's account events, which show the venue as it is after them.
        settled = self._owed_by_groups()
        settled += [self._book.cancel(order, CancelReason.VENUE) for order in self._book.open() if _cut_short(order)]
        settled += self._matcher.follow_groups()
        owed: list[Event] = [
            self._ledger.balance_update(account, currency) for account, currency in replay.unreported_cash
        ]
        owed += [self._ledger.report_position(account, symbol) for account, symbol in replay.unreported_positions]
        return owed + settled

    def _owed_by_groups(self) -> list[Event]:
        """What a cut kept groups from doing: cancels of peers of a filled order and of orders
        whose first ended unfilled, and releases not reported."""
        owed: list[Event] = []
        accounts = self._core.state.accounts
        for order in self._book.open():
            if order.group_id is None or not order.is_open:
                continue
            first = None if order.contingent_on is None else accounts[order.account].orders.get(order.contingent_on)
            if first is not None and not first.is_open and order.held:
                owed.append(self._book.cancel(order, CancelReason.CONTINGENT))
                continue
            if first is not None and not first.is_open and RELEASE_MODIFY_ID not in order.modify_ids:
                owed += self._groups.release(order, first)
            if any(peer.cum_quantity for peer in self._groups.peers(order)):
                owed.append(self._book.cancel(order, CancelReason.CONTINGENT))
        self._core.ended.clear()  # nothing released or cancelled here has orders waiting for it
        return owed

    def executed(self, command: OrderCommand) -> bool:
        """Whether the venue already answered `command` (see "Re-delivered commands")."""
        account = self._core.state.accounts.get(command.account)
        if account is None or isinstance(command, CancelAllOrders):
            return False
        if isinstance(command, PlaceOrderGroup):
            return all(account.used(order.client_order_id) for order in command.orders)
        order = account.orders.get(command.client_order_id)
        if isinstance(command, PlaceOrder):
            return account.used(command.client_order_id)
        if isinstance(command, ModifyOrder):
            return order is not None and command.modify_id in order.modify_ids
        return command.client_order_id in account.rejected or (order is not None and not order.is_open)

    def _replay_order_event(self, event: OrderLifecycleEvent, replay: _Replay) -> None:
        account = self._core.state.accounts.get(event.account)
        number = self._events.order_event_number(event)
        if account is None or number is None:
            return  # another producer's event (risk's rejections), or an account no longer configured
        if isinstance(event, OrderRejected):
            account.rejected.setdefault(event.client_order_id, event)
            return
        listed = event.symbol in self._core.instruments  # an order of an instrument no longer listed is dropped
        if isinstance(event, OrderAccepted) and listed and event.client_order_id not in account.orders:
            account.orders[event.client_order_id] = _accepted_order(event)
        order = account.orders.get(event.client_order_id)
        if order is None or number <= order.event_count:
            return  # re-published, or its order's acceptance is no longer in the stream
        order.event_count, order.last_event = number, event
        self._core.now = event.ts_event
        self._replay_on_order(order, event, replay)
        self._replay_ended()

    def _replay_ended(self) -> None:
        """An order done with a fill released the orders waiting for it (their events follow)."""
        ended = self._core.ended
        while ended:
            first = ended.pop()
            if first.cum_quantity:
                for order in self._groups.waiting_for(first):
                    order.held = False

    def _replay_on_order(self, order: Order, event: OrderEvent, replay: _Replay) -> None:
        """What the event did to its order, as the live path does it."""
        state = self._core.state
        match event:
            case OrderAccepted():
                self._book.open_order(order, str(event.venue_order_id))
                if order.group_id is not None:
                    state.accounts[order.account].groups.setdefault(order.group_id, []).append(order.client_order_id)
                state.order_count = max(state.order_count, _number(str(event.venue_order_id), "P"))
            case OrderModified():
                state.accounts[order.account].remember_modify(order.client_order_id, event.modify_id)
                self._book.change_terms(order, event.quantity, event.price, event.stop_price)
            case OrderTriggered():
                order.triggered = True
            case OrderPartiallyFilled() | OrderFilled():
                self._ledger.settle(order, event.fill)
                state.trade_count = max(state.trade_count, _number(event.fill.trade_id, "T"))
                replay.unreported_cash[order.account, self._core.instruments[order.symbol].quote] = None
                replay.unreported_positions[order.account, order.symbol] = None
            case OrderCancelled() | OrderExpired():
                self._book.close(order)

    def _replay_command_rejected(self, event: CommandRejected) -> None:
        """A refused modify of a known order counts as answered."""
        if event.action is CommandAction.MODIFY and event.event_id.startswith(f"{self._core.venue}.{event.account}."):
            account = self._core.state.accounts.get(event.account)
            if account is not None:
                account.remember_modify(str(event.client_order_id), str(event.request_id))

    def _replay_account_event(self, event: BalanceUpdate | PositionUpdate, replay: _Replay) -> None:
        account = self._core.state.accounts.get(event.account)
        number = self._events.account_event_number(event)
        if account is None or number is None:
            return
        replay.account_ids[event.account] = max(number, replay.account_ids.get(event.account, number))
        if isinstance(event, BalanceUpdate):
            for balance in event.balances:
                account.cash[balance.currency] = balance.total
                replay.unreported_cash.pop((event.account, balance.currency), None)
            return
        account.positions[event.symbol] = Position(
            quantity=event.quantity,
            avg_price=event.avg_price,
            realized_pnl=event.realized_pnl,
            event_id=event.event_id,
            ts=event.ts_event,
        )
        replay.unreported_positions.pop((event.account, event.symbol), None)

    def _continue_account_ids(self, replay: _Replay) -> None:
        """New account event ids follow the journal's: its latest epoch, numbers after the
        highest each account used in it."""
        if not replay.account_ids:
            return  # none published yet: the fresh epoch is as good
        state = self._core.state
        state.epoch = max(epoch for epoch, _ in replay.account_ids.values())
        for name, (epoch, number) in replay.account_ids.items():
            state.accounts[name].event_count = number if epoch == state.epoch else 0


def _cut_short(order: Order) -> bool:
    """Whether the journal ends inside the work of a working order that may not rest, or
    before a buy trailing stop got its first stop (it has one from its start: without a
    market, the restored venue could neither set it nor value what it locks)."""
    if order.held:
        return False
    if order.order_type is OrderType.TRAILING_STOP and order.side is Side.BUY and order.stop_price is None:
        return True
    return order.cannot_rest and not order.is_pending_stop


def _accepted_order(event: OrderAccepted) -> Order:
    """An order as its acceptance describes it, before it is put on the book."""
    return Order(
        account=event.account,
        client_order_id=event.client_order_id,
        symbol=event.symbol,
        side=event.side,
        order_type=event.order_type,
        quantity=event.quantity,
        price=event.price,
        stop_price=event.stop_price,
        time_in_force=event.time_in_force,
        expire_time=event.expire_time,
        post_only=event.post_only,
        reduce_only=event.reduce_only,
        trail_amount=event.trail_amount,
        trail_percent=event.trail_percent,
        group_id=event.group_id,
        contingent_on=event.contingent_on,
        held=event.contingent_on is not None,
        accepted=event,
    )


def _number(identifier: str, prefix: str) -> int:
    """The counter in a venue order id (`P{n}`) or a trade id (`T{n}`)."""
    return int(identifier.removeprefix(prefix))
