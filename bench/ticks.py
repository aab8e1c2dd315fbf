"""Market-data throughput of the paper connector against a raw nats-py publisher.

    python bench/ticks.py [--seconds N] [--warmup S]

One nats-server on a free port, one subscriber in this process on `tradebus.md.paper.>`
(raw nats-py, counting messages and bytes in the callback), and two publishers measured one
after the other with the same subscriber code:

1. tradebus: `tradebus run connector --venue paper` as a subprocess in firehose mode
   (TRADEBUS_PAPER__TICK_INTERVAL=0). It starts with no active stream (`subscribe = []`),
   so its resident memory is sampled right after its first READY heartbeat, before any
   market data flows; then a Subscribe request for every symbol starts the firehose.
   Memory under load is the largest RSS sampled once a second while measuring.
2. baseline: a subprocess (this file with --raw-publisher) publishing a pre-encoded payload
   of the connector's average message size, as fast as nats-py allows, round-robin over
   the connector's subjects.

Each run: warm up, then count what the subscriber received during `--seconds` seconds.
The last line printed is one JSON object: {"bench": "ticks", "value": ..., "baseline": ...,
"unit": "msg/s", "ratio": value / baseline, ...extra keys}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import nats
import psutil
from harness import STOP_GRACE, Children, event_loop_runner, run_benchmark  # noqa: E402 - bench/ is the script directory

from tradebus.client.leases import StreamLease
from tradebus.schemas import subjects
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.values import TICK_KINDS
from tradebus.shared.launcher import wait_ready
from tradebus.shared.natsserver import NatsServer

VENUE = "paper"
FIREHOSE = f"tradebus.md.{VENUE}.>"
MB = 1024 * 1024

# The default paper instruments, spelled out so the bench does not move when defaults do.
CONFIG = """\
[paper]
subscribe = []          # nothing flows until the bench subscribes (start-up RSS is idle RSS)
instruments = [
  { symbol = "BTC/USDT", base = "BTC", quote = "USDT", tick_size = "0.01", lot_size = "0.00001", min_quantity = "0.00001", min_notional = "5", initial_price = "60000" },
  { symbol = "ETH/USDT", base = "ETH", quote = "USDT", tick_size = "0.01", lot_size = "0.0001", min_quantity = "0.0001", min_notional = "5", initial_price = "3000" },
  { symbol = "SOL/USDT", base = "SOL", quote = "USDT", tick_size = "0.01", lot_size = "0.001", min_quantity = "0.001", min_notional = "5", initial_price = "150" },
  { symbol = "AAPL", base = "AAPL", quote = "USD", tick_size = "0.01", lot_size = "1", min_quantity = "1", min_notional = "1", initial_price = "190", asset_class = "equity" },
  { symbol = "BRK.B", base = "BRK.B", quote = "USD", tick_size = "0.01", lot_size = "1", min_quantity = "1", min_notional = "1", initial_price = "420", asset_class = "equity" },
]
"""
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "AAPL", "BRK.B"]


def write_recording(path: Path, rows: int = 20_000) -> None:
    """A recording of quotes and trades for SYMBOLS (random walk, fixed seed) for replay mode.

    Replay is the connector's hot path with no market simulation in it: parsing happened at
    load time, so what is measured is matching-engine upkeep, normalization and publishing.
    """
    import csv
    import random

    rng = random.Random(1)
    prices = {"BTC/USDT": 60000.0, "ETH/USDT": 3000.0, "SOL/USDT": 150.0, "AAPL": 190.0, "BRK.B": 420.0}
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["ts_event", "symbol", "kind", "bid", "bid_size", "ask", "ask_size", "price", "size", "aggressor"])
        for n in range(rows):
            symbol = SYMBOLS[n % len(SYMBOLS)]
            prices[symbol] *= 1 + rng.gauss(0, 0.0003)
            bid = round(prices[symbol], 2)
            ts = 1_767_225_600_000_000_000 + n * 1_000_000
            if n % 4 == 3:
                out.writerow([ts, symbol, "trade", "", "", "", "", f"{bid + 0.01:.2f}", rng.randint(1, 9), "buy"])
            else:
                out.writerow([ts, symbol, "quote", f"{bid:.2f}", rng.randint(1, 50), f"{bid + 0.02:.2f}", rng.randint(1, 50)])


def tradebus_command() -> list[str]:
    script = Path(sys.executable).parent / "tradebus"
    if script.exists():
        return [str(script)]
    found = shutil.which("tradebus")
    return [found] if found else [sys.executable, "-c", "import sys; from tradebus.cli.main import main; sys.exit(main())"]


# --- measuring ------------------------------------------------------------------------------
class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.first = asyncio.Event()

    async def on_message(self, msg: Any) -> None:
        self.messages += 1
        self.bytes += len(msg.data)
        if self.messages == 1:
            self.first.set()


class Result(msgspec.Struct):
    rate: float  # messages received per second
    avg_size: float  # average payload bytes
    seconds: float
    messages: int
    rss_samples: list[int] = []
    cpu_percent: float = 0.0  # the publisher's CPU use while measuring (100 = one core)
    subscriber_cpu: float = 0.0  # this process
    server_cpu: float = 0.0  # nats-server
    published_rate: float | None = None  # what the publisher says it sent, when it says


async def subscriber(url: str) -> tuple[nats.NATS, Counter, list[str]]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(type(exc).__name__)

    nc = await nats.connect(url, name="bench-ticks-subscriber", error_cb=on_error, max_reconnect_attempts=0)
    counter = Counter()
    await nc.subscribe(FIREHOSE, cb=counter.on_message, pending_msgs_limit=2_000_000, pending_bytes_limit=1024 * MB)
    await nc.flush()
    return nc, counter, errors


async def measure(
    counter: Counter, process: psutil.Process, server: psutil.Process, warmup: float, seconds: float
) -> Result:
    """Counts over `seconds` after `warmup`, sampling the publisher's RSS once a second."""
    await asyncio.wait_for(counter.first.wait(), 30)
    await asyncio.sleep(warmup)
    me = psutil.Process()
    for p in (process, me, server):
        p.cpu_percent()  # starts the CPU measurement interval
    start_messages, start_bytes, started = counter.messages, counter.bytes, time.perf_counter()
    rss: list[int] = []
    deadline = started + seconds
    while (left := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(min(1.0, left))
        rss.append(process.memory_info().rss)
    elapsed = time.perf_counter() - started
    cpu, subscriber_cpu, server_cpu = (p.cpu_percent() for p in (process, me, server))
    messages = counter.messages - start_messages
    size = (counter.bytes - start_bytes) / messages if messages else 0.0
    return Result(
        rate=messages / elapsed, avg_size=size, seconds=elapsed, messages=messages, rss_samples=rss,
        cpu_percent=cpu, subscriber_cpu=subscriber_cpu, server_cpu=server_cpu,
    )


async def run_connector(
    url: str, server: psutil.Process, work: Path, children: Children, warmup: float, seconds: float,
    mode_env: dict[str, str],
) -> tuple[Result, int]:
    config = work / "paper.toml"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        "TRADEBUS_PAPER__TICK_INTERVAL": "0",
        "TRADEBUS_PAPER__SEED": "1",
        "TRADEBUS_LOG_JSON": "false",
        "TRADEBUS_HEARTBEAT_INTERVAL": "1",
        **mode_env,
    }
    nc, counter, errors = await subscriber(url)
    statuses: asyncio.Queue[ServiceStatus] = asyncio.Queue()
    status_decoder = msgspec.json.Decoder(ServiceStatus)

    async def on_status(msg: Any) -> None:
        statuses.put_nowait(status_decoder.decode(msg.data))

    await nc.subscribe(subjects.status("connector", VENUE), cb=on_status)
    await nc.flush()
    command = [*tradebus_command(), "run", "connector", "--venue", VENUE, "--nats-url", url, "--config", str(config)]
    child = children.start(command, env=env, log=work / "connector.log")
    process = psutil.Process(child.pid)
    try:
        await wait_ready(nc, "connector", child, 60)
        rss_startup = process.memory_info().rss  # idle: no stream is active yet

        # Held (renewed) for the whole run: a run longer than the lease must not lose its streams.
        lease = StreamLease(nc, VENUE, ["*"], TICK_KINDS)
        answer = await lease.open()
        if answer is None or not answer.ok:
            raise RuntimeError(f"subscribe refused or unanswered: {answer}")

        async def published_total() -> tuple[float, int]:
            while not statuses.empty():
                statuses.get_nowait()
            status = await asyncio.wait_for(statuses.get(), 10)
            return time.perf_counter(), status.counters.get("market_data_published", 0)

        measured = asyncio.create_task(measure(counter, process, server, warmup, seconds))
        await asyncio.sleep(warmup + 0.5)
        t0, n0 = await published_total()
        result = await measured
        t1, n1 = await published_total()
        result.published_rate = (n1 - n0) / (t1 - t0) if t1 > t0 else None
        await lease.close()
    finally:
        await nc.close()
        child.stop(STOP_GRACE)
    if errors:
        print(f"subscriber errors during the tradebus run: {sorted(set(errors))}", file=sys.stderr)
    return result, rss_startup


