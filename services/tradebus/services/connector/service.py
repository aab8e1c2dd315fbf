"""The connector service: hosts one venue connector on the bus.

Command intake is durable and batched: a batch of routed commands is executed in order,
all resulting events are published to JetStream (pipelined, every ack awaited), and only
then are the commands acknowledged. A crash anywhere in between redelivers the commands;
events carry stable ids, so re-published events are de-duplicated by the stream, and a
re-delivered command the venue says it executed already is skipped (the venue may have
rebuilt itself from its stored events, see journal.py). Commands a crashed process left
unacknowledged are redelivered before any newer one runs.

`tradebus.ctl.reconcile.<venue>` requests are answered by re-publishing each named order's
latest event with its original id, then replying which orders the venue knows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder, encode
from tradebus.schemas.commands import OrderCommand
from tradebus.schemas.control import (
    ListInstruments,
    Reconcile,
    ReconcileReply,
    StreamSubscription,
    Subscribe,
    SubscriptionReply,
    SubscriptionRequest,
)
from tradebus.schemas.events import malformed_command
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, ServiceState
from tradebus.shared.bus import consume_batches
from tradebus.shared.service import RuntimeSettings, Service
from tradebus.shared.topology import Consumer, connector_consumer, ensure_consumer, ensure_streams

from .base import VenueConnector, VenueEvent
from .events import EventPublisher
from .journal import journal_subjects, read_events
from .marketdata import MarketDataPublisher
from .registry import connector_class

log = logging.getLogger(__name__)

_route_decoder = decoder(Family.ROUTE)
_request_decoder = msgspec.json.Decoder(SubscriptionRequest)
_reconcile_decoder = decoder(Family.RECONCILE)


class ConnectorService(Service):
    name = "connector"

    def __init__(self, settings: RuntimeSettings, *, venue: str, venue_config: Any) -> None:
        super().__init__(settings, instance=venue)
        self.venue = venue
        self.venue_config = venue_config
        self.connector: VenueConnector | None = None
        self.events: EventPublisher | None = None
        self.skipped_redeliveries = 0

    async def start(self) -> None:
        assert self.bus is not None
        await ensure_streams(self.bus.js, self.settings.streams)
        consumer = connector_consumer(self.venue)
        await ensure_consumer(self.bus.js, consumer)
        self.events = EventPublisher(self.bus, self.metrics)
        self.spawn(self.events.run(), name="event-publisher")
        market_data = MarketDataPublisher(self.bus, self.venue)
        self.connector = connector_class(self.venue)(
            venue=self.venue, config=self.venue_config, market_data=market_data, emit=self.events.submit,
            read_journal=functools.partial(read_events, self.bus, journal_subjects(self.venue)),
            report_status=self._venue_status,
        )
        await self.connector.start()
        await self.bus.nc.subscribe(subjects.market_data_control(self.venue), cb=self._on_control_request)
        await self.bus.nc.subscribe(subjects.reconcile(self.venue), cb=self._on_reconcile)
        await self._publish_instruments(self.connector.instruments())
        self.spawn(self._consume_commands(consumer), name="route-consumer")

    async def stop(self) -> None:
        if self.connector is not None:
            await self.connector.stop()
        if self.events is not None:
            await self.events.flush()

    def _venue_status(self, state: ServiceState, detail: str) -> None:
        """The venue's health becomes the service's: heartbeats carry it to `tradebus status`."""
        if self.state is not ServiceState.STOPPING:
            self.state = state
        self.detail = detail

    def counters(self) -> dict[str, int]:
        return {
            "market_data_published": self.connector.market_data.published if self.connector else 0,
            "skipped_redeliveries": self.skipped_redeliveries,
        }

    # --- commands -------------------------------------------------------------------------
    async def _consume_commands(self, consumer: Consumer) -> None:
        assert self.bus is not None
        info = await self.bus.js.consumer_info(consumer.stream.name, consumer.durable)
        if info.num_ack_pending:
            # A previous process died holding these commands; JetStream gives them out again
            # only after ack_wait, and running newer commands first could put a client's
            # cancel before its place.
            log.warning(
                "waiting for the commands a previous process left unacknowledged",
                extra={"commands": info.num_ack_pending, "seconds": consumer.ack_wait},
            )
            await asyncio.sleep(consumer.ack_wait)
        await consume_batches(
            self.bus, stream=consumer.stream.name, durable=consumer.durable,
            handler=self._on_commands, stopping=self.stopping,
        )

    async def _on_commands(self, messages: list[Msg]) -> None:
        assert self.events is not None
        self.metrics.received.labels(family="route").inc(len(messages))
        # Submit each command's events as soon as it executed (keeps them in order with the
        # venue's own events), then wait for the whole batch to be stored before acking.
        stored = [self.events.submit(await self._execute(msg)) for msg in messages]
        await asyncio.gather(*stored)
        for msg in messages:
            await msg.ack()

    async def _execute(self, msg: Msg) -> list[VenueEvent]:
        """Decode and execute one routed command; a command that cannot be decoded is
        answered with a rejection, never retried."""
        assert self.connector is not None
        try:
            command: OrderCommand = _route_decoder.decode(msg.data)
        except DecodeError as exc:
            self.metrics.decode_errors.labels(family="route").inc()
            log.warning("undecodable routed command", extra={"subject": msg.subject, "error": str(exc)})
            return self._malformed(msg, str(exc))
        parsed = subjects.parse(msg.subject)
        if (command.venue, command.account) != (parsed.venue, parsed.account):
            return self._malformed(msg, "venue/account in the body differ from the subject")
        # Only a re-delivery can have been executed before: a client's genuine retry arrives
        # as a new message and gets the venue's own answer (a duplicate client order id).
        if msg.metadata.num_delivered > 1 and await self.connector.executed(command):
            self.skipped_redeliveries += 1
            log.info("re-delivered command was executed already", extra={"subject": msg.subject})
            return []
        return await self.connector.execute(command)

    def _malformed(self, msg: Msg, message: str) -> list[VenueEvent]:
        try:
            parsed = subjects.parse(msg.subject)
        except ValueError:
            return []  # no venue/account to answer on; counted and logged by the caller
        return [malformed_command(venue=parsed.venue, account=parsed.account, stream_seq=msg.metadata.sequence.stream,
                                  message=message, now=time.time_ns(), payload=msg.data)]

    # --- reconcile ---------------------------------------------------------------------------
    async def _on_reconcile(self, msg: Msg) -> None:
        self.metrics.received.labels(family="reconcile").inc()
        try:
            request: Reconcile = _reconcile_decoder.decode(msg.data)
        except DecodeError as exc:
            self.metrics.decode_errors.labels(family="reconcile").inc()
            reply = ReconcileReply(known=[], unknown=[], error=str(exc))
        else:
            reply = await self._reconcile(request)
        if msg.reply:
            await msg.respond(encode(reply))

    async def _reconcile(self, request: Reconcile) -> ReconcileReply:
        """Re-publish the venue's latest event of each order with its original id: the
        stream keeps one copy of what it has and stores what it lacks. Reply once stored."""
        assert self.connector is not None and self.events is not None
        events, unknown = await self.connector.reconcile(request.account, request.client_order_ids)
        await self.events.submit(events)
        missing = set(unknown)
        return ReconcileReply(known=[c for c in request.client_order_ids if c not in missing], unknown=unknown)

    # --- market-data control --------------------------------------------------------------
    async def _on_control_request(self, msg: Msg) -> None:
        self.metrics.received.labels(family="md_control").inc()
        try:
            request = _request_decoder.decode(msg.data)
            reply = await self._handle_control(request)
        except DecodeError as exc:
            self.metrics.decode_errors.labels(family="md_control").inc()
            reply = SubscriptionReply(ok=False, subscriptions=self._subscriptions(), error=str(exc))
        if msg.reply:
            await msg.respond(encode(reply))

    async def _handle_control(self, request: SubscriptionRequest) -> SubscriptionReply:
        assert self.connector is not None
        market_data = self.connector.market_data
        listed = [instrument.symbol for instrument in self.connector.instruments()]
        if isinstance(request, ListInstruments):
            return SubscriptionReply(ok=True, subscriptions=self._subscriptions(), instruments=listed)
        wanted = listed if "*" in request.symbols else request.symbols
        known = [symbol for symbol in wanted if symbol in listed]
        unknown = [symbol for symbol in wanted if symbol not in listed]
        kinds = [kind for kind in request.kinds if kind is not MarketDataKind.INSTRUMENT]
        market_data.set_active(known, kinds, isinstance(request, Subscribe))
        if isinstance(request, Subscribe):
            for symbol in known:
                await self.connector.on_subscribed(symbol, kinds)
        log.info("subscriptions changed", extra={"request": request.__struct_config__.tag, "symbols": known})
        return SubscriptionReply(ok=not unknown, subscriptions=self._subscriptions(), unknown_symbols=unknown)

    def _subscriptions(self) -> list[StreamSubscription]:
        assert self.connector is not None
        market_data = self.connector.market_data
        return [
            StreamSubscription(symbol=symbol, kinds=market_data.active_kinds(symbol))
            for symbol in market_data.active_symbols()
        ]

    async def _publish_instruments(self, instruments: list[Any]) -> None:
        assert self.connector is not None
        market_data = self.connector.market_data
        now = time.time_ns()
        for instrument in instruments:
            stream = market_data.stream(MarketDataKind.INSTRUMENT, instrument.symbol)
            await market_data.send(
                stream, msgspec.structs.replace(instrument, seq=stream.next_seq(), ts_event=now, ts_recv=now)
            )
