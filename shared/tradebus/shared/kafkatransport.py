"""The Kafka transport (transport.py's `Transport` on Kafka), built on FastStream's Kafka
broker as docs/kafka.md decided from measurements.

- **Publishing** goes through aiokafka's producer (`acks=all`), not FastStream's publisher:
  measured (bench/kafka_transport.py, three runs), FastStream's `KafkaBroker.publish` moves
  0.47-0.62 of the producer's pipelined rate (12-18 µs more per record: a correlation id,
  its middleware chain and two headers nobody reads), which leaves nothing of the 0.6 the
  tick benchmark asks of a connector's whole path; docs/kafka.md has the figures. At most
  once without waiting, or durably, every record sent without waiting in between and the
  acks awaited together. Each record goes to its topic with its key (kafkatopics.py) and
  carries its NATS-form subject in `Tradebus-Subject`.
- **No idempotent producer.** Tansu has none (and Kafka's is per producer session, never
  across a client's retry), so a record published again after a lost ack, or retried by the
  producer inside aiokafka, can be stored twice. The dedupe id travels in the
  `Tradebus-Dedupe-Id` header (`Nats-Msg-Id` on JetStream) and the reader drops the copy: risk
  through its client-order-id ledger (a command whose `command_dedupe_id` it already routed
  or refused), the OMS and the audit store by position (docs/kafka.md).
- **Durable consumption** is FastStream's batch subscriber with `AckPolicy.MANUAL` (its
  other policies commit a failed record, or commit before processing: docs/kafka.md) and the
  commits made here: per partition, the offset after the unbroken run of finished records
  (kafkacommits.py), once per batch and at each acknowledgement that comes after its batch.
  When a handler raises, each partition is sought back to the first unfinished record of the
  batch; what was finished is not handed out again.
- **Replay** (rebuilds) reads topics with aiokafka from their beginning offsets to their end
  offsets as of the start, no group: FastStream has no bounded read.
- **Following** live records is FastStream's batch subscriber without a group, positioned at
  the end of every partition before `follow` returns.

Consumers fetch with `fetch_max_wait_ms` 5 and batch subscribers sleep `batch_timeout_ms` 5
after an empty poll: Tansu answers a fetch only when its wait is up, and FastStream's default
200 ms sleep would set the latency (docs/kafka.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from tradebus.shared.kafkacommits import PartitionLedger
from tradebus.shared.kafkatopics import DEDUPE_HEADER, SUBJECT_HEADER, placement, subject_of, topics_for
from tradebus.shared.retry import Backoff
from tradebus.shared.transport import BatchHandler, Delivery, Outgoing, Position, Record, RecordsHandler, matches

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 5
BATCH_TIMEOUT_MS = 5
PUBLISH_TIMEOUT = 10.0  # seconds for the acks of durable publishes
REPLAY_STALL = 10.0  # seconds a replay waits for records it knows are there before it gives up
FOLLOW_READY = 10.0  # seconds `follow` waits for its partitions
# After a failed batch its records come again at once (a seek), not after an ack wait as on
# JetStream: back-off between failures (retry.py), so a handler failing on every try (a venue
# down) does not spin.
FAILED_BATCH_PAUSE = 0.1
FAILED_BATCH_PAUSE_CAP = 5.0


class TopicMissing(LookupError):
    """A topic a read needs does not exist: not provisioned (direct.StreamMissing on NATS)."""


@dataclass(frozen=True)
class GroupTimings:
    """How fast a group notices a dead member (its session timeout) and how fast it forms: on
    Tansu a group forms after a wait that grows with the session timeout (docs/kafka.md)."""

    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000  # a batch must be finished within this


@functools.lru_cache(maxsize=4096)
def _placement_bytes(subject: str) -> tuple[str, bytes]:
    """(topic, key) of a subject, cached: a service publishes on few subjects, often."""
    topic, key = placement(subject)
    return topic, key.encode()


@functools.lru_cache(maxsize=4096)
def _checked_subject(topic: str, key: bytes | None, header: bytes) -> str:
    return subject_of(topic, key, header)


@functools.lru_cache(maxsize=4096)
def _wanted(subject: str, filters: tuple[str, ...]) -> bool:
    return any(matches(subject, wanted) for wanted in filters)


def _subject(record: ConsumerRecord[Any, Any]) -> str | None:
    """The record's subject, None (logged) when it has no place here: such a record is
    finished unseen, it cannot be handed to a handler under a subject it was not written to."""
    header = next((value for name, value in record.headers if name == SUBJECT_HEADER), None)
    try:
        if header is None:
            raise ValueError(f"a record on {record.topic} without a {SUBJECT_HEADER} header")
        return _checked_subject(record.topic, record.key, header)
    except ValueError as exc:
        log.warning("record refused", extra={"topic": record.topic, "partition": record.partition,
                                             "offset": record.offset, "error": str(exc)})
        return None


class StoredRecord:
    """A record as read from Kafka (transport.Record)."""

    __slots__ = ("data", "headers", "position", "stored_at", "subject")

    def __init__(self, record: ConsumerRecord[Any, Any], subject: str, received_ns: int) -> None:
        self.subject = subject
        self.data: bytes = record.value or b""
        # Header values are the writer's: a null or a stray byte must not stop the partition.
        self.headers: Mapping[str, str] = {name: (value or b"").decode(errors="replace")
                                           for name, value in record.headers}
        self.position = Position(record.topic, record.partition, record.offset)
        # The writer's timestamp can only shorten a command's life (docs/kafka.md, deadlines);
        # a record without one (-1) is anchored when it arrived.
        self.stored_at = min(record.timestamp * 1_000_000, received_ns) if record.timestamp >= 0 else received_ns


class KafkaDelivery(StoredRecord):
    """A record handed to a durable consumer's handler (transport.Delivery)."""

    __slots__ = ("_consumer", "_ledger", "redelivered")

    def __init__(self, record: ConsumerRecord[Any, Any], subject: str, received_ns: int, *, redelivered: bool,
                 consumer: _GroupConsumer, ledger: PartitionLedger) -> None:
        super().__init__(record, subject, received_ns)
        self.redelivered = redelivered
        self._consumer = consumer
        self._ledger = ledger

    async def ack(self) -> None:
        await self._consumer.finish(self._ledger, self.position.offset)