async def run_baseline(
    url: str, server: psutil.Process, work: Path, children: Children, size: int, warmup: float, seconds: float
) -> Result:
    nc, counter, errors = await subscriber(url)
    command = [sys.executable, str(Path(__file__).resolve()), "--raw-publisher", url, "--size", str(size)]
    child = children.start(command, log=work / "raw-publisher.log")
    try:
        result = await measure(counter, psutil.Process(child.pid), server, warmup, seconds)
    finally:
        await nc.close()
        child.stop(STOP_GRACE)
    if errors:
        print(f"subscriber errors during the baseline run: {sorted(set(errors))}", file=sys.stderr)
    return result


# --- the baseline publisher (a subprocess) --------------------------------------------------
async def raw_publisher(url: str, size: int) -> None:
    """Pre-encoded payloads of `size` bytes, round-robin over the connector's subjects."""
    nc = await nats.connect(url, name="bench-ticks-raw-publisher")
    targets = [subjects.market_data(VENUE, kind, symbol) for symbol in SYMBOLS for kind in TICK_KINDS]
    payload = (b'{"type":"quote","pad":"' + b"x" * size)[: max(size - 2, 0)] + b'"}'
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sent = 0
    publish = nc.publish
    while not stop.is_set():
        for subject in targets:
            await publish(subject, payload)
        sent += len(targets)
        if sent % 10_000 < len(targets):
            await asyncio.sleep(0)  # let the signal handler and the flusher run
    print(f"raw publisher sent {sent} messages of {len(payload)} bytes", flush=True)
    await nc.close()


