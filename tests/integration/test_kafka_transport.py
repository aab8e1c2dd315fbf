"""The Kafka transport (kafkatransport.py) against a real Tansu broker: order per account,
commits that never pass an unfinished record, redelivery of exactly what a killed member left
unfinished, replay from the start, live following."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration.kafkatransportmember import FAST_GROUP
from tests.integration.test_kafka_broker import create_topic
from tradebus.schemas import subjects
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.kafkatopics import DEDUPE_HEADER, SUBJECT_HEADER
from tradebus.shared.kafkatransport import KafkaTransport, TopicMissing
from tradebus.shared.tansubroker import TansuBroker
from tradebus.shared.transport import Delivery, Outgoing, Record

MEMBER = Path(__file__).with_name("kafkatransportmember.py")
ROUTES = "tradebus.route.paper.>"


@pytest.fixture
async def transport(tansu_broker: TansuBroker) -> AsyncIterator[KafkaTransport]:
    connected = await KafkaTransport.connect(tansu_broker.bootstrap, client_id="test", timings=FAST_GROUP)
    yield connected
    await connected.close()


async def committed(broker: TansuBroker, group: str, topic: str = "tradebus.route.paper") -> dict[int, int]:
    """The group's committed offset per partition of `topic`, as the broker holds it (asked
    by a client of the group that does not join it; Tansu answers aiokafka's admin
    `list_consumer_group_offsets` with a frame aiokafka cannot decode)."""
    asking = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    await asking.start()
    try:
        offsets = {number: await asking.committed(TopicPartition(topic, number))
                   for number in asking.partitions_for_topic(topic) or await _partitions(asking, topic)}
    finally:
        await asking.stop()
    return {number: offset for number, offset in offsets.items() if offset is not None}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.topics()
    return consumer.partitions_for_topic(topic) or set()


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            outcome = check()
            if await outcome if inspect.isawaitable(outcome) else outcome:
                return
            await asyncio.sleep(0.05)


async def committed_is(broker: TansuBroker, group: str, expected: dict[int, int]) -> bool:
    return await committed(broker, group) == expected


def routes(*values: str, account: str = "main") -> list[Outgoing]:
    return [Outgoing(subjects.route("paper", account), value.encode()) for value in values]


async def test_each_accounts_records_keep_their_order_subject_and_dedupe_id(
        tansu_broker: TansuBroker, transport: KafkaTransport) -> None:
    await create_topic(tansu_broker, "tradebus.cmd", 4)
    accounts = [f"acct{n}" for n in range(8)]
    sent = [Outgoing(subjects.command("paper", account), f"{account}#{n}".encode(), f"{account}-{n}:place")
            for n in range(5) for account in accounts]  # interleaved, as several accounts' commands arrive
    positions = await transport.publish_durable_many(sent)
    received: list[Delivery] = []
    stopping = asyncio.Event()

    async def handle(batch: list[Delivery]) -> None:
        for delivery in batch:
            received.append(delivery)
            await delivery.ack()
        if len(received) >= len(sent):
            stopping.set()

    await asyncio.wait_for(transport.consume("risk", ["tradebus.cmd.>"], handle, batch=7, stopping=stopping), 30)
    assert sorted(d.position for d in received) == sorted(positions)  # each once, where the publish said
    by_account: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in received:
        by_account[delivery.subject.split(".")[-1]].append(delivery)
    for account in accounts:
        mine = by_account[account]
        assert [d.data.decode() for d in mine] == [f"{account}#{n}" for n in range(5)]
        assert [d.headers[DEDUPE_HEADER] for d in mine] == [f"{account}-{n}:place" for n in range(5)]
        assert {d.subject for d in mine} == {subjects.command("paper", account)}
        assert len({d.position.partition for d in mine}) == 1
    assert len({d.position.partition for d in received}) > 1  # the accounts did spread over partitions
    assert sum((await committed(tansu_broker, "risk", "tradebus.cmd")).values()) == len(sent)


async def test_a_commit_never_passes_an_unfinished_record(tansu_broker: TansuBroker, transport: KafkaTransport) -> None:
    """A failed batch comes again without what was finished; a record held open past its batch
    holds the commit back until it is acknowledged."""
    await create_topic(tansu_broker, "tradebus.route.paper", 1)
    await transport.publish_durable_many(routes("r0", "r1", "r2", "r3"))
    calls: list[list[tuple[str, bool]]] = []
    commits_seen: list[dict[int, int]] = []
    held: list[Delivery] = []
    failed = False
    stopping = asyncio.Event()

    async def handle(batch: list[Delivery]) -> None:
        nonlocal failed
        calls.append([(d.data.decode(), d.redelivered) for d in batch])
        if len(calls) > 1:
            commits_seen.append(await committed(tansu_broker, "connector-paper"))
        # r1 last: a handler that raises at r3 never gets to it
        for delivery in sorted(batch, key=lambda d: d.data == b"r1"):
            value = delivery.data.decode()
            if value == "r3" and not failed:
                failed = True
                raise RuntimeError("the venue call failed")
            if value == "r4":
                held.append(delivery)  # a held cancel: acknowledged when its place comes
                continue
            await delivery.ack()

    consuming = asyncio.create_task(transport.consume("connector-paper", [ROUTES], handle, batch=10,
                                                      stopping=stopping))
    try:
        # the second batch's handler has read the commits (it appends to `calls` before it reads)
        await eventually(lambda: (len(calls) >= 2 and len(commits_seen) >= 1))
        assert calls[0] == [("r0", False), ("r1", False), ("r2", False), ("r3", False)]  # one fetch, one batch
        assert calls[1] == [("r1", True), ("r3", True)]  # r2 was finished: not handed out again
        assert commits_seen[0] == {0: 1}  # after the failed batch: r0 only, r1 was unfinished
        await eventually(lambda: committed_is(tansu_broker, "connector-paper", {0: 4}))

        await transport.publish_durable_many(routes("r4", "r5", "r6"))
        await eventually(lambda: (bool(held) and sum(len(c) for c in calls[2:]) >= 3))
        assert [value for call in calls[2:] for value, _ in call] == ["r4", "r5", "r6"]
        assert await committed(tansu_broker, "connector-paper") == {0: 4}  # r5 and r6 finished, r4 held
        await held[0].ack()
        # the late ack commits the run (no other ack is left that could: without it, it stays at 4)
        await eventually(lambda: committed_is(tansu_broker, "connector-paper", {0: 7}))
    finally:
        stopping.set()
        await asyncio.wait_for(consuming, 20)


@pytest.fixture
async def member_process(tansu_broker: TansuBroker) -> AsyncIterator[asyncio.subprocess.Process]:
    """A durable consumer of ROUTES in group `connector-paper` in a process of its own that
    hangs in its handler at record `c3` (kafkatransportmember.py); SIGKILLed by the test."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(MEMBER), tansu_broker.bootstrap, "connector-paper", ROUTES, "c3",
        stdout=asyncio.subprocess.PIPE)
    yield process
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_a_killed_member_leaves_exactly_its_unfinished_records_to_the_next(
        tansu_broker: TansuBroker, transport: KafkaTransport, member_process: asyncio.subprocess.Process) -> None:
    await create_topic(tansu_broker, "tradebus.route.paper", 1)
    stdout = member_process.stdout
    assert stdout is not None

    async def lines(count: int) -> list[str]:
        return [json.loads(await asyncio.wait_for(stdout.readline(), 30))["value"] for _ in range(count)]

    await transport.publish_durable_many(routes("c0", "c1", "c2"))
    assert await lines(3) == ["c0", "c1", "c2"]
    await eventually(lambda: committed_is(tansu_broker, "connector-paper", {0: 3}))
    await transport.publish_durable_many(routes("c3", "c4", "c5"))
    assert await lines(1) == ["c3"]  # and there it hangs, c3..c5 unfinished
    member_process.kill()
    await member_process.wait()

    received: list[str] = []
    stopping = asyncio.Event()

    async def handle(batch: list[Delivery]) -> None:
        for delivery in batch:
            received.append(delivery.data.decode())
            await delivery.ack()

    consuming = asyncio.create_task(transport.consume("connector-paper", [ROUTES], handle, batch=10,
                                                      stopping=stopping))
    try:
        await eventually(lambda: (len(received) >= 3), timeout=20)
        await asyncio.sleep(0.5)  # nothing else comes
        assert received == ["c3", "c4", "c5"]
        await eventually(lambda: committed_is(tansu_broker, "connector-paper", {0: 6}))
    finally:
        stopping.set()
        await asyncio.wait_for(consuming, 20)


