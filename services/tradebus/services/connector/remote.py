"""The execution policy of every venue reached over a network, written once.

A venue adapter (ccxt, alpaca, ...) implements a handful of primitives in venue terms:
connect, submit / amend / cancel / look up an order, list open orders, watch the private
order stream, watch one market-data stream. Each raises only the errors of errors.py.
`RemoteVenueConnector` turns them into the connector contract with the guarantees the
order path relies on:

- Start-up: connect, rebuild the published order state from the journal, reconcile it
  with the venue (its open orders, and every order we think is still working), publish
  what changed while we were away; only then are commands consumed.
- Place (placement.py): a re-delivered place is recognized by its terms, an order of ours
  is never answered with a rejection, and an unknown outcome is resolved by looking the
  order up, never by re-sending blindly.
- Private-stream loss: commands wait (up to `command_wait`) while the connector reconnects
  (after a back-off with jitter, retry.py) and reconciles; market streams publish a gap and
  then a reconnected marker.
- Auth failure: the connector reports DEGRADED with the reason on its status subject and
  answers commands with AUTH_FAILED until the credentials work again.
- Daily access tokens (a venue that sets `session`, session.py): an expired token refuses
  every command at once with SESSION_EXPIRED, sends nothing to the venue and parks every
  stream (market streams behind a gap marker) until a new token is taken and reconciled.
- Every request goes through one rate limiter: the venue's documented rate proactively,
  and a shared penalty box when the venue says "too many requests".
- Account state (accounts.py): each fill is followed by the position it changes; the
  venue's balances (and positions, where it keeps them) are read at start, after every
  reconnect and shortly after fills, and what changed is published as account events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    command_dedupe_id,
)
from tradebus.schemas.events import CommandAction, CommandRejected, cancel_all_done
from tradebus.schemas.values import TERMINAL_STATUSES, MarketDataKind, OrderStatus, RejectReason, ServiceState
from tradebus.shared.retry import Backoff, retry

from .accountfeed import AccountFeed
from .base import VenueConnector, VenueEvent
from .errors import AuthFailed, OrderRefused, OutcomeUnknown, SessionExpired, VenueBusy, VenueError
from .marketdata import MarketStream
from .placement import Placement
from .ratelimit import RateLimiter
from .sessionhost import SessionHost
from .tracking import OrderSnapshot, OrderTracker, TradeReport

log = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_BACKOFF = 0.5  # seconds: bound of the first wait after a busy answer without a retry-after
MarketMessage = msgspec.Struct  # a market.py message with seq=0; the base numbers it


class RemoteSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Resilience settings every remote venue's config embeds as `[<venue>.resilience]`."""

    requests_per_second: float | None = None  # None: the venue adapter's documented default
    busy_retries: int = 5  # attempts on a busy venue before answering VENUE_UNAVAILABLE
    lookup_attempts: int = 5  # look-ups of an order whose place had an unknown outcome
    lookup_interval: float = 0.5  # bound of the first wait before one (retry.py: doubling)
    command_wait: float = 20.0  # seconds a command waits for a reconnect before it is refused
    reconnect_delay: float = 0.5  # bound of the first wait after a stream drop (retry.py: doubling, capped at 30 s)
    poll_interval: float = 5.0  # seconds between reconciliations of working orders (safety net)
    reconcile_lookback: float = 86_400.0  # seconds of venue order history read at start and after reconnects
    account_refresh_delay: float = 0.2  # seconds after a fill before the venue's balances are read (fills coalesce)


class RemoteVenueConfig(Protocol):
    """What every remote venue's settings carry (its own fields besides)."""

    @property
    def account(self) -> str: ...

    @property
    def subscribe(self) -> list[str]: ...

    @property
    def resilience(self) -> RemoteSettings: ...


RemoteConfigT = TypeVar("RemoteConfigT", bound=RemoteVenueConfig)


