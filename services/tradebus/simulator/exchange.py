"""The simulated exchange: a matching engine against a displayed book, and an account
ledger. Pure Python, no I/O: its owner (the paper connector, or a venue emulator) feeds it
commands and market data and publishes the wire events it returns, in order.

`SimulatedExchange` is the one entry point. Its parts each hold one idea and share one
`Core` (state.py: the venue's terms, its state as plain msgspec Structs, and the clock
reading of the call in progress):

- book.py: the displayed books, and the open orders on them (priority, expiry, closing);
- matching.py: taking, resting, stops, reduce-only, and what a market update does;
- trailing.py: where a trailing stop's stop sits;
- groups.py: brackets, OCO and OTO groups: held orders, peers, releases;
- ledger.py: cash, positions, fees, and what open buys lock;
- commands.py: placing, modifying and cancelling, with their checks (rules.py);
- events.py: event ids, and the events built under them;
- journal.py: `restore` from the events returned before, and `executed` for a command
  re-delivered after a crash.

Each module's docstring states its part of the venue's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

from tradebus.schemas.commands import OrderCommand
from tradebus.schemas.events import Balance, BalanceUpdate, PositionUpdate

from .book import OrderBook
from .commands import Commands
from .events import EventBuilder
from .groups import Groups
from .journal import Journal
from .ledger import Ledger
from .matching import Matcher
from .rules import FillFees, InstrumentSpec, OrderRules
from .state import Core, Event, Level, OpenOrder, exact


class SimulatedExchange:
    def __init__(
        self,
        *,
        venue: str,
        instruments: Sequence[InstrumentSpec],
        accounts: Mapping[str, Mapping[str, Decimal]],
        fees: FillFees,
        slippage_bps: Decimal = Decimal(0),
        allow_short: bool = True,
        clock: Callable[[], int],
        rules: OrderRules | None = None,
    ) -> None:
        core = Core(
            venue=venue,
            instruments=instruments,
            accounts=accounts,
            fees=fees,
            slippage_bps=slippage_bps,
            allow_short=allow_short,
            clock=clock,
            rules=rules,
        )
        self.venue = venue
        self._core = core
        self._state = core.state  # all the exchange's state, one snapshot-able Struct
        self._events = events = EventBuilder(core)
        self._book = book = OrderBook(core, events)
        groups = Groups(core, book)
        self._ledger = ledger = Ledger(core, events, book, groups)
        self._matcher = matcher = Matcher(core, events, book, ledger, groups)
        self._commands = Commands(core, events, book, ledger, matcher, groups)
        self._journal = Journal(core, events, book, ledger, matcher, groups)

    def execute(self, command: OrderCommand) -> list[Event]:
        return self._commands.execute(command)

    def on_market(
        self, symbol: str, *, bids: Sequence[Level], asks: Sequence[Level], trade: Level | None = None
    ) -> list[Event]:
        """Replace the displayed book of `symbol` (KeyError if not an instrument of this venue).

        The exchange keeps the given sequences until the next update: don't mutate them.
        """
        self._book.display(symbol, bids, asks)
        if not self._book.any_open():  # nothing can fill, trigger or expire
            return []
        return self._matcher.work_open_orders(symbol, trade)

    def knows(self, account: str, client_order_id: str) -> bool:
        """Whether `account` ever placed `client_order_id` (rejected orders included)."""
        state = self._state.accounts.get(account)
        return state is not None and state.used(client_order_id)

    def executed(self, command: OrderCommand) -> bool:
        """Whether the venue already answered `command` (see journal.py, "Re-delivered commands")."""
        return self._journal.executed(command)

    def reconcile(self, account: str, client_order_ids: Sequence[str]) -> tuple[list[Event], list[str]]:
        """The latest event of each order the account placed (its original event id), and the
        client order ids it never placed."""
        state = self._state.accounts.get(account)
        latest: list[Event] = []
        unknown: list[str] = []
        for client_order_id in client_order_ids:
            event = None if state is None else state.latest_event(client_order_id)
            if event is None:
                unknown.append(client_order_id)
            else:
                latest.append(event)
        return latest, unknown

    @exact
    def open_orders(self, account: str) -> list[OpenOrder]:
        """The account's open orders, by symbol in acceptance order (none for an unknown account)."""
        return [
            OpenOrder(
                client_order_id=o.client_order_id,
                venue_order_id=str(o.venue_order_id),
                symbol=o.symbol,
                side=o.side,
                order_type=o.order_type,
                quantity=o.quantity,
                price=o.price,
                stop_price=o.stop_price,
                time_in_force=o.time_in_force,
                expire_time=o.expire_time,
                post_only=o.post_only,
                reduce_only=o.reduce_only,
                triggered=o.triggered,
                cum_quantity=o.cum_quantity,
                leaves_quantity=o.leaves,
                trail_amount=o.trail_amount,
                trail_percent=o.trail_percent,
                group_id=o.group_id,
                contingent_on=o.contingent_on,
                held=o.held,
            )
            for o in self._book.open(account=account)
        ]

    @exact
    def balances(self, account: str) -> list[Balance]:
        state = self._state.accounts.get(account)
        return [] if state is None else [self._ledger.balance(account, currency) for currency in state.cash]

    @exact
    def balance_report(self, account: str) -> BalanceUpdate:
        """Every balance of the account as it is now, under a new event id: the opening
        balances a fresh venue reports before any fill (clients and sizing ask for them)."""
        now = self._core.now = self._core.clock()
        return BalanceUpdate(event_id=self._events.account_event_id(account), venue=self._core.venue, account=account,
                             balances=self.balances(account), ts_event=now, ts_recv=now)

    def positions(self, account: str) -> list[PositionUpdate]:
        """The last PositionUpdate of every instrument the account traded (flat ones too)."""
        state = self._state.accounts.get(account)
        if state is None:
            return []
        return [self._events.position_event(account, symbol, position) for symbol, position in state.positions.items()]

    def restore(self, journal: Iterable[Event]) -> list[Event]:
        """Rebuild this fresh exchange from the events it returned before, oldest first, and
        return the events it still owes (see journal.py)."""
        return self._journal.restore(journal)
