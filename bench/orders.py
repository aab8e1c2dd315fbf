"""Order round trip and sustained order rate of the order path, against raw nats-py hops.

    python bench/orders.py [--seconds N] [--rates 200,1000] [--ramp 500,750,...] [--profile oms,audit]

One nats-server on a free port; the services as subprocesses (`tradebus run ...`); one
client in this process (raw nats-py, uvloop) that publishes place commands exactly as any
client does (JetStream publish to `tradebus.cmd.paper.demo` with the command's dedupe id as
`Nats-Msg-Id`) and reads the answers on its core subscription to
`tradebus.evt.order.paper.demo`. Orders are limit IOC buys of 0.001 BTC/USDT priced 2 %
below the current bid (followed live from the quotes): the paper venue accepts each one and
cancels its unfilled remainder (two events per order); nothing rests, no position moves.

1. Latency (risk + paper connector running) and its baseline, side by side at each
   rate of `--rates`: orders offered open-loop (scheduled by the clock, never waiting for
   answers); after `--warmup` seconds, `--seconds` of orders of each path, in alternating
   slices of `--slice` seconds (so that load from elsewhere on the host hits both alike),
   are measured from the start of their publish to the arrival of their `accepted` event:
   p50, p90, p99. Each round trip
   is also split at the moments the three streams stored the order's messages (JetStream's
   timestamps, same host clock): client -> first stream, first stage, second stage, last
   stream -> client.
   Baseline: the same client code through raw nats-py processes doing the same hops with
   the same durability: JetStream file streams BENCH_CMD, BENCH_ROUTE, BENCH_EVT configured
   like CMD, ROUTE, EVENTS (tradebus.shared.topology); two forwarders (this file with
   --raw-forwarder) pulling from durable consumers in batches of the services' sizes (200
   like risk, 100 like the connector), publishing pipelined (publish_async), awaiting every
   ack, then acking; the second publishes two messages per command like the connector, the
   first of which counts as `accepted`.
2. Sustained (risk + connector + order manager + audit logger): offered rates ramp up
   (`--ramp`) for `--seconds` each. A step passes when every order got its `accepted` and
   its final event, acceptances kept within 3 % of the offered rate, every durable consumer
   of the fleet (risk, connector-paper, oms-route, oms-events, audit-cmd, audit-route,
   audit-events) had nothing pending or unacknowledged within `--max-lag` seconds of the
   last order (a fleet that falls behind is not sustaining the rate), the order manager
   reports no open order, its bucket `tradebus_orders` holds a key per order, and the audit
   store holds every message of CMD, ROUTE and EVENTS. The ramp stops at the first failing
   step; then every record of the bucket is read and each step's orders must be in a final
   state there. Where the time goes: CPU % per process during the step, CPU time per order
   of each process until the step drained, the backlog of every consumer when the step's
   offered period ended, and with `--profile` a py-spy profile of the named services
   during the step at `--profile-rate`.

The host's CPU use outside the bench's processes is shown (`others`): the benchmark needs
the machine to itself, a busy host lowers the sustained rate. The last line printed is one
JSON object: {"bench": "orders", "value": tradebus p50 at the first rate (ms), "baseline":
raw p50 at that rate (ms), "unit": "ms", "ratio": value / baseline, ...extra keys}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import psutil
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.control import ListOrders, OmsReply
from tradebus.schemas.values import MarketDataKind, OrderType, Side, TimeInForce
from tradebus.shared.bus import MSG_ID
from tradebus.shared.launcher import ChildProcess, isolated_env, service_command, wait_ready
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import (
    AUDIT_CONSUMERS,
    COMMANDS,
    EVENTS,
    OMS_EVENTS,
    OMS_ROUTES,
    ORDERS_BUCKET,
    RISK_COMMANDS,
    ROUTE,
    Consumer,
    Stream,
    StreamSettings,
    connector_consumer,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Children, event_loop_runner, run_benchmark  # noqa: E402 - bench/ is the script directory

VENUE, ACCOUNT, SYMBOL = "paper", "demo", "BTC/USDT"
QUANTITY = Decimal("0.001")  # ~60 USDT: above the 5 USDT minimum notional wherever the walk goes
AWAY = Decimal("0.02")  # below the bid: never fills, well inside risk's 10 % collar
TICK = Decimal("0.01")
FINAL_TYPES = frozenset({"cancelled", "filled", "rejected", "expired", "command_rejected"})
FINAL_STATUSES = frozenset({"cancelled", "filled", "rejected", "expired"})  # OrderRecord.status
SYSTEM_KEYS = ("machine", "steal", "others")  # CpuSampler's whole-machine figures
WALL_OFFSET = time.time() - time.perf_counter()  # perf_counter() + WALL_OFFSET = wall clock (s)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOPS = ("client -> stream 1", "stage 1", "stage 2", "stream 3 -> client")
HOP_NAMES = {"tradebus": ("client->CMD", "risk", "connector", "EVENTS->client"),
             "raw": ("client->CMD", "forwarder 1", "forwarder 2", "EVT->client")}

# The fleet's settings: default limits except the rate limits (a benchmark offers thousands
# of orders per second on one account) and a fixed seed.
CONFIG = """\
[paper]
seed = 7

