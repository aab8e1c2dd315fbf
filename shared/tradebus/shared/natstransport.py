"""The seam (transport.py) on NATS: a thin adapter over what the services use today, `Bus`
(publishing, pipelined JetStream publishes through bus breaks), `consume_batches` (durable
pull consumption), `direct.read_stored` (reading a stream without a consumer) and core
subscriptions. It changes none of them: the services still call them directly until they
move onto the seam (docs/kafka.md, "What the services' move needs").

What differs from the Kafka transport, by the nature of the bus:
- a group is a provisioned durable consumer (topology.py), named by the group, of the stream
  holding the subjects; `consume` checks that the durable filters exactly those subjects
  instead of creating or changing it (services may not: topology.py);
- a record a failed batch left unacknowledged comes again after the durable's ack wait, not
  at once; what was acknowledged does not come again, as on Kafka;
- the dedupe id is JetStream's `Nats-Msg-Id`, which the stream itself de-duplicates within
  its duplicate window;
- a live follow is a core subscription: its records have no log position (`Position` with
  an empty log) and their `stored_at` is when this process received them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradebus.shared.bus import Bus, consume_batches, stored_position
from tradebus.shared.direct import read_stored
from tradebus.shared.pipeline import MSG_ID
from tradebus.shared.topology import STREAMS, Stream
from tradebus.shared.transport import BatchHandler, Delivery, Outgoing, Position, Record, RecordsHandler, matches


class NatsDelivery:
    """A JetStream message handed to a durable consumer's handler (transport.Delivery)."""

    __slots__ = ("_msg", "data", "headers", "position", "redelivered", "stored_at", "subject")

    def __init__(self, msg: Msg) -> None:
        stream, seq, stored = stored_position(msg)
        self._msg = msg
        self.subject = msg.subject
        self.data = msg.data
        self.headers: Mapping[str, str] = msg.headers or {}
        self.position = Position(stream, 0, seq)
        self.stored_at = stored
        self.redelivered = _delivered(msg) > 1

    async def ack(self) -> None:
        await self._msg.ack()


class StoredRecord:
    """A message read from a stream, or received live (transport.Record)."""

    __slots__ = ("data", "headers", "position", "stored_at", "subject")

    def __init__(self, subject: str, data: bytes, headers: Mapping[str, str] | None, position: Position,
                 stored_at: int) -> None:
        self.subject = subject
        self.data = data
        self.headers: Mapping[str, str] = headers or {}
        self.position = position
        self.stored_at = stored_at


class _Subscriptions:
    """A live follow (transport.Following): core subscriptions."""

    def __init__(self, subscriptions: list[Subscription]) -> None:
        self._subscriptions = subscriptions

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()


def _delivered(msg: Msg) -> int:
    """How often the consumer has delivered the message, from its ack subject (the v1 form,
    `$JS.ACK.<stream>.<consumer>.<delivered>....`) without building `msg.metadata`."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[:2] == ["$JS", "ACK"]:
        return int(tokens[4])
    return msg.metadata.num_delivered or 1


def _with_dedupe_id(headers: Mapping[str, str] | None, dedupe_id: str | None) -> dict[str, str] | None:
    merged = dict(headers or {})
    if dedupe_id is not None:
        merged[MSG_ID] = dedupe_id  # the stream drops a copy within its duplicate window
    return merged or None


def stream_of(subjects: Sequence[str]) -> Stream:
    """The one stream that stores every subject `subjects` (filters) match."""
    for stream in STREAMS:
        if all(matches(wanted, stream.subjects[0]) for wanted in subjects):  # a filter inside the stream's
            return stream
    raise ValueError(f"no one stream holds {list(subjects)}")


class NatsTransport:
    """One service's connection to NATS, through the seam."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, subject: str, payload: bytes, *, headers: Mapping[str, str] | None = None) -> None:
        await self.bus.nc.publish(subject, payload, headers=dict(headers) if headers else None)

    async def publish_durable_many(self, items: Iterable[Outgoing]) -> list[Position]:
        acks = await self.bus.publish_pipelined(
            (subject, payload, _with_dedupe_id(headers, dedupe_id)) for subject, payload, dedupe_id, headers in items)
        return [Position(ack.stream, 0, ack.seq) for ack in acks]

    async def consume(self, group: str, subjects: Sequence[str], handler: BatchHandler, *, batch: int,
                      stopping: asyncio.Event) -> None:
        stream = stream_of(subjects)
        config = (await self.bus.js.consumer_info(stream.name, group)).config
        provisioned = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
        if sorted(provisioned) != sorted(subjects):
            raise ValueError(f"the durable {group} of {stream.name} filters {provisioned}, not {list(subjects)}")

        async def on_batch(messages: list[Msg]) -> None:
            deliveries: list[Delivery] = [NatsDelivery(msg) for msg in messages]
            await handler(deliveries)

        await consume_batches(self.bus, stream=stream.name, durable=group, handler=on_batch, batch=batch,
                              stopping=stopping)

    async def replay(self, subjects: Sequence[str]) -> AsyncIterator[Record]:
        stream = stream_of(subjects)
        for wanted in subjects:  # one filter after the other: order holds per subject
            async for message in read_stored(self.bus.nc, stream.name, wanted):
                yield StoredRecord(message.subject, message.data, message.headers,
                                   Position(stream.name, 0, message.seq), message.time)

    async def follow(self, subjects: Sequence[str], handler: RecordsHandler) -> _Subscriptions:
        async def on_message(msg: Msg) -> None:
            await handler([StoredRecord(msg.subject, msg.data, msg.headers, Position("", 0, 0), time.time_ns())])

        subscriptions = [await self.bus.nc.subscribe(wanted, cb=on_message) for wanted in subjects]
        await self.bus.nc.flush()  # the server has them: what is published from now on comes
        return _Subscriptions(subscriptions)

    async def close(self) -> None:
        await self.bus.drain()
