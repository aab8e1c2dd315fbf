"""How a remote venue connector keeps its account state published (the book itself:
accounts.py). A venue adapter implements the primitives it can (`balances`,
`watch_balances`, `positions`); RemoteVenueConnector mixes this in and runs it:

- every event list it publishes passes `_with_account_events`: each new fill is followed
  by the position it moved, and asks for a read of the venue's balances;
- `_read_account` reads the venue's balances (and positions, where it keeps them) and
  publishes what changed: at start and after each reconnect as a snapshot, and
  `account_refresh_delay` after fills (`_follow_account`, one read for a burst of fills);
- `_follow_balances` follows the venue's private balance stream where it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tradebus.schemas.events import Balance, FillEventBase
from tradebus.shared.retry import Backoff

from .accounts import AccountBook, ReportedPosition
from .base import EmitEvents, VenueEvent
from .errors import OrderRefused, VenueError

log = logging.getLogger(__name__)


class AccountFeed:
    # Provided by RemoteVenueConnector.
    emit: EmitEvents
    settings: Any  # RemoteSettings
    _call: Callable[..., Awaitable[Any]]

    def _init_account_feed(self, *, venue: str, account: str) -> None:
        self.book = AccountBook(venue=venue, account=account, started_ns=time.time_ns())
        self._account_due = asyncio.Event()  # fills happened: read the venue's balances
        publish = self.emit
        self.emit = lambda events: publish(self._with_account_events(list(events)))

    # --- venue primitives (raise only errors.py errors) ---------------------------------------
    async def balances(self) -> list[Balance]:
        """The account's balances at the venue, every currency it reports."""
        return []

    def watch_balances(self) -> AsyncIterator[list[Balance]] | None:
        """The private balance stream (each update's currencies), or None where the venue
        has none: balances are then read after fills only. Raises VenueBusy when lost."""
        return None

    async def positions(self) -> list[ReportedPosition] | None:
        """The account's positions as the venue keeps them; None for a venue that keeps none
        (spot exchanges): positions then come from the fills alone."""
        return None

    # --- following the account -------------------------------------------------------------
    def _with_account_events(self, events: list[VenueEvent]) -> list[VenueEvent]:
        """`events` with the position change of each new fill; a fill asks for the balances."""
        if any(isinstance(event, FillEventBase) for event in events):
            self._account_due.set()
        return self.book.with_positions(events)  # type: ignore[return-value]

    async def _read_account(self, *, snapshot: bool) -> None:
        """A venue that refuses to show the account (a key without read permission) is
        logged, never a reason to stop trading; busy or unknown answers propagate."""
        now = time.time_ns()
        try:
            balances = await self._call(self.balances)
            positions = await self._call(self.positions)
        except OrderRefused as exc:
            log.warning("the venue refused to show the account", extra={"error": exc.message})
            return
        events: list[VenueEvent] = list(self.book.venue_balances(balances, now, snapshot=snapshot))
        if positions is not None:
            events += self.book.venue_positions(positions, now)
        if events:
            self.emit(events)

    async def _follow_balances(self) -> None:
        backoff = Backoff(self.settings.reconnect_delay)
        while True:
            stream = self.watch_balances()
            if stream is None:
                return
            try:
                async for balances in stream:
                    backoff.reset()
                    events = self.book.venue_balances(balances, time.time_ns(), snapshot=False, complete=False)
                    if events:
                        self.emit(events)
            except VenueError as exc:
                log.warning("balance stream lost; reading it again", extra={"error": exc.message})
            await backoff.wait()

    async def _follow_account(self) -> None:
        """The venue's balances shortly after fills (one read for a burst of them)."""
        while True:
            await self._account_due.wait()
            await asyncio.sleep(self.settings.account_refresh_delay)
            self._account_due.clear()
            with contextlib.suppress(VenueError):
                await self._read_account(snapshot=False)
