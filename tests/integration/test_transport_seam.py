"""The seam (transport.py) keeps the same promises on both buses: each test runs on NATS
(natstransport.py, a real nats-server) and on Kafka (kafkatransport.py, a real Tansu).
What only one bus does (Kafka's commit points and takeover, JetStream's dedupe window) is
tested in that bus's own suites."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.kafkatransportmember import FAST_GROUP
from tests.integration.test_kafka_broker import create_topic
from tradebus.schemas import subjects
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.bus import Bus
from tradebus.shared.kafkatransport import KafkaTransport
from tradebus.shared.natstransport import NatsTransport
from tradebus.shared.topology import ROUTE, Consumer, StreamSettings
from tradebus.shared.transport import Delivery, Outgoing, Record, Transport

GROUP = "connector-paper"
ROUTES = "tradebus.route.paper.>"


@pytest.fixture(params=["nats", "kafka"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """A transport with the paper venue's routes provisioned: on NATS the ROUTE stream and a
    durable `connector-paper` that redelivers after 1 s; on Kafka the route topic, 2 partitions."""
    made: Transport
    if request.param == "nats":
        server = request.getfixturevalue("nats_server")
        bus = await Bus.connect(server.url, name="seam")
        await bus.js.add_stream(ROUTE.config(StreamSettings()))
        await bus.js.add_consumer(ROUTE.name, Consumer(ROUTE, GROUP, ROUTES, ack_wait=1.0).config())
        made = NatsTransport(bus)
    else:
        broker = request.getfixturevalue("tansu_broker")
        await create_topic(broker, "tradebus.route.paper", 2)
        made = await KafkaTransport.connect(broker.bootstrap, client_id="seam", timings=FAST_GROUP)
    yield made
    await made.close()


async def consuming(transport: Transport, handle: Any, until: Any, timeout: float = 20.0) -> None:
    """Consume as GROUP until `until()` holds, then stop."""
    stopping = asyncio.Event()
    task = asyncio.create_task(transport.consume(GROUP, [ROUTES], handle, batch=10, stopping=stopping))
    try:
        async with asyncio.timeout(timeout):
            while not until():
                await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 20)


async def test_records_come_once_each_in_order_per_subject_where_the_publish_said(transport: Transport) -> None:
    accounts = ["a", "b", "c"]
    sent = [Outgoing(subjects.route("paper", account), f"{account}#{n}".encode(), f"{account}-{n}")
            for n in range(4) for account in accounts]
    positions = await transport.publish_durable_many(sent)
    received: list[Delivery] = []

    async def handle(batch: list[Delivery]) -> None:
        for delivery in batch:
            received.append(delivery)
            await delivery.ack()

    await consuming(transport, handle, lambda: len(received) >= len(sent))
    assert sorted(d.position for d in received) == sorted(positions)
    for account in accounts:
        assert [d.data for d in received if d.subject == subjects.route("paper", account)] == [
            f"{account}#{n}".encode() for n in range(4)]
    assert not any(d.redelivered for d in received)


async def test_a_failed_batch_brings_back_exactly_what_was_not_acknowledged(transport: Transport) -> None:
    await transport.publish_durable_many(
        [Outgoing(subjects.route("paper", "main"), f"r{n}".encode()) for n in range(4)])
    first: list[bytes] = []
    again: list[tuple[bytes, bool]] = []
    acked: set[bytes] = set()
    failed = False

    async def handle(batch: list[Delivery]) -> None:
        nonlocal failed
        for delivery in batch:
            (again.append((delivery.data, delivery.redelivered)) if delivery.data in first else
             first.append(delivery.data))
        for delivery in sorted(batch, key=lambda d: d.data == b"r1"):  # r1 last: never reached when r3 fails
            if delivery.data == b"r3" and not failed:
                failed = True
                raise RuntimeError("the venue call failed")
            await delivery.ack()
            acked.add(delivery.data)

    await consuming(transport, handle, lambda: len(acked) == 4)
    await asyncio.sleep(1.5)  # past the NATS durable's ack wait: nothing acknowledged comes again
    assert first == [b"r0", b"r1", b"r2", b"r3"]
    assert sorted(again) == [(b"r1", True), (b"r3", True)]


async def test_replay_reads_every_record_from_the_start_in_order(transport: Transport) -> None:
    await transport.publish_durable_many(
        [Outgoing(subjects.route("paper", account), f"{account}#{n}".encode()) for n in range(3)
         for account in ("a", "b")])
    replayed = [record async for record in transport.replay([subjects.route("paper", "a")])]
    assert [r.data for r in replayed] == [b"a#0", b"a#1", b"a#2"]
    assert [r.position.offset for r in replayed] == sorted(r.position.offset for r in replayed)


async def test_a_follower_sees_what_is_published_after_it_started(transport: Transport,
                                                                  request: pytest.FixtureRequest) -> None:
    if isinstance(transport, KafkaTransport):
        await create_topic(request.getfixturevalue("tansu_broker"), "tradebus.md.paper", 2)
    quote = subjects.market_data("paper", MarketDataKind.QUOTE, "BTC/USDT")
    await transport.publish(quote, b"before")
    seen: list[Record] = []

    async def handle(records: list[Record]) -> None:
        seen.extend(records)

    following = await transport.follow([subjects.market_data_filter("paper", MarketDataKind.QUOTE)], handle)
    try:
        await transport.publish(subjects.market_data("paper", MarketDataKind.TRADE, "BTC/USDT"), b"trade")
        await transport.publish(quote, b"after")
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert [(r.subject, r.data) for r in seen] == [(quote, b"after")]
    finally:
        await following.stop()
