"""The connector service: hosts one venue connector on the bus.

Command intake is durable and batched: a batch of routed commands is executed in order,
all resulting events are published to JetStream (pipelined, every ack awaited), and only
then are the commands acknowledged. A crash anywhere in between redelivers the commands;
events carry stable ids, so re-published events are de-duplicated by the stream, and a
re-delivered command the venue says it executed already is skipped (the venue may have
rebuilt itself from its stored events, see journal.py); a place under a client order id the
venue knows is answered by the venue with that order's state if its terms are the order's,
never with a rejection of the order (base.py `execute`). Commands a crashed process left
unacknowledged are redelivered at once, before any newer one runs (takeover.py), and so are
commands lost on their way to this process (bus.py `consume_batches`). A routed place, group or modify whose
deadline has passed (shared/deadline.py) is refused with `deadline_exceeded` and never
reaches the venue; cancels run however late they are. An order group (`place_group`) goes
to the venue whole if its capabilities hold the kind natively, else every order of it is
rejected `unsupported_order_group`; a refused group is answered per order (`group_refused`).

`tradebus.ctl.reconcile.<venue>` requests are answered by re-publishing each named order's
latest event with its original id, then replying which orders the venue knows. Market-data
subscriptions and instrument queries are subscriptions.py's.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.commands import (
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    command_dedupe_id,
)
from tradebus.schemas.control import Reconcile, ReconcileReply, ServiceStatus, VenueSession
from tradebus.schemas.events import command_refused, group_refused, group_unsupported, malformed_command
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import RejectReason, ServiceState, SessionState
from tradebus.services.settings import Settings
from tradebus.shared.bus import consume_batches
from tradebus.shared.deadline import late_message, routed_deadline
from tradebus.shared.requests import answer_request
from tradebus.shared.service import Service
from tradebus.shared.takeover import restart_from_ack_floor, take_over
from tradebus.shared.topology import Consumer, connector_consumer, ensure_consumer, ensure_streams

from .base import VenueConnector, VenueEvent
from .events import EventPublisher, stored_events_counter
from .heldcancels import HeldCancels, unknown_order
from .journal import journal_subjects, read_events
from .marketdata import MarketDataPublisher
from .subscriptions import SubscriptionDesk
from .venuespecs import venue_spec

log = logging.getLogger(__name__)

_route_decoder = decoder(Family.ROUTE)
_reconcile_decoder = decoder(Family.RECONCILE)


class ConnectorService(Service):
    name = "connector"

    def __init__(self, settings: Settings, *, venue: str, venue_config: Any) -> None:
        super().__init__(settings, instance=venue)
        # Always the venue, whatever `instance` says: risk tells from the heartbeats on
        # tradebus.status.connector.<venue> whether the venue's connector is alive.
        self.instance = venue
        self.venue = venue
        # For routes without a deadline, i.e. routed by a risk service older than deadlines.
        self.default_ttl_ns = settings.risk.time_to_live_ns(None)
        self.venue_config = venue_config
        self.subscription_lease = settings.connector.subscription_lease
        self.held_cancels = HeldCancels(hold=settings.connector.cancel_hold)
        self._executing = asyncio.Lock()  # command batches and held-cancel expiry take turns at the venue
        self.connector: VenueConnector[Any] | None = None
        self.subscriptions: SubscriptionDesk | None = None
        self._answering = False  # subscribed to its request subjects
        self.events: EventPublisher | None = None
        self.skipped_redeliveries = 0
        self.session: VenueSession | None = None  # a venue with daily access tokens: its session (session.py)
        self.redelivered_through = 0  # stream sequences up to it were given to this process or a predecessor (takeover.py)
        self._stored_events = stored_events_counter(self.metrics)
        self._command_seconds = self.metrics.histogram(
            "tradebus_connector_command_seconds", "Time the venue took to carry out one routed command.",
            ("venue", "command"), buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.metrics.counter_reading(
            "tradebus_connector_market_data_published", "Market-data messages (ticks, books, trades, bars) published.",
            {"venue": venue}, lambda: self.connector.market_data.published if self.connector else 0,
        )
        self.metrics.gauge(
            "tradebus_connector_credentials_refused", "1 while the venue refuses this connector's credentials.", ("venue",),
        ).labels(venue=venue).set_function(lambda: float(self.connector is not None and self.connector.credentials_refused))
        # A venue whose session token lasts a day (Zerodha, Fyers) needs a fresh one daily:
        # the credentials are read when the connector is made, and again when its session
        # takes a new token from the secrets file (session.py).
        self._credentials_loaded = self.metrics.gauge(
            "tradebus_connector_credentials_loaded_timestamp_seconds",
            "When this process read the venue credentials it trades with (Unix time; absent for venues without any).",
            ("venue",),
        )

    async def start(self) -> None:
        assert self.bus is not None
        await ensure_streams(self.bus.js, self.settings.streams)
        consumer = connector_consumer(self.venue)
        await ensure_consumer(self.bus.js, consumer)
        self.redelivered_through = await take_over(self.bus, consumer, heartbeats=subjects.status(self.name, self.venue),
                                                   stopping=self.stopping)
        self.events = EventPublisher(self.bus, self.metrics, stored=self._stored_events)
        self.spawn(self.events.run(), name="event-publisher")
        market_data = MarketDataPublisher(self.bus, self.venue)
        spec = venue_spec(self.venue)
        self.connector = spec.connector_class()(
            venue=self.venue, config=self.venue_config, market_data=market_data, emit=self.events.submit,
            read_journal=functools.partial(read_events, self.bus, journal_subjects(self.venue),
                                           on_unreadable=self.quarantine.hold),
            report_status=self._venue_status, report_session=self._venue_session,
        )
        if spec.needs_credentials:
            self._credentials_loaded.labels(venue=self.venue).set(time.time())
        await self.connector.start()
        self.subscriptions = SubscriptionDesk(self.connector, self.quarantine, lease=self.subscription_lease)
        await self.bus.nc.subscribe(subjects.market_data_control(self.venue), cb=self.subscriptions.on_subscription_request)
        await self.bus.nc.subscribe(subjects.instruments(self.venue), cb=self.subscriptions.on_instruments_request)
        await self.bus.nc.subscribe(subjects.reconcile(self.venue), cb=self._on_reconcile)
        await self.bus.nc.flush()  # registered at the server: requests get answers from now on
        self._answering = True
        await self.subscriptions.publish_instruments(self.connector.instruments())
        self.spawn(self.subscriptions.expire_leases(), name="subscription-leases")
        self.spawn(self._consume_commands(consumer), name="route-consumer")
        self.spawn(self._tend_held_cancels(consumer), name="held-cancels")

    async def stop(self) -> None:
        if self.connector is not None:
            await self.connector.stop()
        if self.events is not None:
            await self.events.flush()

    def _venue_status(self, state: ServiceState, detail: str) -> None:
        """The venue's health becomes the service's: heartbeats carry it to `tradebus status`.
        A venue ready before `start` returned leaves the service STARTING: it is ready only
        once its request subjects are subscribed (the service base promotes it then)."""
        if self.state is ServiceState.STOPPING:
            pass
        elif state is ServiceState.READY and not self._answering:
            self.state = ServiceState.STARTING
        else:
            self.state = state
        self.detail = detail

    def _venue_session(self, session: VenueSession) -> None:
        """On the bus at once, not at the next heartbeat: a dashboard sees an expiry when it happens."""
        self.session = session
        if session.state is SessionState.REAUTHENTICATED:  # a new token was read (the SessionTokenExpiring alert's clock)
            self._credentials_loaded.labels(venue=self.venue).set(time.time())
        self.spawn(self._publish_status(), name="session-status")

    def status(self) -> ServiceStatus:
        return msgspec.structs.replace(super().status(), session=self.session)

    def counters(self) -> dict[str, int]:
        return {
            "market_data_published": self.connector.market_data.published if self.connector else 0,
            "subscription_leases": self.connector.market_data.interest.leases() if self.connector else 0,
            "skipped_redeliveries": self.skipped_redeliveries,
            "held_cancels": len(self.held_cancels),
        }

    # --- commands -------------------------------------------------------------------------
    async def _consume_commands(self, consumer: Consumer) -> None:
        assert self.bus is not None
        await consume_batches(
            self.bus, stream=consumer.stream.name, durable=consumer.durable,
            handler=self._on_commands, stopping=self.stopping,
            on_lost_deliveries=functools.partial(self._deliver_lost_again, consumer),
        )

    async def _deliver_lost_again(self, consumer: Consumer) -> None:
        """Commands lost on their way here come again first (takeover.py); any of them this
        process was given before counts as a re-delivery."""
        assert self.bus is not None
        delivered = await restart_from_ack_floor(self.bus, consumer, "commands lost on the way: starting again "
                                                                     "from the ack floor")
        self.redelivered_through = max(self.redelivered_through, delivered)

    async def _on_commands(self, messages: list[Msg]) -> None:
        assert self.events is not None and self.connector is not None
        self.metrics.received.labels(family="route").inc(len(messages))
        async with self._executing:
            # Submit each command's events as soon as it executed (keeps them in order with the
            # venue's own events), then wait for the whole batch to be stored before acking.
            # A held cancel is acknowledged once it is answered.
            stored, answered = [], []
            for msg in messages:
                command, events, held = await self._execute(msg)
                stored.append(self.events.submit(events))
                if not held:
                    answered.append(msg)
                for place in _places(command):
                    cancel = self.held_cancels.release(place.account, place.client_order_id)
                    if cancel is not None:
                        log.info("held cancel executed after its place", extra={"client_order_id": place.client_order_id})
                        stored.append(self.events.submit(await self.connector.execute(cancel.command)))
                        answered.append(cancel.msg)
            await self._store_and_ack(stored, answered)

    @staticmethod
    async def _store_and_ack(stored: list[asyncio.Future[None]], answered: list[Msg]) -> None:
        await asyncio.gather(*stored)
        for msg in answered:
            await msg.ack()

    async def _execute(self, msg: Msg) -> tuple[OrderCommand | None, list[VenueEvent], bool]:
        """Decode and execute one routed command: (the command, its events, whether it is a
        cancel held for its place). A command that cannot be decoded is answered with a
        rejection, never retried."""
        assert self.connector is not None
        try:
            parsed = subjects.parse(msg.subject)
        except ValueError as exc:  # nobody to answer: quarantined, and acked with its batch
            self.quarantine.hold("route", msg.subject, msg.data, exc)
            return None, [], False
        try:
            command: OrderCommand = _route_decoder.decode(msg.data)
        except DecodeError as exc:
            self.quarantine.hold("route", msg.subject, msg.data, exc)
            return None, self._malformed(msg, parsed.venue, parsed.account, str(exc)), False
        if (command.venue, command.account) != (parsed.venue, parsed.account):
            return None, self._malformed(msg, parsed.venue, parsed.account,
                                         "venue/account in the body differ from the subject"), False
        if command.account not in self.connector.accounts:
            # A remote connector holds the credentials of its own venue account(s) only:
            # executing another account's command there would trade the wrong account.
            return command, _refused(command, RejectReason.UNKNOWN_ACCOUNT, time.time_ns(),
                                     f"this {command.venue} connector trades "
                                     f"{', '.join(sorted(self.connector.accounts))}, not {command.account}"), False
        # Only a re-delivery can have been executed before: a client's genuine retry arrives
        # as a new message and gets the venue's own answer (a duplicate client order id).
        # A re-delivery can come as a first delivery: of the new consumer after a takeover,
        # or after a nats-server restart that lost the consumer's state (its count starts
        # over). Stream sequences are never reused, so any sequence this process or its
        # predecessor was given already is a re-delivery.
        # A place the venue holds that slips through anyway is recognized by `execute` by its
        # client order id and terms, and answered with the order's state.
        metadata = msg.metadata
        redelivered = metadata.num_delivered > 1 or metadata.sequence.stream <= self.redelivered_through
        self.redelivered_through = max(self.redelivered_through, metadata.sequence.stream)
        if redelivered and await self.connector.executed(command):
            self.skipped_redeliveries += 1
            log.info("re-delivered command was executed already", extra={"subject": msg.subject})
            return command, [], False
        if isinstance(command, (PlaceOrder, PlaceOrderGroup, ModifyOrder)):
            now = time.time_ns()
            deadline = routed_deadline(msg, self.default_ttl_ns)
            if now > deadline:
                log.warning("routed command past its deadline refused", extra={"subject": msg.subject})
                return command, _refused(command, RejectReason.DEADLINE_EXCEEDED, now, late_message(now, deadline)), False
        if isinstance(command, PlaceOrderGroup) and command.kind not in self.connector.capabilities.order_groups:
            return command, list(group_unsupported(command, f"{self.venue} holds no {command.kind.value} groups "
                                                            "natively", time.time_ns())), False
        with self._command_seconds.labels(venue=self.venue, command=str(command.__struct_config__.tag)).time():
            events = await self.connector.execute(command)
        if isinstance(command, CancelOrder):
            refusal = unknown_order(events, command)
            if refusal is not None and self.held_cancels.hold(msg, command):
                log.info("cancel held for its place", extra={"client_order_id": command.client_order_id})
                return command, [event for event in events if event is not refusal], True
        return command, events, False

    def _malformed(self, msg: Msg, venue: str | None, account: str | None, message: str) -> list[VenueEvent]:
        assert venue is not None and account is not None  # a route subject names both
        return [malformed_command(venue=venue, account=account, stream_seq=msg.metadata.sequence.stream,
                                  message=message, now=time.time_ns(), payload=msg.data)]

    async def _tend_held_cancels(self, consumer: Consumer) -> None:
        """Forever: answer the held cancels whose place did not come in time with what the
        venue says now (`unknown_order`, unless it learned of the order meanwhile), and keep
        the server from redelivering the others."""
        assert self.connector is not None and self.events is not None
        progress_every = max(1, int(consumer.ack_wait / 3))
        for tick in itertools.count(1):
            await asyncio.sleep(1.0)
            async with self._executing:
                expired = self.held_cancels.expired()
                stored = [self.events.submit(await self.connector.execute(held.command)) for held in expired]
                await self._store_and_ack(stored, [held.msg for held in expired])
                if expired:
                    log.warning("held cancels answered: their place never came", extra={"cancels": len(expired)})
                if tick % progress_every == 0:
                    for msg in self.held_cancels.messages():
                        await msg.in_progress()

    # --- reconcile ---------------------------------------------------------------------------
    async def _on_reconcile(self, msg: Msg) -> None:
        await answer_request(msg, quarantine=self.quarantine, family="reconcile", decoder=_reconcile_decoder,
                             handle=self._reconcile, refuse=lambda error: ReconcileReply(known=[], unknown=[], error=error))

    async def _reconcile(self, request: Reconcile) -> ReconcileReply:
        """Re-publish the venue's latest event of each order with its original id: the
        stream keeps one copy of what it has and stores what it lacks. Reply once stored."""
        assert self.connector is not None and self.events is not None
        events, unknown = await self.connector.reconcile(request.account, request.client_order_ids)
        await self.events.submit(events)
        missing = set(unknown)
        return ReconcileReply(known=[c for c in request.client_order_ids if c not in missing], unknown=unknown)


def _refused(command: OrderCommand, reason: RejectReason, now: int, message: str) -> list[VenueEvent]:
    """The connector's answer to a routed command it does not hand to the venue, named after
    the command (a re-delivery is answered once): a group's, one rejection per order."""
    event_id = f"{command_dedupe_id(command)}.rejected.{reason.value}"
    if isinstance(command, PlaceOrderGroup):
        return list(group_refused(command, event_id=event_id, reason=reason, message=message, now=now))
    return [command_refused(command, event_id=event_id, reason=reason, message=message, now=now)]


def _places(command: OrderCommand | None) -> list[PlaceOrder]:
    """The orders a command placed (a group's every order): a cancel held for one runs now."""
    if isinstance(command, PlaceOrderGroup):
        return command.placed_orders()
    return [command] if isinstance(command, PlaceOrder) else []
