"""The Kafka-protocol broker the Kafka transport is built on (docs/kafka.md), against a real
Tansu process: the launcher, and the consumer-group properties the services will rely on
(commits after processing, redelivery of what a killed member had not committed, order per
key across partitions)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.kafkamember import GROUP_TIMINGS
from tradebus.shared.natsserver import free_port, port_in_use
from tradebus.shared.tansubroker import TansuBroker, TansuError

MEMBER = Path(__file__).with_name("kafkamember.py")


async def create_topic(broker: TansuBroker, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(broker: TansuBroker, topic: str, records: list[tuple[str, str]]) -> None:
    """(key, value) pairs, each acknowledged by the broker before the next is sent."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value.encode(), key=key.encode())
    finally:
        await producer.stop()


def group_member(broker: TansuBroker, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", **GROUP_TIMINGS)


async def receive(consumer: AIOKafkaConsumer, count: int, timeout: float = 20.0) -> list[Any]:
    records: list[Any] = []

    async def collect() -> None:
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)

    await asyncio.wait_for(collect(), timeout)
    return records


async def test_broker_starts_listens_and_stops(tmp_path: Path) -> None:
    broker = TansuBroker(work_dir=tmp_path, port=free_port())
    with broker:
        await create_topic(broker, "started", 1)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            assert "started" in await admin.list_topics()
        finally:
            await admin.close()
        with pytest.raises(TansuError, match="already taken"):
            TansuBroker(work_dir=tmp_path / "second", port=broker.port).launch()
    assert broker.process is not None and broker.process.poll() is not None  # stopped, within stop()'s deadline
    assert not port_in_use(broker.host, broker.port)


def test_a_storage_engine_this_build_lacks_fails_at_start(tmp_path: Path) -> None:
    broker = TansuBroker(work_dir=tmp_path, port=free_port(), storage="sqlite://" + str(tmp_path / "tansu.db"))
    with pytest.raises(TansuError, match="exited"):
        broker.start(timeout=10)
    assert "FeatureNotEnabled" in broker.log_file.read_text()


async def test_a_commit_after_processing_is_where_the_group_resumes(tansu_broker: TansuBroker) -> None:
    await create_topic(tansu_broker, "resume", 1)
    await produce(tansu_broker, "resume", [("acct", f"m{i}") for i in range(6)])
    first = group_member(tansu_broker, "resume", "oms")
    await first.start()
    try:
        records = await receive(first, 6)
        processed = records[3]  # the first four are done; the last two were received only
        await first.commit({TopicPartition("resume", 0): processed.offset + 1})
    finally:
        await first.stop()
    second = group_member(tansu_broker, "resume", "oms")
    await second.start()
    try:
        assert [record.value for record in await receive(second, 2)] == [b"m4", b"m5"]
        assert await second.committed(TopicPartition("resume", 0)) == 4
    finally:
        await second.stop()


@pytest.fixture
async def member_process(tansu_broker: TansuBroker) -> AsyncIterator[asyncio.subprocess.Process]:
    """A group member in a process of its own (kafkamember.py) that commits after its second
    record, on topic `kill` for group `connector-paper`; SIGKILLed by the test."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(MEMBER), tansu_broker.bootstrap, "kill", "connector-paper", "2",
        stdout=asyncio.subprocess.PIPE)
    yield process
    if process.returncode is None:
        process.kill()
    await process.wait()


async def read_lines(process: asyncio.subprocess.Process, count: int) -> list[dict[str, Any]]:
    assert process.stdout is not None
    return [json.loads(await asyncio.wait_for(process.stdout.readline(), 30)) for _ in range(count)]


async def test_what_a_killed_member_had_not_committed_goes_to_the_next_member(
        tansu_broker: TansuBroker, member_process: asyncio.subprocess.Process) -> None:
    await create_topic(tansu_broker, "kill", 1)
    await produce(tansu_broker, "kill", [("paper.main", f"c{i}") for i in range(5)])
    lines = await read_lines(member_process, 6)  # five records and the commit after the second
    assert {"committed": 2} in lines
    assert [line["value"] for line in lines if "value" in line] == ["c0", "c1", "c2", "c3", "c4"]
    member_process.kill()  # received c2..c4, processed none of them: a crash
    await member_process.wait()

    successor = group_member(tansu_broker, "kill", "connector-paper")
    await successor.start()
    try:
        records = await receive(successor, 3)
        assert [record.value for record in records] == [b"c2", b"c3", b"c4"]
        assert not await successor.getmany(timeout_ms=500)  # and nothing committed comes again
    finally:
        await successor.stop()


async def test_each_key_keeps_its_order_across_partitions_and_members(tansu_broker: TansuBroker) -> None:
    await create_topic(tansu_broker, "route", 4)
    accounts = [f"paper.acct{n}" for n in range(8)]
    # Interleaved, as commands of several accounts arrive: (account, its n-th command).
    await produce(tansu_broker, "route", [(account, f"{account}#{n}") for n in range(5) for account in accounts])
    members = [group_member(tansu_broker, "route", "risk") for _ in range(2)]
    await asyncio.gather(*(member.start() for member in members))
    received: dict[str, list[tuple[int, int]]] = defaultdict(list)  # account: (partition, n) in arrival order
    readers: dict[str, set[int]] = defaultdict(set)  # account: the members that saw it

    async def read_all() -> None:
        # Reading starts once both members share the partitions: a member joining later
        # would move partitions mid-read, and (nothing being committed here) its new owner
        # would read them again from the start, which is Kafka's at-least-once, not a
        # matter of order.
        while sum(len(member.assignment()) for member in members) < 4 or not all(m.assignment() for m in members):
            await asyncio.sleep(0.05)
        total = 0
        while total < len(accounts) * 5:
            for index, member in enumerate(members):
                for batch in (await member.getmany(timeout_ms=100)).values():
                    for record in batch:
                        account, n = record.value.decode().split("#")
                        received[account].append((record.partition, int(n)))
                        readers[account].add(index)
                        total += 1

    try:
        await asyncio.wait_for(read_all(), 30)
    finally:
        await asyncio.gather(*(member.stop() for member in members))
    for account in accounts:
        assert [n for _, n in received[account]] == [0, 1, 2, 3, 4], account
        assert len({partition for partition, _ in received[account]}) == 1, account
        assert len(readers[account]) == 1, account
    assert len({received[account][0][0] for account in accounts}) > 1  # the keys did spread over partitions
