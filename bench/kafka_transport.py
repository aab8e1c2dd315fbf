"""FastStream's Kafka subscriber against raw aiokafka, on a real Kafka-protocol broker (Tansu,
tansubroker.py), to decide where the Kafka transport may use FastStream (docs/kafka.md).

    .venv/bin/python bench/kafka_transport.py [--messages 20000] [--rate 500] [--seconds 3]

Every consumer is a consumer-group member that commits after processing, as the services
will: the raw member calls `getmany`, decodes each record (msgspec, a command-sized JSON of
128 bytes) and commits the batch; the FastStream member is `KafkaBroker.subscriber` with
`ack_policy=AckPolicy.NACK_ON_ERROR` (commit after the handler returns, seek back when it
raises; docs/kafka.md says why not the others), a decoder that hands over the record's
bytes (FastStream's own parses the JSON into a dict for pydantic to validate against the
handler's annotation; a handler taking the message itself, `KafkaMessage` from
faststream.kafka.annotations, costs four worker-thread hops per message: about 1,000-1,500
msg/s here) and the same msgspec decode in the handler; its logger off.

1. **Throughput** (the headline): records preloaded on a 4-partition topic, then read by a
   fresh group; messages per second from the first record handled to the last. The batch
   consumers read `--messages` records each, twice, in the order A B B A (best of two); the
   per-message ones a twentieth of that.
   `value`: FastStream's batch subscriber (`batch=True`, `max_records` 500, one commit per
   batch); `baseline`: raw aiokafka, same batches, one commit per batch. Extras: FastStream's
   per-message subscriber (its commit after each message, `faststream_each_msg_s`), raw
   aiokafka committing each record (what per-message commits cost without the framework),
   and FastStream's per-message subscriber committing nothing (`AckPolicy.MANUAL`, never
   acked: the framework's own cost per message, `faststream_overhead_us`).
2. **Latency**: a producer in the same process sends records at `--rate` for `--seconds`
   (each carries its send time); publish -> handler p50/p99 for raw aiokafka (`baseline_*`),
   FastStream's batch subscriber (`p50_ms`, `p99_ms`) and its per-message one (`each_*`),
   one after the other on topics of their own. A consumer slower than `--rate` shows it as
   a queue: its latencies grow over the run.

3. **The transport** (kafkatransport.py, the `transport_*` keys) against raw aiokafka doing
   the same work (each record keyed by account with its `Tradebus-Subject` header, decoded,
   one commit per batch), on route topics (`tradebus.route.<venue>`), A B B A, best of two:
   publishing alone, `--messages`/5 records in pipelined chunks of 500 with each chunk's acks
   awaited (`transport_publish_msg_s` against `raw_publish_msg_s`, and FastStream's publisher,
   which the transport does not use, `faststream_publish_msg_s`); publish -> consume, the
   same records published while a group member consumes them, from the first publish to the
   last handled (`transport_msg_s` against `transport_baseline_msg_s`, `transport_ratio`);
   and publish -> handler latency at `--rate` (`transport_p50_ms`, `transport_p99_ms` against
   `transport_baseline_*`, the run with the lower p50). Publishers: kafka_publishers.py.

One broker and one process for all of it, so figures compare within a run; the machine's
other load falls on every part alike only roughly: run it a few times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from harness import event_loop_runner, sigterm_as_interrupt  # bench/ is the script directory
from kafka_publishers import (
    GROUP,
    Sample,
    Sender,
    Senders,
    decode,
    faststream_sender,
    producer,
    raw_sender,
    sample,
    transport_sender,
)

from tradebus.shared.kafkatransport import KafkaTransport
from tradebus.shared.natsserver import free_port
from tradebus.shared.tansubroker import TansuBroker
from tradebus.shared.transport import Delivery

PARTITIONS = 4
# Short group timings: a group forms in about a second on Tansu (5 s with aiokafka's defaults).
# Tansu answers a fetch only when its max wait is up, even when records arrived meanwhile
# (p50 133 ms at the default 500 ms, 14 ms at 50, 3.6 ms at 5, raw aiokafka at 200/s here).
CONSUMER = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200, "rebalance_timeout_ms": 1000,
            "fetch_max_wait_ms": 5}
BATCH = 500  # records per getmany / FastStream batch
# FastStream's batch subscriber sleeps `batch_timeout_ms` after a poll that brought nothing
# (200 ms by default): that sleep, not the poll, sets its latency at low rates.
BATCH_TIMEOUT_MS = 5
Handle = Callable[[Sample], None]
PUBLISH_CHUNK = 500  # records per pipelined publish in the transport's runs


async def create_topics(bootstrap: str, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1) for topic in topics])
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, count: int) -> None:
    async with producer(bootstrap, linger_ms=5) as sender:
        pending = [await sender.send(topic, sample(seq), key=f"acct{seq % 16}".encode()) for seq in range(count)]
        await asyncio.gather(*pending)


# --- the two consumers: each calls `handle` per record until `stopping` is set -------------
# (then leaves its group: a cancelled one would leave a commit in flight as it closes)
async def raw_member(bootstrap: str, topic: str, handle: Handle, stopping: asyncio.Event, *,
                     commit_each: bool = False) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{topic}", enable_auto_commit=False,
                                auto_offset_reset="earliest", **CONSUMER)
    await consumer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            for records in batches.values():
                for record in records:
                    handle(decode(record.value))
                    if commit_each:
                        await consumer.commit()
            if batches and not commit_each:
                await consumer.commit()
    finally:
        await consumer.stop()


async def record_values(message: StreamMessage[object]) -> object:
    """The record's value as it came (a list of them for a batch): the handler decodes it,
    as the raw member does, instead of FastStream's JSON parse into a dict."""
    return message.body


