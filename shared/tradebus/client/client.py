"""The client: one NATS connection, commands published durably, answers read from the bus."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats
from nats.aio.msg import Msg

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, convert, decoder, encode, reply_decoder
from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    command_dedupe_id,
)
from tradebus.schemas.control import AggregatePosition, GetOrder, GetPositions, ListOrders, OmsReply
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
from tradebus.schemas.market import MarketData
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.bus import MSG_ID
from tradebus.shared.sequence import SequenceTracker

_events = decoder(Family.ORDER_EVENT)
_market_data = decoder(Family.MARKET_DATA)
_oms_reply = reply_decoder(Family.OMS_QUERY)


class QueryError(RuntimeError):
    """The order manager refused a query or did not answer."""


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

    @property
    def client_order_id(self) -> str | None:
        return getattr(self.command, "client_order_id", None)

    async def next_event(self, timeout: float = 30.0) -> OrderEvent:
        """The next event of this command; TimeoutError if none comes within `timeout`."""
        event = await asyncio.wait_for(self._queue.get(), timeout)
        if _answers_fully(self.command, event):
            self.client._forget(self.command, self._queue)
        return event

    def is_answer(self, event: OrderEvent) -> bool:
        """Whether `event` fully answers the command (see `events`)."""
        return _answers_fully(self.command, event)

    async def events(self, *, timeout: float = 30.0) -> AsyncIterator[OrderEvent]:
        """This command's events, until the one that answers it: a final event of a placed
        order, the modify's `modified`, the cancel's `cancelled`, the cancel-all's
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
    return getattr(event, "client_order_id", None) == command.client_order_id


class Client:
    def __init__(self, nc: nats.NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self._watchers: dict[str, list[tuple[OrderCommand, asyncio.Queue[OrderEvent]]]] = {}

    @classmethod
    async def connect(cls, url: str = "nats://127.0.0.1:4222", *, name: str = "tradebus-client", **options: Any) -> Client:
        """Connect and keep reconnecting after a loss (nats-py re-subscribes by itself;
        commands published while disconnected wait in its buffer)."""
        options = {"connect_timeout": 5, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.5, **options}
        return cls(await nats.connect(url, name=name, **options))

    async def close(self) -> None:
        await self.nc.drain()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- commands -------------------------------------------------------------------------
    async def send(self, command: OrderCommand) -> OrderTicket:
        """Publish a command durably (JetStream, `Nats-Msg-Id` = its dedupe id) and return
        the ticket its events arrive on. Subscribes first, so no answer can be missed."""
        queue: asyncio.Queue[OrderEvent] = asyncio.Queue()
        subject = subjects.order_events(command.venue, command.account)
        if subject not in self._watchers:
            self._watchers[subject] = []
            await self.nc.subscribe(subject, cb=self._dispatch)
            await self.nc.flush()
        watcher = (command, queue)
        self._watchers[subject].append(watcher)
        ack = await self.js.publish(subjects.command(command.venue, command.account), encode(command),
                                    headers={MSG_ID: command_dedupe_id(command)})
        return OrderTicket(self, command, ack.duplicate, queue)

    def _forget(self, command: OrderCommand, queue: asyncio.Queue[OrderEvent]) -> None:
        """Stop routing events to a ticket that got its answer."""
        watchers = self._watchers.get(subjects.order_events(command.venue, command.account), [])
        if (command, queue) in watchers:
            watchers.remove((command, queue))

    async def _dispatch(self, msg: Msg) -> None:
        try:
            event = _events.decode(msg.data)
        except DecodeError:
            return  # a newer producer's event type: not one of ours to follow
        for command, queue in self._watchers.get(msg.subject, []):
            if _belongs(command, event):
                queue.put_nowait(event)

    async def place(self, command: PlaceOrder) -> OrderTicket:
        return await self.send(command)

    async def modify(self, venue: str, account: str, client_order_id: str, **changes: Any) -> OrderTicket:
        command = convert({"venue": venue, "account": account, "client_order_id": client_order_id,
                           "modify_id": new_id(), "ts_created": time.time_ns(), **changes}, ModifyOrder)
        return await self.send(command)

    async def cancel(self, venue: str, account: str, client_order_id: str) -> OrderTicket:
        return await self.send(CancelOrder(client_order_id=client_order_id, venue=venue, account=account,
                                           ts_created=time.time_ns()))

    async def cancel_all(self, venue: str, account: str, **filters: Any) -> OrderTicket:
        command = convert({"venue": venue, "account": account, "request_id": new_id(),
                           "ts_created": time.time_ns(), **filters}, CancelAllOrders)
        return await self.send(command)

    # --- market data ----------------------------------------------------------------------
    async def market_data(
        self, *, venue: str | None = None, kind: MarketDataKind | None = None, symbol: str | None = None,
        tracker: SequenceTracker | None = None,
    ) -> AsyncIterator[MarketData]:
        """Typed market data matching the filters (None = any). Pass a SequenceTracker to
        count messages lost on the way (core NATS is at most once)."""
        subscription = await self.nc.subscribe(subjects.market_data_filter(venue, kind, symbol))
        try:
            async for msg in subscription.messages:
                try:
                    message = _market_data.decode(msg.data)
                except DecodeError:
                    continue
                if tracker is not None:
                    tracker.observe(msg.subject, message.seq)
                yield message
        finally:
            await subscription.unsubscribe()

    # --- queries --------------------------------------------------------------------------
    async def _query(self, request: msgspec.Struct, timeout: float = 5.0) -> OmsReply:
        try:
            reply = _oms_reply.decode((await self.nc.request(subjects.OMS_QUERY, encode(request), timeout=timeout)).data)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise QueryError("the order manager did not answer (is `oms` running?)") from exc
        if not reply.ok:
            raise QueryError(reply.error)
        return reply

    async def order(self, venue: str, account: str, client_order_id: str) -> OrderRecord | None:
        reply = await self._query(GetOrder(venue=venue, account=account, client_order_id=client_order_id))
        return reply.orders[0] if reply.orders else None

    async def orders(self, *, venue: str | None = None, account: str | None = None, open_only: bool = False) -> list[OrderRecord]:
        return (await self._query(ListOrders(venue=venue, account=account, open_only=open_only))).orders

    async def positions(self, *, account: str | None = None) -> list[AggregatePosition]:
        return (await self._query(GetPositions(account=account))).positions