async def test_replay_reads_from_the_start_to_where_the_log_ended_when_it_began(
        tansu_broker: TansuBroker, transport: KafkaTransport) -> None:
    await create_topic(tansu_broker, "tradebus.evt.venue.paper", 2)
    accounts = ["a", "b", "c"]
    await transport.publish_durable_many(
        [Outgoing(subjects.order_events("paper", account), f"{account}#{n}".encode()) for n in range(4)
         for account in accounts] + [Outgoing(subjects.account_events("paper", "a"), b"balance")])
    forger = AIOKafkaProducer(bootstrap_servers=tansu_broker.bootstrap, acks="all")
    await forger.start()
    try:  # filed under account a's key, claiming to be b's: refused, as it would break b's order
        await forger.send_and_wait("tradebus.evt.venue.paper", b"forged", key=b"a",
                                   headers=[(SUBJECT_HEADER, subjects.order_events("paper", "b").encode())])
    finally:
        await forger.stop()

    replayed: list[Record] = []
    async for record in transport.replay(["tradebus.evt.order.paper.*"]):
        if not replayed:  # stored after the replay began: not part of it
            await transport.publish_durable_many([Outgoing(subjects.order_events("paper", "a"), b"late")])
        replayed.append(record)
    for account in accounts:
        assert [r.data.decode() for r in replayed if r.subject.endswith(f".{account}")] == [
            f"{account}#{n}" for n in range(4)]
    assert len(replayed) == 12  # no account event, no forged record, no late one
    with pytest.raises(TopicMissing, match="tradebus.route.nowhere"):  # a rebuild from nothing is no rebuild
        await anext(aiter(transport.replay(["tradebus.route.nowhere.*"])))


async def test_a_follower_sees_what_is_published_after_it_started(
        tansu_broker: TansuBroker, transport: KafkaTransport) -> None:
    await create_topic(tansu_broker, "tradebus.md.paper", 2)
    quote = subjects.market_data("paper", MarketDataKind.QUOTE, "BTC/USDT")
    trade = subjects.market_data("paper", MarketDataKind.TRADE, "BTC/USDT")
    # One record batch of three: Tansu's end offset counts it as one record (kafkatransport._log_ends).
    await transport.publish_durable_many([Outgoing(quote, b"before0"), Outgoing(quote, b"before1"),
                                          Outgoing(quote, b"before2")])
    seen: list[Record] = []

    async def handle(records: list[Record]) -> None:
        seen.extend(records)

    following = await transport.follow([subjects.market_data_filter("paper", MarketDataKind.QUOTE)], handle)
    try:
        for n in range(3):
            await transport.publish(trade, f"trade{n}".encode())
            await transport.publish(quote, f"quote{n}".encode())
        await eventually(lambda: (len(seen) >= 3))
        await asyncio.sleep(0.2)
        assert [r.data for r in seen] == [b"quote0", b"quote1", b"quote2"]
        assert {r.subject for r in seen} == {quote}
    finally:
        await following.stop()