async def faststream_member(bootstrap: str, topic: str, handle: Handle, stopping: asyncio.Event, *,
                            batch: bool = False, ack_policy: AckPolicy = AckPolicy.NACK_ON_ERROR) -> None:
    broker = KafkaBroker(bootstrap, logger=None)
    options = {"group_id": f"faststream-{topic}", "auto_offset_reset": "earliest", "ack_policy": ack_policy, **CONSUMER}
    if batch:
        @broker.subscriber(topic, batch=True, max_records=BATCH, batch_timeout_ms=BATCH_TIMEOUT_MS,
                           decoder=record_values, **options)
        async def on_batch(body: list[bytes]) -> None:
            for value in body:
                handle(decode(value))
    else:
        @broker.subscriber(topic, decoder=record_values, **options)
        async def on_message(body: bytes) -> None:
            handle(decode(body))
    await broker.start()
    try:
        await stopping.wait()
    finally:
        await broker.stop()


async def transport_member(bootstrap: str, topic: str, handle: Handle, stopping: asyncio.Event) -> None:
    """The transport's durable consumer of a route topic: acks each record once handled."""
    transport = await KafkaTransport.connect(bootstrap, client_id="bench-member", timings=GROUP)

    async def on_batch(batch: list[Delivery]) -> None:
        for delivery in batch:
            handle(decode(delivery.data))
            await delivery.ack()

    try:
        await transport.consume(f"transport-{topic}", [f"{topic}.*"], on_batch, batch=BATCH, stopping=stopping)
    finally:
        await transport.close()


Member = Callable[[str, str, Handle, asyncio.Event], Coroutine[Any, Any, None]]