# --- report ---------------------------------------------------------------------------------
def per_cpu(result: Result) -> float:
    """Messages per second of the publisher's CPU time: steadier than the rate on a busy host."""
    return result.rate / (result.cpu_percent / 100) if result.cpu_percent else 0.0


def _table(title: str, connector: Result, baseline: Result, rss_startup: int | None) -> float:
    ratio = connector.rate / baseline.rate if baseline.rate else 0.0
    rows = [
        ("", "tradebus connector", "raw nats-py"),
        ("received msg/s", f"{connector.rate:,.0f}", f"{baseline.rate:,.0f}"),
        ("published msg/s (heartbeats)", f"{connector.published_rate or 0:,.0f}", "-"),
        ("avg payload bytes", f"{connector.avg_size:.0f}", f"{baseline.avg_size:.0f}"),
        ("MB/s", f"{connector.rate * connector.avg_size / MB:.1f}", f"{baseline.rate * baseline.avg_size / MB:.1f}"),
        ("publisher CPU %", f"{connector.cpu_percent:.0f}", f"{baseline.cpu_percent:.0f}"),
        ("msg per publisher CPU-second", f"{per_cpu(connector):,.0f}", f"{per_cpu(baseline):,.0f}"),
        ("subscriber CPU % (this process)", f"{connector.subscriber_cpu:.0f}", f"{baseline.subscriber_cpu:.0f}"),
        ("nats-server CPU %", f"{connector.server_cpu:.0f}", f"{baseline.server_cpu:.0f}"),
        ("RSS under load MB (max)", f"{max(connector.rss_samples, default=0) / MB:.1f}",
         f"{max(baseline.rss_samples, default=0) / MB:.1f}"),
        ("measured s", f"{connector.seconds:.1f}", f"{baseline.seconds:.1f}"),
    ]
    if rss_startup is not None:
        rows.insert(-2, ("RSS at start-up MB", f"{rss_startup / MB:.1f}", "-"))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    print(title)
    for row in rows:
        print(f"  {row[0]:<{width[0]}}  {row[1]:>{width[1]}}  {row[2]:>{width[2]}}")
    print(f"  ratio {ratio:.2f}\n")
    return ratio