[risk.limits.rate]
per_account = 100000.0
per_venue = 100000.0
burst = 100000
"""

# The baseline's streams and consumers: configured exactly like CMD, ROUTE and EVENTS and
# their durable consumers (file storage, one-hour dedupe window, explicit acks).
RAW_CMD = Stream("BENCH_CMD", ("bench.cmd.>",), "bench: raw hop 1")
RAW_ROUTE = Stream("BENCH_ROUTE", ("bench.route.>",), "bench: raw hop 2")
RAW_EVT = Stream("BENCH_EVT", ("bench.evt.>",), "bench: raw hop 3")
RAW_STAGES = {
    # stage: (consumer, batch like the service it stands for, subject prefix in, out, Nats-Msg-Id suffixes)
    "risk": (Consumer(RAW_CMD, "bench-risk", "bench.cmd.>"), 200, "bench.cmd.", "bench.route.", ("",)),
    "venue": (Consumer(RAW_ROUTE, "bench-venue", "bench.route.>"), 100, "bench.route.", "bench.evt.order.",
              (".accepted", ".cancelled")),
}
FLEET_CONSUMERS = (RISK_COMMANDS, connector_consumer(VENUE), OMS_ROUTES, OMS_EVENTS, *AUDIT_CONSUMERS)


# --- one measured run of orders -------------------------------------------------------------
@dataclass
class Run:
    """The orders of one offered rate: when each was published and answered (perf_counter s)."""

    prefix: str
    rate: float
    count: int
    warm: int  # the first `warm` orders are warm-up, not measured
    raw: bool = False
    published: list[float] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)
    rejects: collections.Counter[str] = field(default_factory=collections.Counter)
    publish_errors: int = 0
    offered_seconds: float = 0.0  # first to last publish
    hops: dict[str, list[float]] = field(default_factory=dict)  # HOPS -> ms per measured order, sorted
    marks: list[list[float]] = field(default_factory=list)  # per measured order: published, 3 x stored, accepted

    def __post_init__(self) -> None:
        self.published = [0.0] * self.count
        self.accepted = [0.0] * self.count
        self.final = [0.0] * self.count

    def client_order_id(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    @property
    def missing_accepted(self) -> int:
        return sum(1 for t in self.accepted if not t)

    @property
    def missing_final(self) -> int:
        return sum(1 for t in self.final if not t)

    def latencies_ms(self) -> list[float]:
        measured = zip(self.published[self.warm:], self.accepted[self.warm:], strict=True)
        return sorted((accepted - published) * 1000 for published, accepted in measured if accepted)

    def publish_rate(self) -> float:
        return (self.count - 1) / self.offered_seconds if self.offered_seconds else 0.0

    def acceptance_rate(self) -> float:
        """Acceptances per second from the first to the last: steady latency cancels out, a
        growing backlog stretches the span."""
        times = [t for t in self.accepted if t]
        return (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


class _Answer(msgspec.Struct):
    """The few fields of an order event (or, in the baseline, of the forwarded command) the client reads."""

    type: str = ""
    client_order_id: str | None = None
    reason: str | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)


class _Bid(msgspec.Struct):
    bid: str


_bid_decoder = msgspec.json.Decoder(_Bid)


class Client:
    """The benchmark's client: publishes place commands open-loop, matches the answers."""

    def __init__(self, nc: nats.NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.runs: dict[str, Run] = {}
        self.price: Decimal | None = None
        self.quoted = asyncio.Event()
        self.tag = uuid.uuid4().hex[:4]
        self._serial = 0

    async def start(self) -> None:
        big = {"pending_msgs_limit": 2_000_000, "pending_bytes_limit": 1024 * 1024 * 1024}
        for subject in subjects.answers(VENUE, ACCOUNT):  # the venue's events and risk's rejections
            await self.nc.subscribe(subject, cb=self._on_answer, **big)
        await self.nc.subscribe("bench.evt.order.>", cb=self._on_answer, **big)
        await self.nc.subscribe(subjects.market_data(VENUE, MarketDataKind.QUOTE, SYMBOL), cb=self._on_quote)
        await self.nc.flush()

    def new_run(self, rate: float, seconds: float, warmup: float, *, raw: bool, label: str,
                count: int | None = None) -> Run:
        self._serial += 1
        warm = round(rate * warmup)
        count = round(rate * seconds) if count is None else count
        run = Run(prefix=f"{self.tag}{label}{self._serial}", rate=rate, count=warm + count, warm=warm, raw=raw)
        self.runs[run.prefix] = run
        return run

    async def _on_quote(self, msg: Any) -> None:
        self.price = (Decimal(_bid_decoder.decode(msg.data).bid) * (1 - AWAY)).quantize(TICK)
        self.quoted.set()

    async def _on_answer(self, msg: Any) -> None:
        now = time.perf_counter()
        try:
            answer = _answer_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        prefix, _, number = (answer.client_order_id or "").rpartition("-")
        run = self.runs.get(prefix)
        if run is None:
            return
        i = int(number)
        if run.raw:  # the forwarder's first message stands for `accepted`, the second for the final event
            if not run.accepted[i]:
                run.accepted[i] = now
            elif not run.final[i]:
                run.final[i] = now
            return
        if answer.type == "accepted":
            run.accepted[i] = run.accepted[i] or now
        elif answer.type in FINAL_TYPES:
            run.final[i] = run.final[i] or now
            if answer.type in ("rejected", "command_rejected"):
                run.rejects[answer.reason or answer.type] += 1

    def _command(self, run: Run, i: int) -> tuple[str, bytes, str]:
        assert self.price is not None
        command = PlaceOrder(
            client_order_id=run.client_order_id(i), venue=VENUE, account=ACCOUNT, symbol=SYMBOL, side=Side.BUY,
            order_type=OrderType.LIMIT, quantity=QUANTITY, price=self.price, time_in_force=TimeInForce.IOC,
            ts_created=time.time_ns(),
        )
        subject = f"bench.cmd.{VENUE}.{ACCOUNT}" if run.raw else subjects.command(VENUE, ACCOUNT)
        return subject, encode(command), command_dedupe_id(command)

    async def offer(self, run: Run, lo: int = 0, hi: int | None = None) -> None:
        """Open loop: orders lo..hi-1 of the run, order i due at start + (i - lo) / rate;
        whatever is due is published at once, answers are never waited for (publish acks
        are checked asynchronously)."""
        hi = run.count if hi is None else hi
        if hi <= lo:
            return
        loop = asyncio.get_running_loop()
        publish_async = self.js.publish_async
        published = run.published

        def check_ack(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                run.publish_errors += 1

        start = loop.time() + 0.005
        i = lo
        while i < hi:
            due = min(hi, lo + int((loop.time() - start) * run.rate) + 1)
            while i < due:
                subject, payload, msg_id = self._command(run, i)
                published[i] = time.perf_counter()
                future = await publish_async(subject, payload, headers={MSG_ID: msg_id})
                future.add_done_callback(check_ack)
                i += 1
            await asyncio.sleep(max(0.0, start + (i - lo) / run.rate - loop.time()))
        run.offered_seconds += published[hi - 1] - published[lo]

    async def wait_answers(self, run: Run, timeout: float, lo: int = 0, hi: int | None = None) -> float:
        """Wait until orders lo..hi-1 have their final answer (or the timeout); return seconds waited."""
        started = time.perf_counter()
        final = run.final[lo:hi]
        while not all(final) and time.perf_counter() - started < timeout:
            await asyncio.sleep(0.01)
            final = run.final[lo:hi]
        return time.perf_counter() - started


# --- the fleet ------------------------------------------------------------------------------
class Fleet:
    """The services as subprocesses (launcher.py), and their processes for psutil."""

    def __init__(self, nc: nats.NATS, url: str, work: Path, children: Children) -> None:
        self.nc, self.url, self.work, self.children = nc, url, work, children
        self.services: dict[str, ChildProcess] = {}
        config = work / "tradebus.toml"
        config.write_text(CONFIG)
        self.env = isolated_env(TRADEBUS_NATS_URL=url, TRADEBUS_DATA_DIR=str(work / "data"), TRADEBUS_LOG_JSON="false",
                                TRADEBUS_HEARTBEAT_INTERVAL="0.5", PYTHONUNBUFFERED="1")
        self.config = config

    def start(self, service: str) -> None:
        name = f"connector.{VENUE}" if service == "connector" else service
        self.services[service] = self.children.start(service_command(name, "--config", str(self.config)),
                                                     env=self.env, log=self.work / f"{service}.log")

    async def ready(self, *services: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for service in services:
            await wait_ready(self.nc, service, self.services[service], max(0.1, deadline - time.monotonic()))

    def check_alive(self) -> None:
        for service, child in self.services.items():
            code = child.exited()
            if code is not None:
                raise RuntimeError(f"{service} exited with {code}; see {child.log_path}")

    def psutil_processes(self) -> dict[str, psutil.Process]:
        return {service: psutil.Process(child.pid) for service, child in self.services.items()}


class CpuSampler:
    """CPU use of named processes from the moment it is created: `percent()` (100 = one
    core; plus `machine`, everything on the host but idle and iowait, `others`, what the
    host spent outside these processes, and `steal`) and `seconds()` of CPU time each."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.started = time.perf_counter()
        self.host = psutil.cpu_times()
        self.process_times = {name: self._cpu(process) for name, process in processes.items()}

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            return float("nan")
        return times.user + times.system

    def seconds(self) -> dict[str, float]:
        return {name: self._cpu(process) - self.process_times[name] for name, process in self.processes.items()}

    def percent(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.started
        result = {name: 100 * used / elapsed for name, used in self.seconds().items()}
        host = psutil.cpu_times()
        deltas = {name: getattr(host, name) - getattr(self.host, name) for name in host._fields
                  if name not in ("guest", "guest_nice")}  # Linux counts those in user and nice already
        wall = sum(deltas.values()) / (os.cpu_count() or 1)
        if wall > 0:
            result["machine"] = 100 * (sum(deltas.values()) - deltas["idle"] - deltas.get("iowait", 0.0)) / wall
            result["steal"] = 100 * deltas.get("steal", 0.0) / wall
            result["others"] = max(0.0, result["machine"] - sum(v for k, v in result.items()
                                                                 if k not in SYSTEM_KEYS and v == v))
        return result


async def consumer_backlog(js: Any, consumers: Iterable[Consumer]) -> dict[str, tuple[int, int]]:
    """durable -> (num_pending, num_ack_pending)."""
    consumers = list(consumers)
    infos = await asyncio.gather(*(js.consumer_info(c.stream.name, c.durable) for c in consumers),
                                 return_exceptions=True)
    result = {}
    for consumer, info in zip(consumers, infos, strict=True):
        result[consumer.durable] = (-1, -1) if isinstance(info, Exception) else (info.num_pending, info.num_ack_pending)
    return result


async def wait_drained(js: Any, consumers: Iterable[Consumer], timeout: float,
                       also: Callable[[], bool] = lambda: True) -> tuple[bool, dict[str, tuple[int, int]]]:
    """Wait until every consumer has nothing pending or unacknowledged (and `also()`)."""
    consumers = list(consumers)
    deadline = time.monotonic() + timeout
    while True:
        if also():
            backlog = await consumer_backlog(js, consumers)
            if all(pending == 0 and ack_pending == 0 for pending, ack_pending in backlog.values()):
                return True, backlog
        if time.monotonic() > deadline:
            return False, await consumer_backlog(js, consumers)
        await asyncio.sleep(0.05)


async def stream_messages(js: Any, *names: str) -> dict[str, int]:
    return {name: (await js.stream_info(name)).state.messages for name in names}


async def bucket_keys(nc: nats.NATS) -> int:
    """Distinct keys in the orders bucket (the stream's number of subjects)."""
    reply = await nc.request(f"$JS.API.STREAM.INFO.KV_{ORDERS_BUCKET}", b"", timeout=5)
    return int(json.loads(reply.data)["state"].get("num_subjects", 0))


def audit_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return dict(db.execute("SELECT stream, COUNT(*) FROM audit_log GROUP BY stream").fetchall())


async def open_orders(nc: nats.NATS) -> int | None:
    request = ListOrders(venue=VENUE, account=ACCOUNT, open_only=True, limit=10_000)
    try:
        reply = msgspec.json.decode((await nc.request(subjects.OMS_QUERY, encode(request), timeout=5)).data,
                                    type=OmsReply)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return None
    return len(reply.orders) if reply.ok else None


class _Record(msgspec.Struct):
    client_order_id: str = ""
    status: str = ""


async def final_records(nc: nats.NATS) -> dict[str, str]:
    """client order id -> status of every order record in the bucket, read with an ordered
    consumer (the latest value of each key)."""
    js = nc.jetstream()
    prefix = f"$KV.{ORDERS_BUCKET}.order."
    records: dict[str, str] = {}
    subscription = await js.subscribe(f"{prefix}>", stream=f"KV_{ORDERS_BUCKET}", ordered_consumer=True,
                                      deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                                      pending_msgs_limit=1_000_000, pending_bytes_limit=1024 * 1024 * 1024)
    record_decoder = msgspec.json.Decoder(_Record)
    try:
        while True:
            msg = await subscription.next_msg(timeout=10)
            if msg.data:
                record = record_decoder.decode(msg.data)
                records[record.client_order_id] = record.status
            if msg.metadata.num_pending == 0:
                return records
    finally:
        await subscription.unsubscribe()


async def stored_times(js: Any, stream: str, first_seq: int, last_seq: int, kind: str | None) -> dict[str, float]:
    """client order id -> when `stream` stored its first message (of type `kind`, if given)
    between two sequence numbers, as perf_counter() seconds of this process."""
    times: dict[str, float] = {}
    if last_seq < first_seq:
        return times
    name = f"bench-read-{uuid.uuid4().hex[:10]}"
    await js.add_consumer(stream, ConsumerConfig(
        name=name, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first_seq,
        ack_policy=AckPolicy.NONE, mem_storage=True, inactive_threshold=30.0,
    ))
    subscription = await js.pull_subscribe_bind(name, stream=stream)
    try:
        sequence = first_seq - 1
        while sequence < last_seq:
            for msg in await subscription.fetch(min(1000, last_seq - sequence), timeout=5):
                metadata = msg.metadata
                sequence = metadata.sequence.stream
                if sequence > last_seq:
                    break
                try:
                    answer = _answer_decoder.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                if answer.client_order_id and (kind is None or answer.type == kind) \
                        and answer.client_order_id not in times:
                    times[answer.client_order_id] = (metadata.timestamp - EPOCH) / timedelta(seconds=1) - WALL_OFFSET
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, name)
    return times


def dump_marks(path: Path, run: Run) -> None:
    """One line per measured order: its times (ms from the run's first publish)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    origin = run.published[run.warm]
    with path.open("w") as out:
        out.write("published,stream1,stream2,stream3,accepted\n")
        for marks in run.marks:
            out.write(",".join(f"{(mark - origin) * 1000:.3f}" if mark else "" for mark in marks) + "\n")


async def last_sequences(js: Any, streams: Iterable[str]) -> dict[str, int]:
    return {name: (await js.stream_info(name)).state.last_seq for name in streams}


async def hop_breakdown(js: Any, run: Run, streams: tuple[str, str, str], before: dict[str, int]) -> None:
    """Split each measured round trip at the moments the three streams stored the order's
    messages (JetStream's own timestamps, same host clock): client -> first stream, first
    stage (risk or forwarder), second stage (connector or forwarder), last stream -> client."""
    after = await last_sequences(js, streams)
    kinds = (None, None, None if run.raw else "accepted")
    stored = [await stored_times(js, stream, before[stream] + 1, after[stream], kind)
              for stream, kind in zip(streams, kinds, strict=True)]
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for i in range(run.warm, run.count):
        coid = run.client_order_id(i)
        marks = [run.published[i], *(times.get(coid, 0.0) for times in stored), run.accepted[i]]
        run.marks.append(marks)
        if all(marks):
            for hop, start, end in zip(HOPS, marks, marks[1:], strict=False):
                hops[hop].append((end - start) * 1000)
    run.hops = {hop: sorted(values) for hop, values in hops.items()}


# --- the baseline forwarder (a subprocess) --------------------------------------------------
async def raw_forwarder(url: str, stage: str) -> None:
    """One raw hop: pull a batch, publish each message on (pipelined), await every ack,
    then ack the batch; what risk and the connector do, minus their decisions."""
    consumer, batch, prefix_in, prefix_out, suffixes = RAW_STAGES[stage]
    nc = await nats.connect(url, name=f"bench-orders-raw-{stage}")
    js = nc.jetstream()
    subscription = await js.pull_subscribe_bind(durable=consumer.durable, stream=consumer.stream.name)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    forwarded = 0
    while not stop.is_set():
        try:
            messages = await subscription.fetch(batch, timeout=1.0)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        futures = []
        for msg in messages:
            subject = prefix_out + msg.subject.removeprefix(prefix_in)
            msg_id = (msg.headers or {}).get(MSG_ID, "")
            for suffix in suffixes:
                futures.append(await js.publish_async(subject, msg.data, headers={MSG_ID: msg_id + suffix}))
        for ack in await asyncio.gather(*futures):
            if isinstance(ack, Exception):
                raise ack
        for msg in messages:
            await msg.ack()
        forwarded += len(messages)
    print(f"raw forwarder {stage} forwarded {forwarded} messages", flush=True)
    await subscription.unsubscribe()
    await nc.close()


async def start_baseline(js: Any, children: Children, url: str, work: Path) -> dict[str, psutil.Process]:
    settings = StreamSettings()
    for stream in (RAW_CMD, RAW_ROUTE, RAW_EVT):
        await js.add_stream(stream.config(settings))
    processes = {}
    for stage, (consumer, *_rest) in RAW_STAGES.items():
        await js.add_consumer(consumer.stream.name, consumer.config())
        command = [sys.executable, str(Path(__file__).resolve()), "--raw-forwarder", url, "--stage", stage]
        child = children.start(command, log=work / f"raw-{stage}.log")
        processes[f"raw-{stage}"] = psutil.Process(child.pid)
    return processes


# --- profiling ------------------------------------------------------------------------------
def py_spy(children: Children, pid: int, seconds: float, out: Path) -> ChildProcess | None:
    """py-spy (from the virtualenv) recording `pid` for `seconds` into `out` (collapsed stacks)."""
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        print("py-spy not found next to this Python; not profiling", file=sys.stderr)
        return None
    command = [str(binary), "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-f", "raw", "-o", str(out),
               "--nonblocking", "-r", "100"]
    return children.start(command, log=out.with_suffix(".log"))


def summarize_profile(path: Path, top: int = 18) -> list[str]:
    """Self and inclusive time per function from py-spy's collapsed stacks."""
    if not path.exists():
        return [f"(no profile at {path})"]
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in frame else frame for frame in stack.split(";")]
        frames = [frame for frame in frames if not frame.startswith("process ") and not frame.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return ["(empty profile)"]
    lines = [f"{total} samples; self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive time (entry points left out):")
    lines += [f"  {100 * n / total:5.1f}%  {name}"
              for name, n in [item for item in inclusive.most_common() if item[1] < 0.9 * total][:top]]
    return lines


# --- the benchmark --------------------------------------------------------------------------
@dataclass
class Measured:
    """One run of orders and the CPU it cost."""

    run: Run
    cpu: dict[str, float]  # % during the offered period (100 = one core), with SYSTEM_KEYS
    us_per_order: dict[str, float]  # CPU µs per order of each process, until every answer is in

    def line(self) -> str:
        return " ".join(f"{name} {us:.0f}" for name, us in self.us_per_order.items())


@dataclass
class Step(Measured):
    backlog_at_end: dict[str, tuple[int, int]] = field(default_factory=dict)
    drained: bool = False
    lag: float = 0.0  # seconds from the last publish until every answer is in and every consumer drained
    problems: list[str] = field(default_factory=list)
    audit_detail: str = ""
    bucket_keys: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems


def per_order(cpu: CpuSampler, run: Run) -> dict[str, float]:
    return {name: 1e6 * seconds / run.count for name, seconds in cpu.seconds().items()}


async def measure_latency(client: Client, rate: float, paths: dict[str, dict[str, psutil.Process]],
                          args: argparse.Namespace) -> dict[str, Measured]:
    """Both paths at one rate, in alternating slices (A B B A A B ...) of `--slice` seconds,
    so that load from elsewhere on the host falls on both alike. Each slice's answers are in
    before the next slice starts; a warm-up of each path comes first."""
    per_slice = max(1, round(rate * args.slice))
    slices = max(1, round(args.seconds / args.slice))
    streams = {"tradebus": (COMMANDS.name, ROUTE.name, EVENTS.name),
               "raw": (RAW_CMD.name, RAW_ROUTE.name, RAW_EVT.name)}
    runs = {kind: client.new_run(rate, 0, args.warmup, raw=kind == "raw", label=kind[0].upper(),
                                 count=slices * per_slice)
            for kind in paths}
    before = {kind: await last_sequences(client.js, streams[kind]) for kind in paths}
    for run in runs.values():
        await client.offer(run, 0, run.warm)
        await client.wait_answers(run, args.drain, 0, run.warm)
    usage: dict[str, list[dict[str, float]]] = {kind: [] for kind in paths}
    seconds: dict[str, collections.Counter[str]] = {kind: collections.Counter() for kind in paths}
    for k in range(slices):
        for kind in (list(paths) if k % 2 == 0 else list(reversed(paths))):
            run = runs[kind]
            lo = run.warm + k * per_slice
            cpu = CpuSampler(paths[kind])
            await client.offer(run, lo, lo + per_slice)
            usage[kind].append(cpu.percent())
            await client.wait_answers(run, args.drain, lo, lo + per_slice)
            seconds[kind].update(cpu.seconds())
    result = {}
    for kind, run in runs.items():
        mean = {key: sum(sample.get(key, 0.0) for sample in usage[kind]) / len(usage[kind]) for key in usage[kind][0]}
        us = {name: 1e6 * used / (slices * per_slice) for name, used in seconds[kind].items()}
        result[kind] = Measured(run, mean, us)
        await hop_breakdown(client.js, run, streams[kind], before[kind])
    return result


async def probe(client: Client, raw: bool, timeout: float = 20.0) -> None:
    """One order through the whole path before measuring (risk needs its first quote)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.new_run(1, 1, 0, raw=raw, label="P")
        await client.offer(run)
        await client.wait_answers(run, 3)
        if run.accepted[0]:
            return
    raise RuntimeError(f"no order made the round trip in {timeout:.0f} s ({'raw' if raw else 'tradebus'} path)")


async def sustained_step(client: Client, fleet: Fleet, rate: float, args: argparse.Namespace,
                         expected_orders: int, processes: dict[str, psutil.Process]) -> Step:
    js = client.js
    run = client.new_run(rate, args.seconds, 0, raw=False, label="S")
    profilers = []
    if rate == args.profile_rate:
        for service in args.profile:
            path = fleet.work / f"profile-{service}-{rate:g}.txt"
            profilers.append(py_spy(fleet.children, fleet.services[service].pid, args.seconds, path))
    cpu = CpuSampler(processes)
    await client.offer(run)
    ended = time.perf_counter()
    usage = cpu.percent()
    backlog_at_end = await consumer_backlog(js, FLEET_CONSUMERS)
    drained, backlog_after = await wait_drained(js, FLEET_CONSUMERS, args.drain, also=lambda: not run.missing_final)
    lag = time.perf_counter() - ended
    step = Step(run, usage, per_order(cpu, run), backlog_at_end=backlog_at_end, drained=drained, lag=lag)
    for profiler in profilers:
        if profiler is not None and profiler.process is not None:
            profiler.process.wait(30)  # it ends by itself after recording
    fleet.check_alive()

    problems = step.problems
    if run.publish_rate() < 0.97 * rate:
        problems.append(f"client published only {run.publish_rate():,.0f}/s")
    if run.publish_errors:
        problems.append(f"{run.publish_errors} command publishes failed")
    if run.missing_accepted or run.missing_final:
        problems.append(f"{run.missing_accepted} without accepted, {run.missing_final} without final event")
    if run.rejects:
        problems.append(f"rejected: {dict(run.rejects)}")
    if run.acceptance_rate() < 0.97 * rate:
        problems.append(f"accepted only {run.acceptance_rate():,.0f}/s")
    if not drained:
        problems.append(f"not drained in {args.drain:g} s: " + ", ".join(
            f"{name} {p}+{a}" for name, (p, a) in backlog_after.items() if p or a))
    elif lag > args.max_lag:
        problems.append(f"fell behind: {lag:.1f} s to drain")
    open_count = await open_orders(client.nc)
    if open_count is None or open_count:
        problems.append(f"order manager: {'no answer' if open_count is None else f'{open_count} open orders'}")
    step.bucket_keys = await bucket_keys(client.nc)
    if step.bucket_keys < expected_orders + run.count:
        problems.append(f"orders bucket has {step.bucket_keys} keys, expected {expected_orders + run.count}")
    streams = await stream_messages(js, COMMANDS.name, ROUTE.name, EVENTS.name)
    stored = audit_counts(fleet.work / "data" / "audit.sqlite")
    step.audit_detail = ", ".join(f"{name} {stored.get(name, 0)}/{count}" for name, count in streams.items())
    if any(stored.get(name, 0) != count for name, count in streams.items()):
        problems.append(f"audit store incomplete ({step.audit_detail})")
    return step


SERVICE_OF = {RISK_COMMANDS.durable: "risk", connector_consumer(VENUE).durable: "connector",
              OMS_ROUTES.durable: "oms", OMS_EVENTS.durable: "oms", **{c.durable: "audit" for c in AUDIT_CONSUMERS}}


def diagnose(step: Step) -> tuple[str, str]:
    """(what limited the rate, the figures behind it) for a failing (or the last) step.

    CPU time per order of each process, summed, says how many orders per second the
    machine's cores can carry at most; the busiest process alone, how many one core can.
    The consumer with the largest backlog at the end of the offered period is the stage
    that fell behind (on a saturated machine: the one the scheduler starved most)."""
    cores = os.cpu_count() or 1
    us = step.us_per_order
    total = sum(v for v in us.values() if v == v)
    busiest, busiest_us = max(us.items(), key=lambda item: item[1])
    machine, others = step.cpu.get("machine", 0.0), step.cpu.get("others", 0.0)
    durable, (pending, unacked) = max(step.backlog_at_end.items(), key=lambda item: sum(item[1]))
    figures = (
        f"CPU per order: {total:,.0f} µs in all ({step.line()}), so at most {cores * 1e6 / total:,.0f} orders/s on "
        f"{cores} cores; busiest process {busiest} at {busiest_us:,.0f} µs/order (at most {1e6 / busiest_us:,.0f}/s "
        f"on one core); host {machine:.0f}% busy of {100 * cores}% ({others:.0f}% outside the bench, steal "
        f"{step.cpu.get('steal', 0):.0f}%); largest backlog at the end of the step: {durable} {pending + unacked:,}"
    )
    run = step.run
    if run.publish_rate() < 0.97 * run.rate:
        verdict = "the client's command publishing"
    elif machine >= 90 * cores:
        verdict = f"CPU: every core busy (the fleet, nats-server and the client need {total:,.0f} µs per order)"
    elif max(v for k, v in step.cpu.items() if k not in SYSTEM_KEYS) >= 90:
        name = max(((k, v) for k, v in step.cpu.items() if k not in SYSTEM_KEYS), key=lambda item: item[1])[0]
        verdict = f"{name}: one core saturated"
    else:
        verdict = f"{SERVICE_OF.get(durable, durable)} fell behind without any core saturated"
    return verdict, figures


async def bench(server: NatsServer, work: Path, children: Children, args: argparse.Namespace) -> dict[str, Any]:
    assert server.process is not None
    url = server.url
    nc = await nats.connect(url, name="bench-orders-client", max_reconnect_attempts=0)
    try:
        client = Client(nc)
        await client.start()
        fleet = Fleet(nc, url, work, children)
        base = {"nats-server": psutil.Process(server.process.pid), "client": psutil.Process()}

        # 1. latency through risk and the paper connector, and 2. through the raw baseline
        # (same server, same client code), one after the other at each rate
        print("starting risk, connector and the raw forwarders ...", file=sys.stderr, flush=True)
        fleet.start("risk")
        fleet.start("connector")
        raw_processes = await start_baseline(client.js, children, url, work)
        await fleet.ready("risk", "connector")
        await asyncio.wait_for(client.quoted.wait(), 30)
        await probe(client, raw=False)
        await probe(client, raw=True)
        latency: dict[str, dict[float, Measured]] = {"tradebus": {}, "raw": {}}
        paths = {"tradebus": {**base, **fleet.psutil_processes()}, "raw": {**base, **raw_processes}}
        for rate in args.rates:
            print(f"latency at {rate:g}/s ...", file=sys.stderr, flush=True)
            for kind, measured in (await measure_latency(client, rate, paths, args)).items():
                latency[kind][rate] = measured
                if args.dump:
                    dump_marks(Path(args.dump) / f"latency-{kind}-{rate:g}.csv", measured.run)
        for process in raw_processes.values():
            process.terminate()

        # 3. sustained rate with the whole order path
        print("starting oms and audit ...", file=sys.stderr, flush=True)
        fleet.start("oms")
        fleet.start("audit")
        await fleet.ready("oms", "audit")
        await wait_drained(client.js, FLEET_CONSUMERS, 60)
        processes = {**base, **fleet.psutil_processes()}
        expected = sum(run.count for run in client.runs.values() if not run.raw)
        steps: list[Step] = []
        for rate in args.ramp:
            print(f"sustained {rate:g}/s ...", file=sys.stderr, flush=True)
            step = await sustained_step(client, fleet, rate, args, expected, processes)
            expected += step.run.count
            steps.append(step)
            if not step.passed:
                break
        print("reading the orders bucket ...", file=sys.stderr, flush=True)
        records = await final_records(nc)
        for step in steps:
            run = step.run
            final = sum(1 for i in range(run.count) if records.get(run.client_order_id(i)) in FINAL_STATUSES)
            if final != run.count:
                step.problems.append(f"orders bucket: {run.count - final} orders not in a final state")
        profiles = {service: summarize_profile(work / f"profile-{service}-{args.profile_rate:g}.txt")
                    for service in args.profile}
        return report(latency, steps, profiles, args)
    finally:
        await nc.close()


# --- report ---------------------------------------------------------------------------------
def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def _percentiles(run: Run) -> dict[str, float]:
    values = run.latencies_ms()
    return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "p99": percentile(values, 0.99),
            "max": values[-1] if values else float("nan")}


def report(latency: dict[str, dict[float, Measured]], steps: list[Step],
           profiles: dict[str, list[str]], args: argparse.Namespace) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    print(f"orders: the order path vs raw nats-py JetStream hops ({cores} CPUs, {sys.version.split()[0]})\n")
    print("round trip: start of the place command's publish -> its `accepted` event received (ms)")
    print("  tradebus: client -> CMD -> risk -> ROUTE -> paper connector -> EVENTS -> client "
          "(risk + connector running)")
    print("  raw:      client -> BENCH_CMD -> forwarder -> BENCH_ROUTE -> forwarder -> BENCH_EVT -> client")
    print(f"  {'rate/s':>7} {'path':9} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'lost':>5} {'rejected':>8}"
          f"  {'host %':>6} {'others %':>8}  CPU µs per order")
    figures: dict[str, dict[float, dict[str, float]]] = {"tradebus": {}, "raw": {}}
    for rate in args.rates:
        for kind in ("tradebus", "raw"):
            measured = latency[kind][rate]
            run, cpu = measured.run, measured.cpu
            figures[kind][rate] = stats = _percentiles(run)
            print(f"  {rate:>7g} {kind:9} {_ms(stats['p50']):>7} {_ms(stats['p90']):>7} {_ms(stats['p99']):>7} "
                  f"{_ms(stats['max']):>7} {run.missing_accepted:>5} {sum(run.rejects.values()):>8}  "
                  f"{cpu.get('machine', 0):>6.0f} {cpu.get('others', 0):>8.0f}  {measured.line()}")
        for kind in ("tradebus", "raw"):
            hops = latency[kind][rate].run.hops
            print(f"  {'':7} {kind:9} p50 (p99) per hop: " + " | ".join(
                f"{name} {_ms(percentile(hops.get(hop, []), 0.5))} ({_ms(percentile(hops.get(hop, []), 0.99))})"
                for hop, name in zip(HOPS, HOP_NAMES[kind], strict=True)))
        tradebus, raw = figures["tradebus"][rate], figures["raw"][rate]
        print(f"  {rate:>7g} {'ratio':9} {tradebus['p50'] / raw['p50']:>7.2f} {tradebus['p90'] / raw['p90']:>7.2f} "
              f"{tradebus['p99'] / raw['p99']:>7.2f}")
    print(f"  target: p50 at {args.rates[0]:g}/s within 1.5x of raw\n")

    print("sustained: risk + connector + oms + audit; a step passes when every order is accepted and final, every")
    print("consumer drained, the order manager has no open order, its bucket and the audit store are complete")
    names = ["nats-server", "client", "risk", "connector", "oms", "audit"]
    print(f"  {'offered':>7} {'sent/s':>7} {'acc/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'drain s':>7}  "
          + " ".join(f"{name[:9]:>9}" for name in names) + f" {'host':>5} {'others':>6}  result")
    sustained, best = 0.0, None
    for step in steps:
        run = step.run
        stats = _percentiles(run)
        cpus = " ".join(f"{step.cpu.get(name, float('nan')):>8.0f}%" for name in names)
        verdict = "pass" if step.passed else "FAIL: " + "; ".join(step.problems)
        print(f"  {run.rate:>7g} {run.publish_rate():>7.0f} {run.acceptance_rate():>7.0f} {_ms(stats['p50']):>7} "
              f"{_ms(stats['p99']):>8} {step.lag:>7.1f}  {cpus} {step.cpu.get('machine', 0):>4.0f}% "
              f"{step.cpu.get('others', 0):>5.0f}%  {verdict}")
        backlog = ", ".join(f"{name} {p + a:,}" for name, (p, a) in step.backlog_at_end.items() if p + a)
        print(f"  {'':7} CPU µs/order: {step.line()}; backlog when the step ended: {backlog or 'none'}")
        if step.passed:
            sustained, best = run.rate, step
    print(f"  (CPU % during the offered {args.seconds:g} s, 100 = one core; host = the whole machine, others = "
          f"processes outside the bench)")
    limiting = next((step for step in steps if not step.passed), None)
    verdict, detail = diagnose(limiting or steps[-1]) if steps else ("-", "")
    if limiting is None:
        verdict = f"not reached: the highest offered rate passed ({verdict})"
    print(f"\n  highest sustained rate with nothing lost: {sustained:,.0f} orders/s (target >= 2,000)")
    print(f"  limited by: {verdict}")
    print(f"  {detail}\n")
    for name, lines in profiles.items():
        print(f"py-spy profile of {name} during the {args.profile_rate:g}/s step:")
        for line in lines:
            print(f"  {line}")
        print()

    first = args.rates[0]
    value, baseline = figures["tradebus"][first]["p50"], figures["raw"][first]["p50"]
    summary: dict[str, Any] = {
        "bench": "orders",
        "value": round(value, 3),
        "baseline": round(baseline, 3),
        "unit": "ms",
        "ratio": round(value / baseline, 3) if baseline else None,
        "rate_s": first,
        "p99_ms": round(figures["tradebus"][first]["p99"], 3),
        "baseline_p99_ms": round(figures["raw"][first]["p99"], 3),
    }
    for rate in args.rates[1:]:
        key = f"{rate:g}"
        summary[f"p50_{key}_ms"] = round(figures["tradebus"][rate]["p50"], 3)
        summary[f"p99_{key}_ms"] = round(figures["tradebus"][rate]["p99"], 3)
        summary[f"baseline_p50_{key}_ms"] = round(figures["raw"][rate]["p50"], 3)
        summary[f"baseline_p99_{key}_ms"] = round(figures["raw"][rate]["p99"], 3)
    summary.update({
        "sustained_orders_s": sustained,
        "sustained_limited_by": verdict,
        "cpu_us_per_order": ({k: round(v) for k, v in (best or limiting or steps[-1]).us_per_order.items()}
                             if steps else {}),
        "others_cpu_percent": round((limiting or best or steps[-1]).cpu.get("others", 0.0)) if steps else None,
        "cpus": cores,
    })
    return summary


def _services(text: str) -> list[str]:
    services = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(services) - {"risk", "connector", "oms", "audit"}
    if unknown:
        raise argparse.ArgumentTypeError(f"not a service: {', '.join(sorted(unknown))}")
    return services


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per rate (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="warm-up seconds before each latency rate (default 1)")
    parser.add_argument("--slice", type=float, default=1.0,
                        help="latency: seconds of one path before switching to the other (default 1)")
    parser.add_argument("--rates", type=_rates, default=[200.0, 1000.0], help="latency rates (default 200,1000)")
    parser.add_argument("--ramp", type=_rates, default=[500.0, 750.0, 1000.0, 1250.0, 1500.0, 1750.0, 2000.0, 2500.0,
                                                          3000.0, 3500.0, 4000.0],
                        help="sustained rates, in order; stops at the first failing one")
    parser.add_argument("--max-lag", type=float, default=1.0,
                        help="seconds a sustained step may take to drain after its last order (default 1)")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds to wait for answers and drained "
                        "consumers before calling a run lost (default 15)")
    parser.add_argument("--profile", type=_services, default=[],
                        help="py-spy these services (comma-separated: risk, connector, oms, audit)")
    parser.add_argument("--profile-rate", type=float, default=2000.0, help="during this ramp step (default 2000)")
    parser.add_argument("--dump", metavar="DIR", help="write each latency run's per-order times (CSV) into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print its path")
    parser.add_argument("--raw-forwarder", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=sorted(RAW_STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = event_loop_runner()
    if args.raw_forwarder:
        run(raw_forwarder(args.raw_forwarder, args.stage))
        return 0

    return run_benchmark("orders", lambda server, work, children: bench(server, work, children, args), keep=args.keep)

if __name__ == "__main__":
    sys.exit(main())