@contextlib.asynccontextmanager
async def running(member: Member, bootstrap: str, topic: str, handle: Handle) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(member(bootstrap, topic, handle, stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


async def throughput(bootstrap: str, topic: str, count: int, member: Member) -> float:
    """Messages per second over `count` preloaded records, from the first handled to the last."""
    await create_topics(bootstrap, topic)
    await preload(bootstrap, topic, count)
    seen = 0
    first = last = 0.0
    done = asyncio.Event()

    def handle(_: Sample) -> None:
        nonlocal seen, first, last
        seen += 1
        if seen == 1:
            first = time.perf_counter()
        if seen == count:
            last = time.perf_counter()
            done.set()

    async with running(member, bootstrap, topic, handle):
        await asyncio.wait_for(done.wait(), 120)
    return (count - 1) / (last - first)


async def warm_up(sender: Sender, warm: asyncio.Event) -> None:
    """Until the group has formed and the member reads (`warm` set by a record of seq -1)."""
    while not warm.is_set():
        await sender.send_stored(range(-1, 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(warm.wait(), 0.5)


async def latency(bootstrap: str, topic: str, member: Member, *, rate: float, seconds: float,
                  senders: Senders = raw_sender) -> list[float]:
    """Publish -> handler, in ms, of records sent at `rate` once the member is receiving."""
    await create_topics(bootstrap, topic)
    latencies: list[float] = []
    warm = asyncio.Event()

    def handle(record: Sample) -> None:
        if record.seq < 0:
            warm.set()
        else:
            latencies.append((time.perf_counter_ns() - record.sent_ns) / 1e6)

    async with running(member, bootstrap, topic, handle), senders(bootstrap, topic) as sender:
        await warm_up(sender, warm)
        total = int(rate * seconds)
        start = time.perf_counter()
        for seq in range(total):
            await asyncio.sleep(max(0.0, start + seq / rate - time.perf_counter()))
            await sender.send(seq)
        deadline = time.perf_counter() + 10
        while len(latencies) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    return latencies


async def publish_all(sender: Sender, count: int) -> None:
    """`count` records in pipelined chunks of PUBLISH_CHUNK, each chunk's acks awaited (as a
    service publishes a batch's effects)."""
    for start in range(0, count, PUBLISH_CHUNK):
        await sender.send_stored(range(start, min(count, start + PUBLISH_CHUNK)))


async def publishing(bootstrap: str, topic: str, count: int, senders: Senders) -> float:
    """Records per second a publisher stores (publish_all), nobody consuming."""
    await create_topics(bootstrap, topic)
    async with senders(bootstrap, topic) as sender:
        await sender.send_stored(range(-1, 0))  # connected, metadata known
        first = time.perf_counter()
        await publish_all(sender, count)
        return count / (time.perf_counter() - first)


async def pipeline(bootstrap: str, topic: str, count: int, member: Member, senders: Senders) -> float:
    """Publish -> consume msg/s: `count` records published (publish_all) while the member
    consumes them, from the first publish to the last handled."""
    await create_topics(bootstrap, topic)
    seen = 0
    last = 0.0
    done, warm = asyncio.Event(), asyncio.Event()

    def handle(record: Sample) -> None:
        nonlocal seen, last
        if record.seq < 0:
            warm.set()
            return
        seen += 1
        if seen == count:
            last = time.perf_counter()
            done.set()

    async with running(member, bootstrap, topic, handle), senders(bootstrap, topic) as sender:
        await warm_up(sender, warm)
        first = time.perf_counter()
        await publish_all(sender, count)
        await asyncio.wait_for(done.wait(), 120)
    return count / (last - first)


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


async def measure(bootstrap: str, args: argparse.Namespace) -> dict[str, object]:
    raw_each: Member = functools.partial(raw_member, commit_each=True)
    faststream_batch: Member = functools.partial(faststream_member, batch=True)
    faststream_uncommitted: Member = functools.partial(faststream_member, ack_policy=AckPolicy.MANUAL)

    # The two batch consumers in the order A B B A, each on a fresh topic, best of two: the
    # machine's other load falls on both alike. Per-message consumers are 100 times slower:
    # a twentieth of the records is plenty for them.
    batched: dict[str, list[float]] = {"raw aiokafka, commit per batch": [], "FastStream batch, commit per batch": []}
    for n, name in enumerate([*batched, *reversed(batched)]):
        member = raw_member if name.startswith("raw") else faststream_batch
        batched[name].append(await throughput(bootstrap, f"tput-batch-{n}", args.messages, member))
    rates = {name: max(values) for name, values in batched.items()}
    few = max(2, args.messages // 20)
    rates |= {
        "FastStream, commit per message": await throughput(bootstrap, "tput-fs", few, faststream_member),
        "raw aiokafka, commit per message": await throughput(bootstrap, "tput-raw1", few, raw_each),
        "FastStream, no commit": await throughput(bootstrap, "tput-fs0", few, faststream_uncommitted),
    }
    value, baseline = rates["FastStream batch, commit per batch"], rates["raw aiokafka, commit per batch"]
    members: dict[str, Member] = {"raw aiokafka": raw_member, "FastStream": faststream_member,
                                  "FastStream batch": faststream_batch}
    delays = {name: await latency(bootstrap, f"lat-{n}", member, rate=args.rate, seconds=args.seconds)
              for n, (name, member) in enumerate(members.items())}
    sent = int(args.rate * args.seconds)

    # The transport against raw aiokafka doing the same work (key, subject header, decode,
    # commit per batch), each on a fresh route topic, in the order A B (C) (C) B A, best of
    # two: publishing alone (and FastStream's publisher, which the transport does not use),
    # publish -> consume, and publish -> handler latency (the run with the lower p50).
    piped = args.messages // 5
    publishers: dict[str, Senders] = {"raw aiokafka": raw_sender, "FastStream publisher": faststream_sender,
                                      "transport": transport_sender}
    stored: dict[str, list[float]] = {name: [] for name in publishers}
    for n, name in enumerate([*publishers, *reversed(publishers)]):
        stored[name].append(await publishing(bootstrap, f"tradebus.route.pub{n}", piped, publishers[name]))
    pairs: dict[str, tuple[Member, Senders]] = {"raw aiokafka": (raw_member, raw_sender),
                                                "transport": (transport_member, transport_sender)}
    flow: dict[str, list[float]] = {name: [] for name in pairs}
    route_delays: dict[str, list[list[float]]] = {name: [] for name in pairs}
    for n, name in enumerate([*pairs, *reversed(pairs)]):
        member, senders = pairs[name]
        flow[name].append(await pipeline(bootstrap, f"tradebus.route.pipe{n}", piped, member, senders))
        route_delays[name].append(await latency(bootstrap, f"tradebus.route.lat{n}", member, rate=args.rate,
                                                seconds=args.seconds, senders=senders))
    publish = {name: max(values) for name, values in stored.items()}
    flows = {name: max(values) for name, values in flow.items()}
    route_ms = {name: min(runs, key=lambda values: percentile(values, 0.5)) for name, runs in route_delays.items()}

    print(f"{'consumer (group member, commit after processing)':<50}{'msg/s':>10}{'us/msg':>9}")
    for name, rate in rates.items():
        print(f"{name:<50}{rate:>10,.0f}{1e6 / rate:>9.0f}")
    print(f"\n{f'publish -> handler at {args.rate:g}/s for {args.seconds:g} s':<50}{'p50 ms':>10}{'p99 ms':>9}"
          f"{'received':>12}")
    for name, values in delays.items():
        print(f"{name:<50}{percentile(values, 0.5):>10.2f}{percentile(values, 0.99):>9.2f}{len(values):>6}/{sent}")
    print(f"\n{f'route topics, {piped:,} records in chunks of {PUBLISH_CHUNK}: msg/s':<50}{'publish':>10}"
          f"{'-> consume':>12}")
    for name, rate in publish.items():
        print(f"{name:<50}{rate:>10,.0f}{f'{flows[name]:,.0f}' if name in flows else '':>12}")
    print(f"\n{f'route topics, publish -> handler at {args.rate:g}/s':<50}{'p50 ms':>10}{'p99 ms':>9}{'received':>12}")
    for name, values in route_ms.items():
        print(f"{name:<50}{percentile(values, 0.5):>10.2f}{percentile(values, 0.99):>9.2f}{len(values):>6}/{sent}")
    faststream_ms, raw_ms, batch_ms = delays["FastStream"], delays["raw aiokafka"], delays["FastStream batch"]
    transport_ms, route_raw_ms = route_ms["transport"], route_ms["raw aiokafka"]
    return {
        "bench": "kafka_transport", "value": round(value), "baseline": round(baseline), "unit": "msg/s",
        "ratio": round(value / baseline, 3),
        "faststream_each_msg_s": round(rates["FastStream, commit per message"]),
        "raw_commit_each_msg_s": round(rates["raw aiokafka, commit per message"]),
        "faststream_no_commit_msg_s": round(rates["FastStream, no commit"]),
        # FastStream's own cost per message: without commits, against raw aiokafka (whose one
        # commit per 500 records costs next to nothing)
        "faststream_overhead_us": round(1e6 / rates["FastStream, no commit"] - 1e6 / baseline, 1),
        "p50_ms": round(percentile(batch_ms, 0.5), 2), "p99_ms": round(percentile(batch_ms, 0.99), 2),
        "baseline_p50_ms": round(percentile(raw_ms, 0.5), 2), "baseline_p99_ms": round(percentile(raw_ms, 0.99), 2),
        "each_p50_ms": round(percentile(faststream_ms, 0.5), 2), "each_p99_ms": round(percentile(faststream_ms, 0.99), 2),
        # the transport (kafkatransport.py) against raw aiokafka, publish -> consume
        "transport_msg_s": round(flows["transport"]), "transport_baseline_msg_s": round(flows["raw aiokafka"]),
        "transport_ratio": round(flows["transport"] / flows["raw aiokafka"], 3),
        "transport_publish_msg_s": round(publish["transport"]), "raw_publish_msg_s": round(publish["raw aiokafka"]),
        "faststream_publish_msg_s": round(publish["FastStream publisher"]),
        "transport_p50_ms": round(percentile(transport_ms, 0.5), 2),
        "transport_p99_ms": round(percentile(transport_ms, 0.99), 2),
        "transport_baseline_p50_ms": round(percentile(route_raw_ms, 0.5), 2),
        "transport_baseline_p99_ms": round(percentile(route_raw_ms, 0.99), 2),
        "latency_rate": args.rate, "messages": args.messages, "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000,
                        help="records per batch-consumer run (a twentieth for the per-message consumers)")
    parser.add_argument("--rate", type=float, default=500.0, help="records per second in the latency runs")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each latency run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the broker's log)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tradebus-bench-kafka-"))
    broker = TansuBroker(work_dir=work, port=free_port())
    try:
        with sigterm_as_interrupt():
            broker.start()
            summary = event_loop_runner()(measure(broker.bootstrap, args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        broker.stop()
        if args.keep:
            print(f"logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