def report(replay: Result, rss_startup: int, replay_baseline: Result, walk: Result, walk_baseline: Result) -> dict[str, Any]:
    print(f"ticks: paper connector firehose vs raw nats-py ({os.cpu_count()} CPUs, {sys.version.split()[0]})\n")
    ratio = _table("replay (recorded quotes and trades, as fast as possible) -- target ratio >= 0.6",
                   replay, replay_baseline, rss_startup)
    walk_ratio = _table("random walk (the market simulated in the connector process)", walk, walk_baseline, None)
    return {
        "bench": "ticks",
        "value": round(replay.rate, 1),
        "baseline": round(replay_baseline.rate, 1),
        "unit": "msg/s",
        "ratio": round(ratio, 3),
        "avg_payload_bytes": round(replay.avg_size, 1),
        "rss_startup_mb": round(rss_startup / MB, 1),
        "rss_load_mb": round(max(replay.rss_samples, default=0) / MB, 1),
        "msg_per_cpu_s": round(per_cpu(replay), 1),
        "random_walk_msg_s": round(walk.rate, 1),
        "random_walk_baseline_msg_s": round(walk_baseline.rate, 1),
        "random_walk_ratio": round(walk_ratio, 3),
        "cpus": os.cpu_count(),
    }


async def bench(server: NatsServer, work: Path, children: Children, warmup: float, seconds: float) -> dict[str, Any]:
    """Replay first (the headline: the connector's own hot path), then the random walk (the
    whole simulated venue in the same process), each against a raw baseline of its size."""
    assert server.process is not None
    url, process = server.url, psutil.Process(server.process.pid)
    recording = work / "recording.csv"
    write_recording(recording)
    replay_env = {"TRADEBUS_PAPER__REPLAY__PATH": str(recording), "TRADEBUS_PAPER__REPLAY__SPEED": "0",
                  "TRADEBUS_PAPER__REPLAY__LOOP": "true"}
    replay, rss_startup = await run_connector(url, process, work, children, warmup, seconds, replay_env)
    replay_baseline = await run_baseline(url, process, work, children, round(replay.avg_size), warmup, seconds)
    walk, _ = await run_connector(url, process, work, children, warmup, seconds, {})
    walk_baseline = await run_baseline(url, process, work, children, round(walk.avg_size), warmup, seconds)
    return report(replay, rss_startup, replay_baseline, walk, walk_baseline)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time of each run (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print its path")
    parser.add_argument("--raw-publisher", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = event_loop_runner()
    if args.raw_publisher:
        run(raw_publisher(args.raw_publisher, args.size))
        return 0

    return run_benchmark("ticks", lambda server, work, children: bench(server, work, children, args.warmup, args.seconds),
                         keep=args.keep)

if __name__ == "__main__":
    sys.exit(main())