class _GroupConsumer(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """One `consume` call: the ledgers of its partitions, the batch handler, the commits."""

    def __init__(self, filters: Sequence[str], handler: BatchHandler) -> None:
        self.filters = tuple(filters)
        self.handler = handler
        self.consumer: AIOKafkaConsumer | None = None  # set at the first batch (FastStream makes it)
        self.ledgers: dict[TopicPartition, PartitionLedger] = {}
        self.in_batch = False
        self.closing = False
        self._commit_lock = asyncio.Lock()
        self._failures = Backoff(FAILED_BATCH_PAUSE, cap=FAILED_BATCH_PAUSE_CAP)

    async def on_batch(self, message: StreamMessage[tuple[ConsumerRecord[Any, Any], ...]]) -> None:
        if self.closing:
            return  # unfinished, uncommitted: the group's next member reads them
        consumer = self.consumer = message.consumer  # type: ignore[attr-defined]  # KafkaMessage's
        received = time.time_ns()
        deliveries: list[Delivery] = []
        handed: dict[TopicPartition, list[int]] = {}
        for record in message.raw_message:
            partition = TopicPartition(record.topic, record.partition)
            ledger = self.ledgers.get(partition)
            if ledger is None:
                ledger = self.ledgers[partition] = PartitionLedger(record.offset)
            hand, seen = ledger.hand_out(record.offset)
            if not hand:
                continue
            subject = _subject(record)
            if subject is None or not _wanted(subject, self.filters):
                ledger.finish(record.offset)  # not for this consumer: passed over
                continue
            handed.setdefault(partition, []).append(record.offset)
            deliveries.append(KafkaDelivery(record, subject, received, redelivered=seen, consumer=self, ledger=ledger))
        self.in_batch = True
        failed = False
        try:
            if deliveries:
                await self.handler(deliveries)
        except Exception:
            log.exception("batch handler failed; its unfinished records come again")
            for partition, offsets in handed.items():
                ledger = self.ledgers.get(partition)  # None: revoked meanwhile, its next owner reads it again
                first = None if ledger is None else ledger.unfinished_from(offsets)
                if first is not None:
                    consumer.seek(partition, first)
            failed = True
        finally:
            self.in_batch = False
        await self.commit()
        if failed:
            await self._failures.wait()
        else:
            self._failures.reset()

    async def finish(self, ledger: PartitionLedger, offset: int) -> None:
        ledger.finish(offset)
        if not self.in_batch:  # acknowledged after its batch: nothing else will commit it
            await self.commit()  # nothing once the consumer has stopped: the group's next member reads it again

    async def commit(self) -> None:
        """Commit, for each partition whose commit point moved, the offset after its unbroken
        run of finished records. A commit the group refuses (a rebalance under way) is
        retried at the next one; a partition revoked meanwhile is read again by its new
        owner from the last commit that went through."""
        async with self._commit_lock:  # one commit at a time: an older one must never land after a newer
            offsets = {}
            for partition, ledger in self.ledgers.items():
                ledger.advance()
                if ledger.committable != ledger.committed:
                    offsets[partition] = ledger.committable
            if not offsets or self.consumer is None:
                return
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("offset commit refused; retried at the next", extra={"error": repr(exc)})
                return
            for partition, offset in offsets.items():
                if partition in self.ledgers:
                    self.ledgers[partition].committed = offset

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what is finished while the partitions are still ours, then forget them:
        acknowledgements that come later for their records change nothing (the next owner
        reads them again)."""
        await self.commit()
        for partition in revoked:
            self.ledgers.pop(partition, None)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for partition in assigned:  # read from the group's commit: start a fresh ledger at the first record
            self.ledgers.pop(partition, None)


async def _itself(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """FastStream decoder: the handler takes the batch message itself (the raw records and the
    consumer), not a parse of the bodies."""
    return message


class _Follower:
    """A FastStream subscriber without a group (transport.Following)."""

    def __init__(self, subscriber: Any) -> None:
        self._subscriber = subscriber

    async def stop(self) -> None:
        await self._subscriber.stop()


class KafkaTransport:
    """One service's connection to a Kafka-protocol broker."""

    def __init__(self, producer: AIOKafkaProducer, broker: KafkaBroker, bootstrap: str, *,
                 timings: GroupTimings) -> None:
        self.producer = producer
        self.broker = broker  # FastStream's, for the subscribers (it has no producer of its own)
        self.bootstrap = bootstrap
        self.timings = timings

    @classmethod
    async def connect(cls, bootstrap: str, *, client_id: str, timings: GroupTimings | None = None,
                      graceful_timeout: float = 5.0) -> KafkaTransport:
        """Connect the producer. `graceful_timeout`: how long stopping a consumer waits for
        the batch its handler is working on."""
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all",
                                    enable_idempotence=False)  # Tansu has no idempotent producer
        await producer.start()
        broker = KafkaBroker(bootstrap, client_id=client_id, consumer_only=True, logger=None,
                             graceful_timeout=graceful_timeout)
        try:
            await broker.start()
        except BaseException:
            await producer.stop()
            raise
        return cls(producer, broker, bootstrap, timings=timings or GroupTimings())

    async def _send(self, subject: str, payload: bytes, headers: list[tuple[str, bytes]]) -> asyncio.Future[Any]:
        topic, key = _placement_bytes(subject)
        headers.append((SUBJECT_HEADER, subject.encode()))
        sent: asyncio.Future[Any] = await self.producer.send(topic, payload, key=key, headers=headers)
        return sent

    async def publish(self, subject: str, payload: bytes, *, headers: Mapping[str, str] | None = None) -> None:
        sent = await self._send(subject, payload, _encoded(headers))
        sent.add_done_callback(_log_lost)

    async def publish_durable_many(self, items: Iterable[Outgoing]) -> list[Position]:
        pending: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                for subject, payload, dedupe_id, headers in items:
                    sent_headers = _encoded(headers)
                    if dedupe_id is not None:
                        sent_headers.append((DEDUPE_HEADER, dedupe_id.encode()))
                    pending.append(await self._send(subject, payload, sent_headers))
                stored = await asyncio.gather(*pending)
        except BaseException:
            for future in pending:  # whatever they hold, nobody waits for it any more
                future.add_done_callback(_log_lost)
            raise
        return [Position(meta.topic, meta.partition, meta.offset) for meta in stored]

    async def consume(self, group: str, subjects: Sequence[str], handler: BatchHandler, *, batch: int,
                      stopping: asyncio.Event) -> None:
        topics = sorted(set().union(*(topics_for(wanted) for wanted in subjects)))
        state = _GroupConsumer(subjects, handler)
        subscriber = self.broker.subscriber(
            *topics, batch=True, group_id=group, max_records=batch, batch_timeout_ms=BATCH_TIMEOUT_MS,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS, auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL,
            listener=state, decoder=_itself, persistent=False,
            session_timeout_ms=self.timings.session_timeout_ms,
            heartbeat_interval_ms=self.timings.heartbeat_interval_ms,
            rebalance_timeout_ms=self.timings.rebalance_timeout_ms,
            max_poll_interval_ms=self.timings.max_poll_interval_ms)
        subscriber(state.on_batch)
        await subscriber.start()
        try:
            await stopping.wait()
        finally:
            # The batch in hand is finished (FastStream's graceful timeout) and committed;
            # whatever the consumer fetches meanwhile stays unread for the group's next member.
            state.closing = True
            await subscriber.stop()
            state.consumer = None

    @contextlib.asynccontextmanager
    async def _reader(self, topics: Iterable[str]) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
        """A consumer without a group, assigned every partition of `topics`."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        await consumer.start()
        try:
            await consumer.topics()  # metadata of every topic, so that their partitions are known
            missing = sorted(topic for topic in topics if not consumer.partitions_for_topic(topic))
            if missing:
                raise TopicMissing(f"no topic {', '.join(missing)} on the bus")
            partitions = [TopicPartition(topic, number) for topic in sorted(topics)
                          for number in sorted(consumer.partitions_for_topic(topic))]
            consumer.assign(partitions)
            yield consumer, partitions
        finally:
            await consumer.stop()

    async def replay(self, subjects: Sequence[str]) -> AsyncIterator[Record]:
        topics = set().union(*(topics_for(wanted) for wanted in subjects))
        filters = tuple(subjects)
        async with self._reader(topics) as (consumer, partitions):
            ends = await _log_ends(consumer, partitions)
            await consumer.seek_to_beginning(*partitions)
            remaining = {partition for partition in partitions if await consumer.position(partition) < ends[partition]}
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=int(REPLAY_STALL * 1000), max_records=2000)
                if not fetched:
                    raise TimeoutError(f"replay of {sorted(topics)} stalled with {len(remaining)} partitions unread")
                received = time.time_ns()
                for partition, records in fetched.items():
                    for record in records:
                        if record.offset >= ends[partition]:
                            break  # stored after the replay began
                        subject = _subject(record)
                        if subject is not None and _wanted(subject, filters):
                            yield StoredRecord(record, subject, received)
                    if await consumer.position(partition) >= ends[partition]:
                        remaining.discard(partition)

    async def follow(self, subjects: Sequence[str], handler: RecordsHandler) -> _Follower:
        topics = sorted(set().union(*(topics_for(wanted) for wanted in subjects)))
        filters = tuple(subjects)
        start: dict[tuple[str, int], int] | None = None  # per partition: the first offset to hand over

        async def on_batch(message: StreamMessage[tuple[ConsumerRecord[Any, Any], ...]]) -> None:
            if start is None:
                return  # before `follow` returned: nothing it promises
            received = time.time_ns()
            records: list[Record] = []
            for record in message.raw_message:
                if record.offset < start.get((record.topic, record.partition), 0):
                    continue  # stored before `follow` returned
                subject = _subject(record)
                if subject is not None and _wanted(subject, filters):
                    records.append(StoredRecord(record, subject, received))
            if records:
                await handler(records)

        subscriber = self.broker.subscriber(
            *topics, batch=True, group_id=None, batch_timeout_ms=BATCH_TIMEOUT_MS, fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            auto_offset_reset="latest", ack_policy=AckPolicy.MANUAL, decoder=_itself, persistent=False)
        subscriber(on_batch)
        await subscriber.start()
        try:
            async with asyncio.timeout(FOLLOW_READY):
                consumer: AIOKafkaConsumer = subscriber.consumer
                while not consumer.assignment():
                    await asyncio.sleep(0.01)
                for partition in consumer.assignment():
                    await consumer.position(partition)  # reads from the end as of now, or before it (on Tansu)
                async with self._reader(topics) as (probe, partitions):
                    ends = await _log_ends(probe, partitions)
            start = {(partition.topic, partition.partition): offset for partition, offset in ends.items()}
        except BaseException:
            await subscriber.stop()
            raise
        return _Follower(subscriber)

    async def close(self) -> None:
        try:
            await self.broker.stop()
        finally:
            await self.producer.stop()  # sends what is still buffered


async def _log_ends(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after each partition's last record, now. Not `end_offsets` alone: Tansu
    0.6 answers it with the base offset of the last record batch plus one (six records
    produced as one batch: 1, not 6), so the end comes from the high watermark of a fetch of
    that batch, which Tansu reports right. On Kafka both agree, at the cost of one fetch."""
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    unsure = {partition for partition in partitions if ends[partition] > 0}
    for partition in unsure:
        consumer.seek(partition, ends[partition] - 1)
    async with asyncio.timeout(REPLAY_STALL):
        while unsure:
            await consumer.getmany(*unsure, timeout_ms=int(REPLAY_STALL * 1000), max_records=1)
            for partition in list(unsure):
                highwater = consumer.highwater(partition)
                if highwater is not None:
                    ends[partition] = max(ends[partition], highwater)
                    unsure.discard(partition)
    return ends


def _encoded(headers: Mapping[str, str] | None) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in (headers or {}).items()]


def _log_lost(future: asyncio.Future[Any]) -> None:
    """Retrieve what a publish nobody waits for ended with, and say so if it was lost."""
    if future.cancelled():
        return
    with contextlib.suppress(asyncio.CancelledError):
        failure = future.exception()
        if failure is not None:
            log.warning("publish lost", extra={"error": repr(failure)})