class RemoteVenueConnector(Placement, AccountFeed, SessionHost, VenueConnector[RemoteConfigT]):
    """Subclasses implement the venue primitives below; `account` is the one venue account
    this process trades (one connector process per venue and account)."""

    default_requests_per_second: float = 5.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account: str = self.config.account
        self.settings: RemoteSettings = self.config.resilience
        self.tracker = OrderTracker(venue=self.venue, account=self.account)
        self._init_account_feed(venue=self.venue, account=self.account)
        # 10% under the documented rate: our clock and the venue's windows never line up exactly
        self.limiter = RateLimiter(self.settings.requests_per_second or 0.9 * self.default_requests_per_second)
        self._ready = asyncio.Event()  # connected and reconciled: commands may run
        self._auth_error: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._watched: set[tuple[MarketDataKind, str]] = set()
        self.session = None  # a venue whose access tokens last a day sets its TokenSession (sessionhost.py)

    @property
    def credentials_refused(self) -> bool:
        return self._auth_error is not None or (self.session is not None and self.session.blocked)

    # --- venue primitives (all raise only errors.py errors) ----------------------------------
    @abstractmethod
    async def connect(self) -> None:
        """Open sessions, load instruments, verify the credentials (AuthFailed if refused)."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close every session; called once on stop."""

    @abstractmethod
    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        """Send a new order with `command.client_order_id` as the venue's client order id."""

    @abstractmethod
    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        """Change an open order (OrderRefused(UNSUPPORTED_ORDER_TYPE) where the venue cannot)."""

    @abstractmethod
    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        """Cancel an order; the resulting snapshot if the venue returns one."""

    @abstractmethod
    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        """The order with this client order id, or None if the venue has never seen it."""

    @abstractmethod
    async def open_orders(self) -> list[OrderSnapshot]:
        """Every working order of the account at the venue."""

    @abstractmethod
    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        """The account's orders created or updated since `since_ns`, finished ones included
        (what happened at the venue while this connector was not listening)."""

    @abstractmethod
    def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        """The private order stream: yields each order update; raises VenueBusy (or
        AuthFailed) when the stream is lost. Reconnects when iterated again."""

    async def order_trades(self, snapshot: OrderSnapshot) -> list[TradeReport]:
        """Every trade of the order as the venue lists them ([] where it cannot)."""
        return []

    @abstractmethod
    def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        """One market-data stream: yields normalized messages (seq 0) as they arrive;
        raises VenueBusy when the stream is lost. The first batch after (re)connecting a
        book stream is a BookSnapshot."""

    # --- the connector contract ----------------------------------------------------------------
    @property
    def accounts(self) -> frozenset[str]:
        return frozenset({self.account})

    async def start(self) -> None:
        journal = await self.read_journal()
        self.tracker.restore(journal)
        self.book.restore(journal)
        await self._connect_and_reconcile()
        if self.session is not None:
            self._spawn(self.session.run(self._resume_session), "session")
        self._spawn(self._follow_orders(), "private-stream")
        self._spawn(self._follow_account(), "account")
        self._spawn(self._follow_balances(), "balance-stream")
        self._spawn(self._poll_working_orders(), "reconcile-poll")
        await self._subscribe_configured()

    async def _subscribe_configured(self) -> None:
        """The streams the settings publish from start (again after a session that started
        expired listed no instruments)."""
        kinds = [kind for kind in MarketDataKind if kind is not MarketDataKind.INSTRUMENT]
        listed = {instrument.symbol for instrument in self.instruments()}
        symbols = sorted(listed) if "*" in self.config.subscribe else [s for s in self.config.subscribe if s in listed]
        self.market_data.pin(symbols, kinds)
        for symbol in symbols:
            await self.on_subscribed(symbol, kinds)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.disconnect()

    async def on_subscribed(self, symbol: str, kinds: Sequence[MarketDataKind]) -> None:
        for kind in kinds:
            if kind in self.capabilities.market_data and (kind, symbol) not in self._watched:
                self._watched.add((kind, symbol))
                self._spawn(self._follow_market(self.market_data.stream(kind, symbol)), f"md-{kind.value}-{symbol}")

    async def executed(self, command: OrderCommand) -> bool:
        """A re-delivered command: the journal says whether it ran; for a place the journal
        does not show, the venue is asked (a crash may have come between sending and storing)."""
        if isinstance(command, PlaceOrder):
            if self.tracker.knows(command.client_order_id):
                return True
            snapshot = await self._call(lambda: self.lookup(command.client_order_id, command.symbol))
            if snapshot is None:
                return False
            self.emit(await self._track(snapshot))
            return True
        if isinstance(command, PlaceOrderGroup):  # placed whole: every order known, or none
            return all(self.tracker.knows(order.client_order_id) for order in command.orders)
        if isinstance(command, ModifyOrder):
            return self.tracker.modified(command.client_order_id, command.modify_id)
        if isinstance(command, CancelOrder):
            return self.tracker.knows(command.client_order_id) and not self.tracker.is_open(command.client_order_id)
        return False

    async def execute(self, command: OrderCommand) -> list[VenueEvent]:
        return self._with_account_events(await self._execute(command))

    async def _execute(self, command: OrderCommand) -> list[VenueEvent]:
        refusal = await self._trading_refusal()
        try:
            if refusal is not None:
                raise refusal
            if isinstance(command, PlaceOrder):
                return await self._place(command)
            if isinstance(command, ModifyOrder):
                return await self._modify(command)
            if isinstance(command, CancelOrder):
                return await self._cancel(command.client_order_id)
            if isinstance(command, PlaceOrderGroup):
                return await self._place_group(command)
            return await self._cancel_all(command)
        except AuthFailed as exc:
            self._auth_failed(exc)
            return self._refused(command, exc.reason, exc.message)
        except OrderRefused as exc:
            return self._refused(command, exc.reason, exc.message)
        except (VenueBusy, OutcomeUnknown) as exc:
            return self._refused(command, RejectReason.VENUE_UNAVAILABLE, exc.message)

    async def reconcile(self, account: str, client_order_ids: list[str]) -> tuple[list[VenueEvent], list[str]]:
        latest: list[VenueEvent] = []
        unknown: list[str] = []
        for coid in client_order_ids:
            if account != self.account:
                unknown.append(coid)
                continue
            if not self.tracker.knows(coid) or self.tracker.is_open(coid):
                symbol = self.tracker.symbol(coid) if self.tracker.knows(coid) else ""
                with contextlib.suppress(VenueError):
                    snapshot = await self._call(functools.partial(self.lookup, coid, symbol))
                    if snapshot is not None:
                        self.emit(await self._track(snapshot))
            event = self.tracker.latest(coid)
            if event is None:
                unknown.append(coid)
            else:
                latest.append(event)
        return latest, unknown

    # --- commands --------------------------------------------------------------------------------
    async def _modify(self, command: ModifyOrder) -> list[VenueEvent]:
        coid = command.client_order_id
        if not self.tracker.knows(coid):
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
        if not self.tracker.is_open(coid):
            raise OrderRefused(RejectReason.ORDER_NOT_OPEN, "order is not open")
        snapshot = await self._call(lambda: self.amend(command, self.tracker.venue_order_id(coid)))
        return list(self.tracker.modify_applied(command, snapshot, time.time_ns()))

    async def _cancel(self, coid: str) -> list[VenueEvent]:
        if not self.tracker.knows(coid):
            raise OrderRefused(RejectReason.UNKNOWN_ORDER, "no such order")
        if not self.tracker.is_open(coid):
            raise OrderRefused(RejectReason.ORDER_NOT_OPEN, "order is not open")
        self.tracker.cancelling(coid)
        symbol = self.tracker.symbol(coid)
        try:
            snapshot = await self._call(lambda: self.cancel(coid, symbol, self.tracker.venue_order_id(coid)))
        except OrderRefused as exc:
            if exc.reason not in (RejectReason.UNKNOWN_ORDER, RejectReason.ORDER_NOT_OPEN):
                raise
            snapshot = None  # it finished meanwhile: the look-up below says how
        if snapshot is None or snapshot.status not in TERMINAL_STATUSES:
            snapshot = await self._call(lambda: self.lookup(coid, symbol))
        events = list(await self._track(snapshot)) if snapshot is not None else []
        if not events and not self.tracker.is_open(coid):
            raise OrderRefused(RejectReason.ORDER_NOT_OPEN, "order finished before the cancel arrived")
        return events

    async def _cancel_all(self, command: CancelAllOrders) -> list[VenueEvent]:
        events: list[VenueEvent] = []
        cancelled = 0
        for coid in self.tracker.open_orders():
            if command.symbol not in (None, self.tracker.symbol(coid)) or command.side not in (None, self.tracker.side(coid)):
                continue
            if self.tracker.status(coid) is None:
                continue  # never heard of at the venue: nothing to cancel yet
            try:
                events += await self._cancel(coid)
            except OrderRefused:
                if self.tracker.status(coid) is not OrderStatus.CANCELLED:
                    continue  # filled before the cancel arrived, or the venue refused to cancel it
            cancelled += 1  # its `cancelled` event may come later, on the venue's own stream
        return [*events, cancel_all_done(command, cancelled, time.time_ns())]

    def _refused(self, command: OrderCommand, reason: RejectReason, message: str) -> list[VenueEvent]:
        now = time.time_ns()
        if isinstance(command, PlaceOrderGroup):  # each leg not placed yet is rejected, as a place would be
            return [event for leg in command.placed_orders() if not self.tracker.knows(leg.client_order_id)
                    for event in self.tracker.rejected(leg, reason, message, now)]
        if isinstance(command, PlaceOrder):
            if self.tracker.knows(command.client_order_id):  # a genuine duplicate: the order keeps its state
                return [self._command_rejected(command, CommandAction.PLACE, reason, message, now)]
            return list(self.tracker.rejected(command, reason, message, now))
        action = {ModifyOrder: CommandAction.MODIFY, CancelOrder: CommandAction.CANCEL}.get(type(command), CommandAction.CANCEL_ALL)
        return [self._command_rejected(command, action, reason, message, now)]

    def _command_rejected(self, command: OrderCommand, action: CommandAction, reason: RejectReason, message: str,
                          now: int) -> CommandRejected:
        return CommandRejected(
            # named after the command (as the paper venue does): a re-delivery is answered once
            event_id=f"{command_dedupe_id(command)}.rejected.{reason.value}", action=action, venue=self.venue,
            account=self.account, client_order_id=getattr(command, "client_order_id", None),
            request_id=getattr(command, "modify_id", None) or getattr(command, "request_id", None), reason=reason,
            message=message[:1024], ts_event=now, ts_recv=now,
        )

    # --- calls, readiness and health ---------------------------------------------------------------
    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """One venue request through the rate limiter; a busy venue is retried. The wait (the
        venue's retry-after, else the back-off's) holds every request, not only this one."""
        backoff = Backoff(BUSY_BACKOFF)
        for attempt in range(self.settings.busy_retries):
            self._session_gate()
            await self.limiter.acquire()
            try:
                result = await request()
            except VenueBusy as exc:
                if attempt + 1 == self.settings.busy_retries:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else backoff.delay()
                self.limiter.penalize(wait)
                log.warning("venue busy; backing off", extra={"seconds": wait, "error": exc.message})
                continue
            except AuthFailed as exc:
                self._auth_failed(exc)
                raise
            if self._auth_error is not None:
                self._auth_error = None
                self.report_status(ServiceState.READY, "")
            return result
        raise AssertionError("unreachable")

    async def _trading_refusal(self) -> VenueError | None:
        """None when commands may run; waits a while for a reconnect (or a new session) first."""
        if self.session is not None and self.session.blocked:
            return self.session.refusal()
        if self._auth_error is not None:
            return AuthFailed(self._auth_error)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.command_wait):
                await self._ready.wait()
                if self.session is not None:
                    await self.session.usable()
            return None
        if self.session is not None and self.session.blocked:
            return self.session.refusal()
        return VenueBusy("venue connection lost; not reconciled yet")

    def _auth_failed(self, exc: AuthFailed) -> None:
        if isinstance(exc, SessionExpired) and self.session is not None:
            self.session.expired(exc.message)
            return
        if self._auth_error is None:
            log.error("venue refused the credentials", extra={"error": exc.message})
        self._auth_error = exc.message
        self.report_status(ServiceState.DEGRADED, f"auth_failed: {exc.message}")

    async def _connect_and_reconcile(self) -> None:
        """Connect (retrying an unavailable venue), then publish what the venue has that we lack."""

        async def attempt() -> None:
            await self._call(self.connect)
            await self._reconcile_all(history=True)
            await self._read_account(snapshot=True)

        def unavailable(exc: Exception) -> None:
            assert isinstance(exc, VenueError)
            self.report_status(ServiceState.DEGRADED, f"venue unavailable: {exc.message}")

        with contextlib.suppress(AuthFailed):  # reported; commands are refused until the credentials work
            await retry(attempt, on=(VenueBusy, OutcomeUnknown), backoff=Backoff(self.settings.reconnect_delay),
                        on_failure=unavailable)
        if self._auth_error is None and (self.session is None or not self.session.blocked):
            self.report_status(ServiceState.READY, "")
        self._ready.set()

    async def _reconcile_all(self, *, history: bool = False) -> None:
        """Publish what the venue knows and we did not: its open orders, every order we
        think is still working and, with `history`, the orders of the lookback window."""
        now = time.time_ns()
        events: list[VenueEvent] = []
        at_venue = await self._call(self.open_orders)
        if history:
            since = now - int(self.settings.reconcile_lookback * 1e9)
            at_venue += await self._call(lambda: self.recent_orders(since))
        for snapshot in at_venue:
            events += await self._track(snapshot, now)
        seen = {snapshot.client_order_id for snapshot in at_venue}
        for coid in self.tracker.open_orders():
            if coid not in seen:
                found = await self._call(functools.partial(self.lookup, coid, self.tracker.symbol(coid)))
                if found is not None:
                    events += await self._track(found, now)
        if events:
            log.info("reconciled with the venue", extra={"events": len(events)})
            self.emit(events)

    # --- streams -------------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow_orders(self) -> None:
        backoff = Backoff(self.settings.reconnect_delay)
        while True:
            try:
                async for snapshot in self.watch_orders():
                    backoff.reset()
                    events = await self._track(snapshot)
                    if events:
                        self.emit(events)
            except (VenueBusy, OutcomeUnknown, AuthFailed) as exc:
                log.warning("private stream lost; reconciling before trading again", extra={"error": exc.message})
                if await self._session_over(exc):
                    continue  # the new session reconciled
            self._ready.clear()
            await backoff.wait()
            await self._connect_and_reconcile()

    async def _track(self, snapshot: OrderSnapshot, now: int | None = None) -> list[VenueEvent]:
        """The events `snapshot` adds. A fill it reports without its trade (a REST snapshot,
        Bybit's order stream) is first completed from the venue's list of the order's
        trades, so each fill carries the venue's trade id and fee; where the list cannot be
        read, the tracker derives the fill (tracking.py)."""
        if self.tracker.lacks_trade(snapshot):
            with contextlib.suppress(VenueError):
                trades = await self._call(lambda: self.order_trades(snapshot))
                snapshot = msgspec.structs.replace(snapshot, trades=tuple(trades))
        return list(self.tracker.update(snapshot, now or time.time_ns()))

    async def _poll_working_orders(self) -> None:
        """What a stream can miss (an update during a reconnect) the venue still knows."""
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            if self._ready.is_set() and self.tracker.open_orders():
                with contextlib.suppress(VenueError):
                    await self._reconcile_all()

    async def _follow_market(self, stream: MarketStream) -> None:
        backoff = Backoff(self.settings.reconnect_delay)
        lost_at: int | None = None
        while stream.active:
            try:
                async for messages in self.watch_market(stream.kind, stream.symbol):
                    if lost_at is not None:
                        await self.market_data.reconnected(stream, reason="venue stream reconnected")
                        lost_at = None
                        backoff.reset()
                    if not stream.active:  # unsubscribed while awaiting (mypy keeps the loop's narrowing)
                        break  # type: ignore[unreachable]
                    for message in messages:
                        await self.market_data.send(stream, msgspec.structs.replace(message, seq=stream.next_seq()))
            except (VenueBusy, OutcomeUnknown, SessionExpired) as exc:
                if lost_at is None:
                    lost_at = time.time_ns()
                    await self.market_data.gap(stream, gap_start=lost_at, reason=f"venue stream lost: {exc.message}")
                if not await self._session_over(exc):
                    await backoff.wait()
        self._watched.discard((stream.kind, stream.symbol))

