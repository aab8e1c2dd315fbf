"""The client: one NATS connection, commands published durably, answers read from the bus."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import msgspec
import nats
from nats.aio.msg import Msg

from tradebus.schemas import provenance, subjects
from tradebus.schemas.codecs import DecodeError, convert, decoder, encode, reply_decoder
from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    command_dedupe_id,
)
from tradebus.schemas.control import (
    AggregatePosition,
    GetBalances,
    GetInstruments,
    GetOrder,
    GetPositions,
    InstrumentsReply,
    ListOrders,
    OmsReply,
    VenueBalance,
)
from tradebus.schemas.events import (
    TERMINAL_EVENTS,
    CancelAllDone,
    CommandRejected,
    OrderCancelled,
    OrderEvent,
    answer_identity,
    command_identity,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.market import Instrument, MarketData
from tradebus.schemas.sizing import SizePosition, SizeReply
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import TICK_KINDS, MarketDataKind
from tradebus.shared.busaccess import connect_bus
from tradebus.shared.bustls import TlsFiles, tls_context
from tradebus.shared.credentials import Credentials, load_credentials
from tradebus.shared.pipeline import MSG_ID
from tradebus.shared.sequence import SequenceTracker

from .leases import StreamLease

# By subject family: what a rejection subject carries that is not a rejection is not believed.
_ANSWER_DECODERS = {Family.ORDER_EVENT: decoder(Family.ORDER_EVENT), Family.REJECTION: decoder(Family.REJECTION)}
_market_data = decoder(Family.MARKET_DATA)
_oms_reply: msgspec.json.Decoder[OmsReply] = reply_decoder(Family.OMS_QUERY)
_instruments_reply: msgspec.json.Decoder[InstrumentsReply] = reply_decoder(Family.INSTRUMENTS)
_size_reply: msgspec.json.Decoder[SizeReply] = reply_decoder(Family.SIZING)
_Reply = TypeVar("_Reply", OmsReply, InstrumentsReply, SizeReply)  # the query replies: `ok`, else an `error`


class QueryError(RuntimeError):
    """A service (the order manager, a venue's connector) refused a request or did not answer."""


class Unanswered(QueryError):
    """No service answered the request in time (none running, or too slow)."""


def new_id() -> str:
    """A fresh client order id (or modify / request id)."""
    return uuid.uuid4().hex[:24]


class OrderTicket:
    """A command sent: its answers arrive on `events()`. `duplicate` is True when the bus had
    already stored the same command (a retry): nothing new happens at the venue then, and
    `record()` tells the order's state."""

    def __init__(self, client: Client, command: OrderCommand, duplicate: bool, queue: asyncio.Queue[OrderEvent]) -> None:
        self.client = client
        self.command = command
        self.duplicate = duplicate
        self._queue = queue
        # A group's orders that have no final event yet, and the event that ended the last one.
        self._unanswered = ({order.client_order_id for order in command.orders}
                            if isinstance(command, PlaceOrderGroup) else set())
        self._group_answer: OrderEvent | None = None

    @property
    def client_order_id(self) -> str | None:
        return getattr(self.command, "client_order_id", None)

    async def next_event(self, timeout: float = 30.0) -> OrderEvent:
        """The next event of this command; TimeoutError if none comes within `timeout`."""
        event = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(self.command, PlaceOrderGroup) and self._unanswered:
            if isinstance(event, CommandRejected):
                self._unanswered.clear()
            elif isinstance(event, TERMINAL_EVENTS):
                self._unanswered.discard(event.client_order_id)
            if not self._unanswered:
                self._group_answer = event
        if self.is_answer(event):
            self.client._forget(self.command, self._queue)
        return event

    def is_answer(self, event: OrderEvent) -> bool:
        """Whether `event` fully answers the command (see `events`)."""
        if isinstance(self.command, PlaceOrderGroup):
            return event is self._group_answer
        return _answers_fully(self.command, event)

    async def events(self, *, timeout: float = 30.0) -> AsyncIterator[OrderEvent]:
        """This command's events, until the one that answers it: a final event of a placed
        order (of a group: of each of its orders), the modify's `modified`, the cancel's `cancelled`, the cancel-all's
        `cancel_all_done`, or this command's own refusal (malformed ones included). Raises
        TimeoutError when nothing arrives for `timeout` seconds."""
        while True:
            event = await self.next_event(timeout)
            yield event
            if self.is_answer(event):
                return

    async def record(self) -> OrderRecord | None:
        """The order manager's record of the order (None if it knows none)."""
        if self.client_order_id is None:
            return None
        return await self.client.order(self.command.venue, self.command.account, self.client_order_id)

    async def cancel(self) -> OrderTicket:
        assert self.client_order_id is not None, "a cancel-all has no single order to cancel"
        return await self.client.cancel(self.command.venue, self.command.account, self.client_order_id)


def _answers_fully(command: OrderCommand, event: OrderEvent) -> bool:
    if isinstance(event, (CommandRejected, CancelAllDone)):
        return True  # _belongs let only this command's own answer through
    if isinstance(command, PlaceOrder):
        return isinstance(event, TERMINAL_EVENTS)
    if isinstance(command, ModifyOrder):
        return getattr(event, "modify_id", None) == command.modify_id
    return isinstance(command, CancelOrder) and isinstance(event, OrderCancelled)


def _belongs(command: OrderCommand, event: OrderEvent) -> bool:
    """Whether the ticket of `command` shows `event`: the events of its order (a cancel-all:
    cancellations), and of the answers to commands only the one to `command` itself, matched
    by action and id, so a refused cancel never ends the order's place ticket."""
    if isinstance(event, (CommandRejected, CancelAllDone)):
        return answer_identity(event) == command_identity(command)
    if isinstance(command, CancelAllOrders):
        return isinstance(event, OrderCancelled)
    if isinstance(command, PlaceOrderGroup):
        return getattr(event, "client_order_id", None) in {order.client_order_id for order in command.orders}
    return getattr(event, "client_order_id", None) == command.client_order_id


class Client:
    def __init__(self, nc: nats.NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        # By venue account: its order events and risk's rejections feed the same tickets.
        self._watchers: dict[tuple[str, str], list[tuple[OrderCommand, asyncio.Queue[OrderEvent]]]] = {}
        self._leases: set[StreamLease] = set()

    @classmethod
    async def connect(cls, url: str = "nats://127.0.0.1:4222", *, name: str = "tradebus-client",
                      credentials: str | os.PathLike[str] | Credentials | None = None,
                      tls: TlsFiles | ssl.SSLContext | None = None, **options: Any) -> Client:
        """Connect as `credentials` (a credentials file, or Credentials) over TLS (`tls`: the
        CA, client certificate and key files, or an SSL context) and keep reconnecting after
        a loss (nats-py re-subscribes by itself; commands published while disconnected wait
        in its buffer). ConfigError for an unusable file, BusRefused if the bus turns the
        identity down; a request or command the bus refuses raises PermissionRefused."""
        if credentials is not None and not isinstance(credentials, Credentials):
            credentials = load_credentials(credentials)
        context = tls_context(tls) if isinstance(tls, TlsFiles) else tls
        options = {"connect_timeout": 5, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.5, **options}
        return cls(await connect_bus(url, name=name, credentials=credentials, tls=context, **options))

    async def close(self) -> None:
        for lease in list(self._leases):  # released now rather than left to expire
            await lease.close()
        await self.nc.drain()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- commands -------------------------------------------------------------------------
    async def send(self, command: OrderCommand) -> OrderTicket:
        """Publish a command durably (JetStream, `Nats-Msg-Id` = its dedupe id) and return
        the ticket its events arrive on: the venue's order events and risk's rejections.
        Subscribes first, so no answer can be missed."""
        queue: asyncio.Queue[OrderEvent] = asyncio.Queue()
        venue_account = (command.venue, command.account)
        if venue_account not in self._watchers:
            self._watchers[venue_account] = []
            for subject in subjects.answers(*venue_account):
                await self.nc.subscribe(subject, cb=self._dispatch)
            await self.nc.flush()
        self._watchers[venue_account].append((command, queue))
        ack = await self.js.publish(subjects.command(command.venue, command.account), encode(command),
                                    headers={MSG_ID: command_dedupe_id(command)})
        return OrderTicket(self, command, bool(ack.duplicate), queue)  # nats-py: None when not a duplicate

    def _forget(self, command: OrderCommand, queue: asyncio.Queue[OrderEvent]) -> None:
        """Stop routing events to a ticket that got its answer."""
        watchers = self._watchers.get((command.venue, command.account), [])
        if (command, queue) in watchers:
            watchers.remove((command, queue))

    async def _dispatch(self, msg: Msg) -> None:
        parsed = subjects.parse(msg.subject)  # one of the two subjects `send` subscribed to
        assert parsed.venue is not None and parsed.account is not None  # both name their venue account
        try:
            event = _ANSWER_DECODERS[parsed.family].decode(msg.data)
        except DecodeError:
            return  # a newer producer's event type, or no rejection on the rejection family: not ours to follow
        if provenance.refusal(parsed, event) is not None:
            return  # its publisher may not say it (it names another venue account than its subject)
        for command, queue in self._watchers.get((parsed.venue, parsed.account), []):
            if _belongs(command, event):
                queue.put_nowait(event)

    async def place(self, command: PlaceOrder) -> OrderTicket:
        return await self.send(command)

    async def place_group(self, group: PlaceOrderGroup) -> OrderTicket:
        """Place an order group (bracket, OCO, OTO): its ticket shows the events of every
        order of it, and is answered once each has a final event (or the group is refused
        as a whole: a `command_rejected` naming the group)."""
        return await self.send(group)

    async def modify(self, venue: str, account: str, client_order_id: str, **changes: Any) -> OrderTicket:
        command = convert({"venue": venue, "account": account, "client_order_id": client_order_id,
                           "modify_id": new_id(), "ts_created": time.time_ns(), **changes}, ModifyOrder)
        return await self.send(command)

    async def cancel(self, venue: str, account: str, client_order_id: str, *, cancel_id: str | None = None) -> OrderTicket:
        """Cancel an order. Each cancel has its own id (fresh unless given): pass the id of an
        earlier cancel only to retry that one; a refused cancel can be sent again as a new one."""
        return await self.send(CancelOrder(client_order_id=client_order_id, venue=venue, account=account,
                                           cancel_id=cancel_id or new_id(), ts_created=time.time_ns()))

    async def cancel_all(self, venue: str, account: str, **filters: Any) -> OrderTicket:
        command = convert({"venue": venue, "account": account, "request_id": new_id(),
                           "ts_created": time.time_ns(), **filters}, CancelAllOrders)
        return await self.send(command)

    # --- market data ----------------------------------------------------------------------
    def subscription(self, venue: str, symbols: Sequence[str], kinds: Sequence[MarketDataKind] = TICK_KINDS) -> StreamLease:
        """Interest in some streams of a venue, held while the `async with` block runs: the
        connector publishes them (to this and every other subscriber) until every holder
        has released them or stopped renewing."""
        return StreamLease(self.nc, venue, symbols, kinds)

    async def market_data(
        self, *, venue: str | None = None, kind: MarketDataKind | None = None, symbol: str | None = None,
        tracker: SequenceTracker | None = None,
    ) -> AsyncIterator[MarketData]:
        """Typed market data matching the filters (None = any). Pass a SequenceTracker to
        count messages lost on the way (core NATS is at most once).

        With both `venue` and `symbol`, the venue is also asked to publish the symbol's
        streams (`kind`, or quote, trade, bar and book) for as long as the iteration runs:
        the subscription is renewed in the background and released when the iteration ends
        (or the client closes). QueryError if the venue does not list the symbol. Without
        them, this only listens to what is being published."""
        subscription = await self.nc.subscribe(subjects.market_data_filter(venue, kind, symbol))
        lease = None
        try:
            if venue is not None and symbol is not None:
                lease = StreamLease(self.nc, venue, [symbol], [kind] if kind else TICK_KINDS)
                self._leases.add(lease)
                reply = await lease.open()
                if reply is not None and not reply.ok:
                    raise QueryError(reply.error or f"venue {venue!r} does not list {reply.unknown_symbols}")
            async for msg in subscription.messages:
                try:
                    message = _market_data.decode(msg.data)
                except DecodeError:
                    continue
                if tracker is not None:
                    tracker.observe(msg.subject, message.seq)
                yield message
        finally:
            if lease is not None:
                self._leases.discard(lease)
                await lease.close()
            with contextlib.suppress(nats.errors.Error):  # the client may be closed already
                await subscription.unsubscribe()

    async def instruments(self, venue: str, symbols: Sequence[str] = (), *, timeout: float = 5.0) -> list[Instrument]:
        """The venue's instrument definitions (tick size, lot size, minimums), as its
        connector holds them now: every instrument it lists, or those of `symbols`.
        QueryError if the connector does not answer or does not list one of `symbols`."""
        reply = await self._request(subjects.instruments(venue), GetInstruments(symbols=list(symbols)),
                                    _instruments_reply, f"no connector of venue {venue!r} answered", timeout)
        return reply.instruments

    # --- queries --------------------------------------------------------------------------
    async def _request(self, subject: str, request: msgspec.Struct, reply_type: msgspec.json.Decoder[_Reply],
                       unanswered: str, timeout: float, *, refusal_raises: bool = True) -> _Reply:
        try:
            reply = reply_type.decode((await self.nc.request(subject, encode(request), timeout=timeout)).data)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unanswered(unanswered) from exc
        if not reply.ok and refusal_raises:
            unknown = getattr(reply, "unknown_symbols", None)
            if unknown and not reply.error:
                raise QueryError(f"not listed by the venue: {', '.join(unknown)}")
            raise QueryError(reply.error)
        return reply

    async def _query(self, request: msgspec.Struct, timeout: float = 5.0) -> OmsReply:
        return await self._request(subjects.OMS_QUERY, request, _oms_reply,
                                   "the order manager did not answer (is `oms` running?)", timeout)

    async def order(self, venue: str, account: str, client_order_id: str) -> OrderRecord | None:
        reply = await self._query(GetOrder(venue=venue, account=account, client_order_id=client_order_id))
        return reply.orders[0] if reply.orders else None

    async def order_pages(self, *, venue: str | None = None, account: str | None = None, open_only: bool = False,
                          page_size: int = 1000, group_id: str | None = None) -> AsyncIterator[OmsReply]:
        """The orders the manager knows, newest first, one reply (a page) at a time, until
        none remain; each reply's `total` counts every matching order. Orders created while
        paging are not included; each other order comes exactly once (one whose creation time
        moved back, a place read after its events, would sort again behind the cursor).
        `group_id`: only the orders of that order group."""
        seen: set[tuple[str, str, str]] = set()
        after = None
        while True:
            reply = await self._query(ListOrders(venue=venue, account=account, open_only=open_only, limit=page_size,
                                                 after=after, group_id=group_id))
            fresh = [r for r in reply.orders if (r.venue, r.account, r.client_order_id) not in seen]
            seen.update((r.venue, r.account, r.client_order_id) for r in fresh)
            yield msgspec.structs.replace(reply, orders=fresh)
            if not reply.more:
                return
            after = reply.next_cursor

    async def orders(self, *, venue: str | None = None, account: str | None = None, open_only: bool = False,
                     limit: int = 1000, all: bool = False, group_id: str | None = None) -> list[OrderRecord]:
        """The newest `limit` orders, or with `all=True` every one (paged through); `group_id`:
        only that order group's."""
        found: list[OrderRecord] = []
        async for page in self.order_pages(venue=venue, account=account, open_only=open_only, group_id=group_id,
                                           page_size=1000 if all else min(limit, 10_000)):
            found += page.orders
            if not all and len(found) >= limit:
                return found[:limit]
        return found

    async def positions(self, *, account: str | None = None) -> list[AggregatePosition]:
        return (await self._query(GetPositions(account=account))).positions

    async def balances(self, *, venue: str | None = None, account: str | None = None) -> list[VenueBalance]:
        """Every currency of every venue account, as each venue last reported it."""
        return (await self._query(GetBalances(venue=venue, account=account))).balances

    async def size(self, request: SizePosition, *, timeout: float = 5.0) -> SizeReply:
        """Ask the sizing service how much (`SizeReply.quantity`, with its `reasoning`). A
        refusal is an answer too: `ok` false with its reason code in `refusal`. Unanswered
        if no sizing service runs."""
        return await self._request(subjects.SIZING, request, _size_reply,
                                   "the sizing service did not answer (is `sizing` running?)", timeout,
                                   refusal_raises=False)
