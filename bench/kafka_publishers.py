"""The publishers bench/kafka_transport.py compares, each publishing the bench's records on
one topic: raw aiokafka, FastStream's publisher and the transport (kafkatransport.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import msgspec
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from tradebus.schemas import subjects
from tradebus.shared.kafkatopics import SUBJECT_HEADER
from tradebus.shared.kafkatransport import GroupTimings, KafkaTransport
from tradebus.shared.transport import Outgoing

# Short group timings: a group forms in about a second on Tansu (5 s with aiokafka's defaults).
GROUP = GroupTimings(session_timeout_ms=1000, heartbeat_interval_ms=200, rebalance_timeout_ms=1000)


class Sample(msgspec.Struct, frozen=True):
    """About the size of a place command's interesting part."""

    seq: int
    sent_ns: int
    venue: str = "paper"
    account: str = "demo"
    symbol: str = "BTC/USDT"
    quantity: str = "0.015"
    price: str = "60123.45"


decode = msgspec.json.Decoder(Sample).decode


def sample(seq: int) -> bytes:
    return msgspec.json.encode(Sample(seq, time.perf_counter_ns()))


@contextlib.asynccontextmanager
async def producer(bootstrap: str, *, linger_ms: int) -> AsyncIterator[AIOKafkaProducer]:
    made = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


def account(seq: int) -> str:
    return f"acct{seq % 16}"


class Sender(Protocol):
    """Publishes the bench's records on one topic."""

    async def send(self, seq: int) -> None:
        """At most once, nothing awaited."""

    async def send_stored(self, seqs: range) -> None:
        """Pipelined, every ack awaited."""


class RawSender:
    """aiokafka's producer. On a route topic (`tradebus.route.<venue>`) each record carries the
    `Tradebus-Subject` header the transport's records carry, so both move the same bytes."""

    def __init__(self, made: AIOKafkaProducer, topic: str) -> None:
        self.producer = made
        self.topic = topic
        self.venue = topic.removeprefix("tradebus.route.") if topic.startswith("tradebus.route.") else None

    async def _send(self, seq: int) -> asyncio.Future[object]:
        headers = [] if self.venue is None else [(SUBJECT_HEADER, subjects.route(self.venue, account(seq)).encode())]
        sent: asyncio.Future[object] = await self.producer.send(self.topic, sample(seq), key=account(seq).encode(),
                                                                headers=headers)
        return sent

    async def send(self, seq: int) -> None:
        await self._send(seq)

    async def send_stored(self, seqs: range) -> None:
        await asyncio.gather(*[await self._send(seq) for seq in seqs])


class TransportSender:
    """The transport (kafkatransport.py): FastStream's publisher, subject -> topic and key."""

    def __init__(self, transport: KafkaTransport, topic: str) -> None:
        self.transport = transport
        self.venue = topic.removeprefix("tradebus.route.")

    async def send(self, seq: int) -> None:
        await self.transport.publish(subjects.route(self.venue, account(seq)), sample(seq))

    async def send_stored(self, seqs: range) -> None:
        await self.transport.publish_durable_many(
            Outgoing(subjects.route(self.venue, account(seq)), sample(seq)) for seq in seqs)


class FastStreamSender:
    """FastStream's publisher (`KafkaBroker.publish`), what the transport would use if it
    were fast enough (kafkatransport.py says why it is not)."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.venue = topic.removeprefix("tradebus.route.")

    async def _send(self, seq: int) -> asyncio.Future[object]:
        sent: asyncio.Future[object] = await self.broker.publish(
            sample(seq), self.topic, key=account(seq).encode(),
            headers={SUBJECT_HEADER: subjects.route(self.venue, account(seq))}, no_confirm=True)
        return sent

    async def send(self, seq: int) -> None:
        await self._send(seq)

    async def send_stored(self, seqs: range) -> None:
        await asyncio.gather(*[await self._send(seq) for seq in seqs])


@contextlib.asynccontextmanager
async def faststream_sender(bootstrap: str, topic: str) -> AsyncIterator[Sender]:
    broker = KafkaBroker(bootstrap, acks="all", logger=None)
    await broker.start()
    try:
        yield FastStreamSender(broker, topic)
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def raw_sender(bootstrap: str, topic: str) -> AsyncIterator[Sender]:
    async with producer(bootstrap, linger_ms=0) as made:
        yield RawSender(made, topic)


@contextlib.asynccontextmanager
async def transport_sender(bootstrap: str, topic: str) -> AsyncIterator[Sender]:
    transport = await KafkaTransport.connect(bootstrap, client_id="bench-sender", timings=GROUP)
    try:
        yield TransportSender(transport, topic)
    finally:
        await transport.close()


Senders = Callable[[str, str], contextlib.AbstractAsyncContextManager[Sender]]
