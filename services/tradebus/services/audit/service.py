"""The audit logger service: every command, routing decision and event, stored durably.

One durable consumer per stream (CMD, ROUTE, EVENTS) pulls batches; each batch becomes
records (payload as received, registered secrets masked, and the publisher scope the bus
allowed on the subject: `connector.<venue>`, `risk`, ...), is committed to the store in one
transaction, and only then acknowledged. A crash before the commit redelivers the batch; a
crash between commit and ack redelivers messages the store already has, and the store
skips them by (stream, stream_seq), so nothing is lost and nothing is stored twice. That
holds only for the streams the store was made for: on start the store is checked against
the bus (identity.py), and another fleet's store is refused before anything is consumed.
Commits are serialized, so the hash chain is one line whatever the streams' interleaving,
and the batches that arrive while one commit runs share the next: a commit's fixed cost
(a transaction, an fsync) is paid once for all three streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from nats.aio.msg import Msg
from prometheus_client import Counter

from tradebus.schemas import provenance, subjects
from tradebus.schemas.codecs import DecodeError
from tradebus.shared.bus import consume_batches, header, stored_position
from tradebus.shared.busaccess import public_url
from tradebus.shared.logs import redact
from tradebus.shared.pipeline import MSG_ID
from tradebus.shared.service import Service, default_instance
from tradebus.shared.topology import AUDIT_CONSUMERS, Consumer, ensure_consumer, ensure_streams

from ..settings import Settings
from .chain import AuditRecord
from .identity import bind_store
from .store import AuditStore, open_store

log = logging.getLogger(__name__)

RETRY_DELAY = 1.0
"""Seconds before a batch whose commit failed is redelivered (instead of the consumer's ack_wait)."""



class _Keys(msgspec.Struct):
    """The few payload fields the audit trail indexes; anything else is ignored."""

    type: Any = None
    client_order_id: Any = None
    request_id: Any = None
    group_id: Any = None  # an order group (`place_group`), which names no single order


_keys_decoder = msgspec.json.Decoder(_Keys)


def build_record(msg: Msg) -> tuple[AuditRecord, bool]:
    """The record of one JetStream message, and whether a secret was masked in it.

    Undecodable payloads are stored too (they are part of what happened); surrogateescape
    keeps their bytes exactly while the text is searched for secrets.
    """
    stream, stream_seq, ts = stored_position(msg)
    text = msg.data.decode("utf-8", "surrogateescape")
    scrubbed = redact.redact(text)
    payload = scrubbed.encode("utf-8", "surrogateescape") if scrubbed != text else msg.data
    try:
        keys = _keys_decoder.decode(payload)
    except DecodeError:
        keys = _Keys()
    record = AuditRecord(
        stream=stream,
        stream_seq=stream_seq,
        subject=msg.subject,
        msg_id=header(msg, MSG_ID),
        ts=ts,
        msg_type=_text(keys.type),
        order_key=_text(keys.client_order_id) or _text(keys.request_id) or _text(keys.group_id),
        payload=payload,
        scope=publisher_scope(msg.subject),
    )
    return record, scrubbed != text


def publisher_scope(subject: str) -> str:
    """Who the bus allowed to publish on `subject` (a subject outside the registry: unknown)."""
    try:
        return provenance.scope(subjects.parse(subject))
    except ValueError:
        return provenance.UNKNOWN_SCOPE


def _text(value: Any) -> str | None:
    # Not a text holding NUL: PostgreSQL's TEXT refuses it, and the batch would fail for ever.
    return value if isinstance(value, str) and value and "\x00" not in value else None


class AuditService(Service):
    name = "audit"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, instance=default_instance())
        self.config = settings.audit
        self.data_dir = settings.data_dir
        self.store: AuditStore | None = None
        self._consumers: list[asyncio.Task[Any]] = []
        self._commit_lock = asyncio.Lock()
        self._waiting: list[tuple[list[AuditRecord], asyncio.Future[None]]] = []  # batches for the next commit
        # Not per stream: one commit holds several streams' batches and the store counts what was new.
        self._stored = self.metrics.counter(
            "tradebus_audit_records_stored_total", "Messages committed to the audit store."
        )
        self._duplicates = self.metrics.counter(
            "tradebus_audit_duplicates_total", "Redelivered messages the store already had."
        )
        self._redacted = self.metrics.counter(
            "tradebus_audit_payloads_redacted_total", "Payloads stored with a secret value masked."
        )
        self._commit_failures = self.metrics.counter(
            "tradebus_audit_commit_failures_total", "Batches whose commit failed (redelivered)."
        )
        self._commit_seconds = self.metrics.histogram(
            "tradebus_audit_commit_seconds", "Time to commit one batch to the audit store."
        )

    async def start(self) -> None:
        assert self.bus is not None
        # Open the store first: a service that cannot store must not start consuming.
        self.store = await open_store(self.config, self.data_dir)
        await ensure_streams(self.bus.js, self.settings.streams)
        # Before any consumer exists: a store that is not this bus's acknowledges nothing.
        await bind_store(self.store, self.bus.nc, AUDIT_CONSUMERS, bus=public_url(self.settings.nats_url))
        for consumer in AUDIT_CONSUMERS:
            await ensure_consumer(self.bus.js, consumer)
            self._consumers.append(self.spawn(self._consume(consumer), name=f"consume-{consumer.durable}"))
        log.info("audit store open", extra={"store": self.store.location})

    async def stop(self) -> None:
        # Each consumer finishes (commits and acks) its current batch and returns; only then
        # may the store close. Set `stopping` here too: start-up may have failed halfway.
        # Half the grace period for the commits leaves the other half to close the store.
        self.stopping.set()
        if self._consumers:
            _, busy = await asyncio.wait(self._consumers, timeout=self.settings.shutdown_grace / 2)
            if busy:
                # A commit hangs (database unreachable): its batch stays unacknowledged and is
                # redelivered; the database rolls it back, or keeps it, when the process exits.
                log.warning("commit still running at stop; its batch will be redelivered",
                            extra={"consumers": sorted(task.get_name() for task in busy)})
                return
        if self.store is not None:
            await self.store.close()

    def counters(self) -> dict[str, int]:
        return {"stored": _total(self._stored), "duplicates": _total(self._duplicates),
                "redacted": _total(self._redacted), "commit_failures": _total(self._commit_failures)}

    async def _consume(self, consumer: Consumer) -> None:
        assert self.bus is not None
        stream = consumer.stream.name

        async def handle(messages: list[Msg]) -> None:
            await self._on_batch(stream, messages)

        await consume_batches(self.bus, stream=stream, durable=consumer.durable, handler=handle,
                              batch=self.config.batch_size, stopping=self.stopping)

    async def _on_batch(self, stream: str, messages: list[Msg]) -> None:
        assert self.store is not None
        self.metrics.received.labels(family=stream).inc(len(messages))
        records = []
        for msg in messages:
            record, redacted = build_record(msg)
            records.append(record)
            if redacted:
                self._redacted.inc()
        try:
            await self._commit(records)
        except Exception:
            for msg in messages:
                await msg.nak(delay=RETRY_DELAY)
            raise  # consume_batches logs it and goes on with the next batch
        for msg in messages:
            await msg.ack()

    async def _commit(self, records: list[AuditRecord]) -> None:
        """Return once `records` are committed. The batches waiting when the lock frees are
        committed together, in the order they arrived; a failure fails each of them."""
        assert self.store is not None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, waiter))
        async with self._commit_lock:
            if waiter.done():  # an earlier holder of the lock committed it (or failed: raises)
                return waiter.result()
            group, self._waiting = self._waiting, []
            started = time.perf_counter()
            try:
                stored = await self.store.append([record for batch, _ in group for record in batch])
            except BaseException as exc:
                self._commit_failures.inc()
                for _, other in group:
                    if other is not waiter:
                        other.set_exception(exc if isinstance(exc, Exception) else RuntimeError("commit cancelled"))
                raise
            self._commit_seconds.observe(time.perf_counter() - started)
            self._stored.inc(stored)
            self._duplicates.inc(sum(len(batch) for batch, _ in group) - stored)
            for _, other in group:
                other.set_result(None)


def _total(counter: Counter) -> int:
    return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))
