"""The order manager service: the state of every order, in the KV bucket `tradebus_orders`.

Start-up loads the bucket, then two durable consumers feed the state: ROUTE (a place
command creates its order's record) and EVENTS (order events drive the state machine,
position updates the positions). Each batch is applied, every record it changed is written
to the bucket (puts pipelined), and only then are its messages acknowledged, so a crash
redelivers whatever the bucket may lack. Puts a bus restart cut off are written again once the
bus is back (`_write`). Re-applying a message is harmless: records
remember the last stream sequence they applied, and times come from the messages, not from
the clock.

Each stream is applied in stream order, as `tradebus oms rebuild` replays it. JetStream
redelivers an unacknowledged message only after the consumer's ack_wait, behind newer
ones: so before consuming, start-up applies itself, in order, what the consumer delivered
to a predecessor that did not acknowledge it (`_catch_up`); the redeliveries then find
their records past them. Within one run a batch whose bucket write failed is already in
memory, so its redelivery is ignored the same way.

An event its subject's publisher may not state (a connector's event about another venue or
account, anything but a rejection on risk's rejection family: schemas/provenance.py) is
never applied: it is quarantined with its reason (dead-letter header `Tradebus-Reason`) and
counted in `tradebus_oms_refused_events_total{reason}`.

Queries are answered from memory on `tradebus.ctl.oms` (fleet services and operators: every
account) and, with a tenants file, on `tradebus.ctl.oms.tenant.<tenant>` (what that tenant's
clients send to `tradebus.ctl.oms`, mapped there by the server): that tenant's accounts only.

Orders left in pending_new without a venue answer for `stuck_after` seconds are named in a
`Reconcile` request to their venue's connector, with a growing pause per order so that a
dead connector is not hammered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo
from nats.js.kv import KeyValue

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, encode, reply_decoder
from tradebus.schemas.control import OmsReply, OmsRequest, Reconcile, ReconcileReply
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.subjects import Family
from tradebus.services.settings import Settings
from tradebus.shared.bus import StoredMessage, consume_batches, stored_message
from tradebus.shared.direct import read_bucket, read_stored
from tradebus.shared.pipeline import AckLost, Outages, publish_pipelined
from tradebus.shared.service import Service, default_instance
from tradebus.shared.takeover import restart_from_ack_floor
from tradebus.shared.tenants import Tenant, load_tenants, tenant_named
from tradebus.shared.topology import (
    OMS_EVENTS,
    OMS_ROUTES,
    ORDERS_BUCKET,
    Consumer,
    ensure_bucket,
    ensure_consumer,
    ensure_streams,
)

from .book import OmsState, Refused, Undecodable

log = logging.getLogger(__name__)

NS = 1_000_000_000
RECONCILE_TIMEOUT = 2.0  # seconds a connector has to answer a reconcile request
MAX_RECONCILE_PAUSE = 60.0  # seconds; the longest wait between two requests about one order
MAX_RECONCILE_IDS = 1000  # what one Reconcile may carry (the contract's limit)
CATCH_UP_ROUNDS = 5  # looks at a consumer's delivered position before consuming (see _catch_up)

_query_decoder = msgspec.json.Decoder(OmsRequest)
_reconcile_reply_decoder = reply_decoder(Family.RECONCILE)

Apply = Callable[[str, bytes, int, int], list[str]]  # OmsState.apply_*_message


async def put_entries(kv: KeyValue, state: OmsState, keys: Iterable[str], *, outages: Outages | None = None) -> None:
    """Write these keys' current values: a KV put is a JetStream publish to the key's
    subject, so they go out pipelined with their acks awaited together (`kv.put` would be a
    request/reply round trip each). nats-py's KeyValue has no public handle on its subject
    prefix and context. No key check: position keys carry `~` and `:` from the symbol
    encoding, which nats-py's check refuses although the server accepts them. With
    `outages`, a bus break raises AckLost once the bus is back (puts carry no Nats-Msg-Id)."""
    prefix = kv._pre  # "$KV.<bucket>."
    await publish_pipelined(kv._js, [(prefix + key, state.encoded(key), None) for key in keys], outages=outages)


class OmsService(Service):
    name = "oms"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, instance=default_instance())
        self.config = settings.oms
        self.tenants = load_tenants(self.config.tenants_file) if self.config.tenants_file else ()
        self.book = OmsState()
        self.kv: KeyValue | None = None
        # One write to the bucket at a time, each taking every record's value as it is then:
        # the two consumers touch the same records, and the bucket must never receive an
        # older value after a newer one.
        self._write_lock = asyncio.Lock()
        self._unwritten: set[str] = set()  # changed in memory, not yet in the bucket
        self._next_reconcile: dict[str, tuple[int, int]] = {}  # order key -> (requests sent, not before ns)
        self._stuck = 0
        self._reconcile_sent = 0
        self._reconcile_requests = self.metrics.counter(
            "tradebus_oms_reconcile_requests_total", "Reconcile requests sent to connectors.", ("venue", "result")
        )
        self._stuck_gauge = self.metrics.gauge(
            "tradebus_oms_stuck_orders", "Orders in pending_new without a venue answer for longer than stuck_after."
        )
        self._refused = self.metrics.counter(
            "tradebus_oms_refused_events_total", "Events refused for their provenance (quarantined, never applied).",
            ("reason",)
        )
        self._anomalies = self.metrics.counter(
            "tradebus_oms_anomalies_total", "Illegal order transitions seen (recorded on the order, never applied)."
        )

    async def start(self) -> None:
        assert self.bus is not None
        js = self.bus.js
        await ensure_streams(js, self.settings.streams)
        for consumer in (OMS_ROUTES, OMS_EVENTS):
            await ensure_consumer(js, consumer)
        self.kv = await ensure_bucket(js, ORDERS_BUCKET, self.settings.streams)
        await self._load()
        feeds = ((OMS_ROUTES, "route", self.book.apply_route_message),
                 (OMS_EVENTS, "event", self.book.apply_event_message))
        for feed in feeds:
            await self._catch_up(*feed)
        await self.bus.nc.subscribe(subjects.OMS_QUERY, queue="oms", cb=self._on_query)
        if self.config.tenants_file:
            await self.bus.nc.subscribe(subjects.OMS_TENANT_QUERIES, queue="oms", cb=self._on_tenant_query)
        for feed in feeds:
            self._consume(*feed)
        self.spawn(self._watch_stuck_orders(), name="stuck-orders")

    def counters(self) -> dict[str, int]:
        return {
            "orders": len(self.book.orders),
            "stuck_orders": self._stuck,
            "anomalies": self.book.anomalies,
            "reconcile_requests": self._reconcile_sent,
        }

    async def _load(self) -> None:
        assert self.bus is not None
        for key, value in await read_bucket(self.bus.nc, ORDERS_BUCKET):
            try:
                self.book.load(key, value)
            except Undecodable as exc:  # `tradebus oms rebuild --apply` repairs it from the streams
                self.quarantine.hold("orders_bucket", f"$KV.{ORDERS_BUCKET}.{key}", value, exc)
        log.info("state loaded", extra={"orders": len(self.book.orders), "positions": len(self.book.positions)})

    # --- the streams ---------------------------------------------------------------------
    async def _catch_up(self, consumer: Consumer, family: str, apply: Apply) -> None:
        """Apply, in stream order, the messages between the consumer's ack floor and its
        last delivery: those a predecessor received and may not have written (killed
        mid-batch). Looked at again afterwards, since a pull request of a killed
        predecessor may still be delivering for a moment."""
        assert self.bus is not None
        applied = 0
        for _ in range(CATCH_UP_ROUNDS):
            info: ConsumerInfo = await self.bus.js.consumer_info(consumer.stream.name, consumer.durable)
            assert info.ack_floor is not None and info.delivered is not None
            first, last = max(info.ack_floor.stream_seq, applied) + 1, info.delivered.stream_seq
            if first > last:
                break
            chunk: list[StoredMessage] = []
            async for message in read_stored(self.bus.nc, consumer.stream.name, consumer.filter_subject, first, last):
                chunk.append(message)
                if len(chunk) == self.config.batch_size:
                    await self._apply(chunk, family, apply)
                    chunk = []
            await self._apply(chunk, family, apply)
            log.info("caught up with unacknowledged deliveries", extra={"stream": consumer.stream.name,
                                                                       "from_seq": first, "to_seq": last})
            applied = last

    def _consume(self, consumer: Consumer, family: str, apply: Apply) -> None:
        assert self.bus is not None
        async def handler(messages: list[Msg]) -> None:
            await self._apply([stored_message(msg) for msg in messages], family, apply)
            for msg in messages:
                await msg.ack()

        self.spawn(
            consume_batches(
                self.bus, stream=consumer.stream.name, durable=consumer.durable, handler=handler,
                batch=self.config.batch_size, stopping=self.stopping,
                # an event lost on its way here comes again before newer ones: a modify applied
                # after its order's cancel would be ignored and the record would differ
                on_lost_deliveries=functools.partial(restart_from_ack_floor, self.bus, consumer,
                                                     "events lost on the way: starting again from the ack floor"),
            ),
            name=f"{family}-consumer",
        )

    async def _apply(self, messages: list[StoredMessage], family: str, apply: Apply) -> None:
        """Apply (no await in between, so no other batch interleaves), then have every
        changed record written. A failed write raises (the caller does not ack): the batch
        is redelivered, and its keys stay in `_unwritten`, since re-applying the same
        messages changes nothing and would not name them again."""
        self.metrics.received.labels(family=family).inc(len(messages))
        for message in messages:
            self._unwritten.update(self._apply_one(message, family, apply))
        await self._write()

    async def _write(self) -> None:
        """Return once every change applied so far is in the bucket. Batches that arrive
        while a write runs share the next one, so under load one put carries several changes
        of a key (an order's route and its events, its accepted and cancelled events)."""
        assert self.kv is not None and self.bus is not None
        async with self._write_lock:
            while self._unwritten:  # else the write that held the lock took our changes too
                writing, self._unwritten = self._unwritten, set()
                try:
                    await put_entries(self.kv, self.book, writing, outages=self.bus.outages)
                    return
                except AckLost:
                    # A bus break cut off acks, and the bus is back. The puts carry no
                    # Nats-Msg-Id, so they are not published again as they were; their keys
                    # are written again with their values as they are now. That is safe: the
                    # bucket keeps a key's last value, and no newer value can have been
                    # written meanwhile (the lock).
                    log.warning("bucket writes cut off by a bus break; writing them again", extra={"keys": len(writing)})
                    self._unwritten |= writing
                except BaseException:
                    self._unwritten |= writing
                    raise

    def _apply_one(self, message: StoredMessage, family: str, apply: Apply) -> list[str]:
        """The keys `message` changed. Poison is quarantined and acked with its batch, never
        retried: an unreadable message, or one the state cannot take (which is a bug, but
        must not hold up every later message)."""
        anomalies_before = self.book.anomalies
        try:
            keys = apply(message.subject, message.data, message.seq, message.time)
        except Refused as exc:
            self._refused.labels(reason=exc.reason.value).inc()
            self.quarantine.hold(family, message.subject, message.data, exc, reason=exc.reason.value)
            return []
        except Undecodable as exc:
            self.quarantine.hold(family, message.subject, message.data, exc)
            return []
        except Exception as exc:
            self.metrics.handler_errors.labels(family=family).inc()
            log.exception("message could not be applied", extra={"subject": message.subject})
            self.quarantine.hold(family, message.subject, message.data, repr(exc))
            return []
        if self.book.anomalies > anomalies_before and keys:
            self._anomalies.inc()
            log.warning("illegal order transition recorded, not applied", extra={
                "order": keys[-1], "anomaly": self.book.orders[keys[-1]].anomalies[-1], "seq": message.seq})
        return keys

    # --- queries -------------------------------------------------------------------------
    async def _on_query(self, msg: Msg) -> None:
        await self._answer(msg, "oms_query", None)

    async def _on_tenant_query(self, msg: Msg) -> None:
        """A tenant's query: the subject's last token names the tenant (the server wrote it,
        not the client). A tenant the file does not list is refused."""
        name = msg.subject.rpartition(".")[2]
        tenant = tenant_named(self.tenants, name)
        await self._answer(msg, "oms_tenant_query", tenant or f"tenant {name!r} is not in the tenants file")

    async def _answer(self, msg: Msg, family: str, tenant: Tenant | str | None) -> None:
        """Answer a query; `tenant`: whose view (None: the fleet's), or why it is refused."""
        assert self.bus is not None
        self.metrics.received.labels(family=family).inc()
        try:
            request = _query_decoder.decode(msg.data)
        except DecodeError as exc:
            self.quarantine.hold(family, msg.subject, msg.data, exc)
            reply = OmsReply(ok=False, error=str(exc)[:1024])
        else:
            reply = (OmsReply(ok=False, error=tenant) if isinstance(tenant, str)
                     else self.book.answer(request, self.bus.nc.max_payload, tenant))
        if not msg.reply:
            return
        payload = encode(reply)
        if len(payload) > self.bus.nc.max_payload:  # a page holds at least one order, however big
            payload = encode(OmsReply(ok=False, error=f"reply of {len(payload)} bytes exceeds the bus limit"))
        await msg.respond(payload)

    # --- stuck orders --------------------------------------------------------------------
    async def _watch_stuck_orders(self) -> None:
        while True:
            await asyncio.sleep(self.config.reconcile_interval)
            await self._reconcile_stuck(time.time_ns())

    async def _reconcile_stuck(self, now: int) -> None:
        stuck = self.book.stuck_orders(now - round(self.config.stuck_after * NS))
        self._stuck = len(stuck)
        self._stuck_gauge.set(len(stuck))
        # Forget the pauses of orders that got their answer.
        self._next_reconcile = {key: pause for key, pause in self._next_reconcile.items() if key in stuck}
        due: dict[tuple[str, str], list[OrderRecord]] = {}
        for key, record in stuck.items():
            if self._next_reconcile.get(key, (0, 0))[1] <= now:
                due.setdefault((record.venue, record.account), []).append(record)
                self._pause(key, now)
        await asyncio.gather(*(
            self._request_reconcile(venue, account, [r.client_order_id for r in records[i : i + MAX_RECONCILE_IDS]])
            for (venue, account), records in due.items()
            for i in range(0, len(records), MAX_RECONCILE_IDS)
        ))

    def _pause(self, key: str, now: int) -> None:
        """Double the wait before the next request about this order, up to a ceiling."""
        sent = self._next_reconcile.get(key, (0, 0))[0] + 1
        pause = min(self.config.stuck_after * 2**sent, MAX_RECONCILE_PAUSE)
        self._next_reconcile[key] = (sent, now + round(pause * NS))

    async def _request_reconcile(self, venue: str, account: str, client_order_ids: list[str]) -> None:
        """Ask; never raise: no connector, a slow one or a garbled answer is logged and counted."""
        assert self.bus is not None
        request = Reconcile(account=account, client_order_ids=client_order_ids)
        try:
            answer = await self.bus.request(subjects.reconcile(venue), encode(request), timeout=RECONCILE_TIMEOUT)
            reply: ReconcileReply = _reconcile_reply_decoder.decode(answer.data)
        except nats.errors.NoRespondersError:
            result = "no_responders"
        except (TimeoutError, nats.errors.TimeoutError):
            result = "timeout"
        except nats.errors.Error as exc:  # e.g. reconnecting: the next round asks again
            log.warning("reconcile request failed", extra={"venue": venue, "error": repr(exc)})
            result = "bus_error"
        except DecodeError as exc:
            self.quarantine.hold("reconcile_reply", subjects.reconcile(venue), answer.data, exc)
            result = "bad_reply"
        else:
            result = "error" if reply.error else "ok"
            if reply.unknown or reply.error:
                log.warning("connector could not reconcile every order", extra={
                    "venue": venue, "account": account, "unknown": reply.unknown, "error": reply.error})
        self._reconcile_sent += 1
        self._reconcile_requests.labels(venue=venue, result=result).inc()
        log.info("reconcile requested", extra={"venue": venue, "account": account, "orders": len(client_order_ids),
                                               "result": result})
