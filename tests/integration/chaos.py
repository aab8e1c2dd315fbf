"""A chaos run of the order path: a real nats-server and the four services as processes,
a client sending a bounded flow of orders over a few accounts, and kill -9 of one process
(risk, oms, audit, the paper connector or nats-server itself) at random moments chosen by
a seeded `random.Random`. What happened is collected for chaos_checks.py to judge and for
bench/chaos.py to measure.

The client acts as a careful client does: per account, one command at a time, each
published durably (`Client.send`: JetStream, `Nats-Msg-Id` = the command's dedupe id) and
sent again, the same command, until the bus acknowledges it; only then the next one. Places
and modifies carry a long time to live, so a slow recovery delays orders instead of turning
them into deadline refusals (those stay possible, and are counted apart).

A fault: kill -9, a random short pause, a restart (nats-server on the same port and store).
Right after the kill a probe order (account `probe`, a market order) is sent. The fleet has
recovered when every service sends READY heartbeats from its current process, the probe's
fill has reached the client and the order manager shows the probe filled. Faults do not
overlap: the next waits for the recovery of the last. A service that exits by itself (crash
only, e.g. after the bus died under it) is started again, as `tradebus up` would, and
recorded; one that lives without heartbeats does not recover: the run reports it. What a
killed order manager or audit logger held comes back after their durables' ack_wait, shorter
than the product's (processes.REDELIVERY_AFTER): the drain at the end need not wait 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import nats

from tradebus.client import Client
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder
from tradebus.schemas.commands import CancelOrder, ModifyOrder, OrderCommand, PlaceOrder
from tradebus.schemas.events import TERMINAL_EVENTS, OrderFilled
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, OrderStatus, OrderType, ServiceState, Side
from tradebus.shared.natsserver import NatsServer, free_port

from .helpers import read_stream
from .processes import UNLIMITED, ProcessFleet, create_durables_with_short_ack_wait
from .test_order_path_faults import settle

SERVICES = ("risk", "oms", "audit", "connector.paper")
NATS = "nats-server"
FAULT_KINDS = (*SERVICES, NATS)
PROBE_ACCOUNT = "probe"
SYMBOL = "ETH/USDT"
TTL_MS = 300_000  # the fleet's maximum: a slow recovery delays a command, it does not expire it
RECOVERY_LIMIT = 60.0  # seconds; a fleet not whole again by then counts as hung (and ends the faults)
HEARTBEAT = 0.2  # ProcessFleet's heartbeat interval
_status = decoder(Family.STATUS)
_event = decoder(Family.ORDER_EVENT)
_route = decoder(Family.ROUTE)


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    orders: int = 300  # places over all flow accounts; modifies and cancels come on top
    accounts: tuple[str, ...] = ("a1", "a2", "a3")
    kills_per_kind: int = 2
    pace: float = 0.2  # seconds between two commands of one account
    pause: tuple[float, float] = (0.5, 2.0)  # seconds of calm before each kill
    down: tuple[float, float] = (0.2, 2.0)  # seconds a killed process stays dead

    def config(self) -> str:
        funded = ", ".join(f'{a} = {{ USDT = "1000000", USD = "1000000" }}' for a in (*self.accounts, PROBE_ACCOUNT))
        # Risk waits 30 s for a silent connector before refusing its venue's orders
        # (`venue_unavailable`): a restart is slower than the default 5 s on a busy host.
        return f"""
[risk]
venue_heartbeat_timeout = 30

[paper]
seed = {self.seed}
tick_interval = 0.05
accounts = {{ {funded} }}
""" + UNLIMITED


@dataclass
class Sent:
    """One command as the client sent it: wall-clock ns of its first attempt and its ack."""

    command: OrderCommand
    first_sent: int
    acked: int = 0
    attempts: int = 0
    duplicate: bool = False


@dataclass
class Fault:
    kind: str
    killed: int  # wall-clock ns
    restarted: int = 0
    recovered: int = 0  # 0: not within RECOVERY_LIMIT
    probe: str = ""
    missing: str = ""  # what was still missing when the recovery limit ran out
    services_ready: int = 0  # when every service first beat READY from its current process again
    probe_answered: int = 0  # when the probe's fill first reached the client
    probe_attempts: int = 0  # publishes of the probe until the bus acknowledged it

    def describe(self, origin: int) -> str:
        def at(ns: int) -> str:
            return f"{(ns - self.killed) / 1e9:.1f}s" if ns else "never"

        return (f"{self.kind} killed at {(self.killed - origin) / 1e9:.1f}s: restarted {at(self.restarted)}, services "
                f"ready {at(self.services_ready)}, probe filled at the client {at(self.probe_answered)} "
                f"({self.probe_attempts} publishes), "
                f"recovered {at(self.recovered)}")


@dataclass
class Exit:
    """A process that ended by itself (not killed by the run) and was started again."""

    name: str
    code: int | None
    at: int


@dataclass
class Collected:
    """Everything a run leaves for the checks: what the client did and saw, the streams,
    the order manager's records, the CLI's verdicts and how the processes ended."""

    plan: ChaosPlan
    started: int  # wall-clock ns when the flow began
    sent: list[Sent]
    received: list[tuple[int, object]]  # (wall-clock ns, order event) as the client got them
    faults: list[Fault]
    exits: list[Exit]
    cmd: list[tuple[int, OrderCommand]] = field(default_factory=list)  # (stream seq, command)
    route: list[tuple[int, OrderCommand]] = field(default_factory=list)
    events: list[tuple[int, object]] = field(default_factory=list)
    records: list = field(default_factory=list)
    stream_total: int = 0
    unsettled: str = ""  # durables still holding messages when the run ended ("" = all drained)
    rebuild: str = ""
    rebuild_code: int = -1
    verify: str = ""
    verify_code: int = -1
    live_heartbeats: dict[str, bool] = field(default_factory=dict)
    stops: dict[str, tuple[int | None, float]] = field(default_factory=dict)  # name: (exit code, seconds)
    logs: dict[str, str] = field(default_factory=dict)


def account_script(rng: random.Random, account: str, places: int, mid: Decimal) -> list[OrderCommand]:
    """`places` orders of one account: market orders, and limit orders resting far from the
    market that are modified (half of them) and cancelled a few commands later."""
    below, further = (mid * Decimal("0.95")).quantize(Decimal("0.01")), (mid * Decimal("0.94")).quantize(Decimal("0.01"))
    above, higher = (mid * Decimal("1.05")).quantize(Decimal("0.01")), (mid * Decimal("1.06")).quantize(Decimal("0.01"))
    script: list[OrderCommand] = []
    due: list[tuple[int, int, int, OrderCommand]] = []  # (step, order number, modify 0 / cancel 1, command)
    for n in range(places):
        script += [item[-1] for item in sorted(due, key=lambda item: item[:3]) if item[0] <= n]
        due = [item for item in due if item[0] > n]
        client_order_id = f"{account}-{n}"
        side = rng.choice((Side.BUY, Side.SELL))
        common = {"client_order_id": client_order_id, "venue": "paper", "account": account, "symbol": SYMBOL,
                  "side": side, "quantity": Decimal("0.01"), "ttl_ms": TTL_MS, "ts_created": time.time_ns()}
        if rng.random() < 0.5:
            script.append(PlaceOrder(order_type=OrderType.MARKET, **common))
            continue
        script.append(PlaceOrder(order_type=OrderType.LIMIT, price=below if side is Side.BUY else above, **common))
        later = n + rng.randint(1, 4)
        if rng.random() < 0.5:
            due.append((later, n, 0, ModifyOrder(client_order_id=client_order_id, modify_id=f"m{n}", venue="paper",
                                              account=account, price=further if side is Side.BUY else higher,
                                              ttl_ms=TTL_MS)))
        due.append((later + rng.randint(0, 3), n, 1, CancelOrder(client_order_id=client_order_id, venue="paper",
                                                              account=account)))
    return script + [item[-1] for item in sorted(due, key=lambda item: item[:3])]


class SingleServer:
    """The run's bus: one nats-server, whose fault kind is NATS. A bus of several nodes
    (tests/fault/clusterbus.py) offers the same five methods with a kind per node."""

    replicas = 1  # of every stream and bucket

    def __init__(self, work: Path) -> None:
        self.server = NatsServer(store_dir=work / "nats", port=free_port())

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def kill(self, kind: str) -> None:
        self.server.kill()

    def restart(self, kind: str) -> None:
        self.server.start()

    def exited(self) -> list[tuple[str, int]]:
        """(kind, exit code) of every server that ended by itself."""
        process = self.server.process
        return [(NATS, process.returncode)] if process is not None and process.poll() is not None else []


class ChaosRun:
    def __init__(self, plan: ChaosPlan, work: Path, bus: SingleServer | None = None) -> None:
        self.plan = plan
        self.work = work
        (work / "tradebus.toml").write_text(plan.config())
        self.bus = bus or SingleServer(work)
        self.fleet = ProcessFleet(self.bus.url, work, env={"TRADEBUS_CONFIG": str(work / "tradebus.toml"),
                                                            "TRADEBUS_STREAMS__REPLICAS": str(self.bus.replicas)})
        self.sent: list[Sent] = []
        self.received: list[tuple[int, object]] = []
        self.faults: list[Fault] = []
        self.exits: list[Exit] = []
        self.beats: dict[str, tuple[int, ServiceState, int]] = {}  # service: (pid, state, wall-clock ns)
        self.killing: set[str] = set()  # names the fault task killed: not restarted by the watcher
        self.client: Client | None = None
        self.started = 0

    # --- the run ------------------------------------------------------------------------
    def run(self) -> Collected:
        self.bus.start()
        try:
            asyncio.run(create_durables_with_short_ack_wait(self.bus.url, replicas=self.bus.replicas))
            for name in SERVICES:
                self.fleet.start(name)
            collected = asyncio.run(self._run())
            collected.live_heartbeats = self._heartbeats_live()
        finally:
            stops = self._stop_all()
            self.bus.stop()
        collected.stops = stops
        collected.logs = {name: self.fleet.log(name) for name in SERVICES}
        return collected

    async def _run(self) -> Collected:
        self.started = time.time_ns()
        self.client = await Client.connect(self.bus.url, name="chaos-client", error_cb=_expected)
        watcher_nc = await nats.connect(self.bus.url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                        ping_interval=2, max_outstanding_pings=3, error_cb=_expected)
        try:
            for answers in (f"{subjects.PREFIX}.evt.order.paper.>", f"{subjects.PREFIX}.evt.reject.paper.>"):
                await self.client.nc.subscribe(answers, cb=self._on_event)
            await watcher_nc.subscribe(f"{subjects.PREFIX}.status.>", cb=self._on_status)
            mid = await self._mid(watcher_nc)
            scripts = {account: account_script(random.Random(f"{self.plan.seed}:{account}"), account,
                                               self.plan.orders // len(self.plan.accounts), mid)
                       for account in self.plan.accounts}
            watching = asyncio.create_task(self._restart_exited())
            flow = asyncio.gather(*(self._send_script(script) for script in scripts.values()))
            await self._faults()
            await flow
            watching.cancel()
            unsettled = ""
            try:
                await settle(watcher_nc, timeout=90)
            except AssertionError as exc:  # judged with the rest: (pending, unacknowledged) per durable
                unsettled = str(exc)
            collected = await self._collect(watcher_nc)
            collected.unsettled = unsettled
            return collected
        finally:
            await self.client.close()
            await watcher_nc.close()

    async def _mid(self, nc: nats.NATS) -> Decimal:
        quotes = await nc.subscribe(subjects.market_data("paper", MarketDataKind.QUOTE, SYMBOL))
        quote = decoder(Family.MARKET_DATA).decode((await quotes.next_msg(timeout=30)).data)
        await quotes.unsubscribe()
        return (quote.bid + quote.ask) / 2

    async def _on_event(self, msg: nats.aio.msg.Msg) -> None:
        self.received.append((time.time_ns(), _event.decode(msg.data)))

    async def _on_status(self, msg: nats.aio.msg.Msg) -> None:
        status = _status.decode(msg.data)
        self.beats[status.service] = (status.pid, status.state, time.time_ns())

    async def _send(self, command: OrderCommand) -> Sent:
        """Publish until acknowledged, always the same command (same dedupe id)."""
        assert self.client is not None
        sent = Sent(command, first_sent=time.time_ns())
        self.sent.append(sent)
        while True:
            assert time.time_ns() - sent.first_sent < RECOVERY_LIMIT * 1e9, f"not acknowledged in time: {command}"
            sent.attempts += 1
            try:
                ticket = await self.client.send(command)
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            sent.duplicate, sent.acked = ticket.duplicate, time.time_ns()
            return sent

    async def _send_script(self, script: list[OrderCommand]) -> None:
        for command in script:
            await self._send(command)
            await asyncio.sleep(self.plan.pace)

    # --- faults -------------------------------------------------------------------------
    async def _faults(self) -> None:
        rng = random.Random(self.plan.seed)
        kinds = list(FAULT_KINDS) * self.plan.kills_per_kind
        rng.shuffle(kinds)
        for number, kind in enumerate(kinds):
            await asyncio.sleep(rng.uniform(*self.plan.pause))
            fault = Fault(kind, killed=time.time_ns(), probe=f"probe-{number}")
            self.faults.append(fault)
            self._kill(kind)
            probe = asyncio.create_task(self._send(PlaceOrder(
                client_order_id=fault.probe, venue="paper", account=PROBE_ACCOUNT, symbol=SYMBOL, side=Side.BUY,
                order_type=OrderType.MARKET, quantity=Decimal("0.01"), ttl_ms=TTL_MS, ts_created=time.time_ns())))
            await asyncio.sleep(rng.uniform(*self.plan.down))
            await asyncio.to_thread(self._restart, kind)
            fault.restarted = time.time_ns()
            await self._wait_recovered(fault)
            if not fault.recovered:
                probe.cancel()
                return  # reported by the checks; more faults would only blur what went wrong
            fault.probe_attempts = (await probe).attempts

    def _kill(self, kind: str) -> None:
        self.killing.add(kind)
        if kind in SERVICES:
            self.fleet.kill(kind)
        else:
            self.bus.kill(kind)

    def _restart(self, kind: str) -> None:
        if kind in SERVICES:
            self.fleet.launch(kind)
        else:
            self.bus.restart(kind)
        self.killing.discard(kind)

    async def _restart_exited(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for name, process in self.fleet.processes.items():
                if name not in self.killing and process.poll() is not None:
                    self.exits.append(Exit(name, process.returncode, time.time_ns()))
                    self.fleet.launch(name)
            for kind, code in self.bus.exited():
                if kind not in self.killing:
                    self.exits.append(Exit(kind, code, time.time_ns()))
                    await asyncio.to_thread(self.bus.restart, kind)

    def _not_ready(self, since: int = 0) -> list[str]:
        """Services without a fresh READY heartbeat from their current process, sent after
        `since` (wall-clock ns: after a nats-server kill, a beat older than that says nothing)."""
        fresh = max(since, time.time_ns() - int(10 * HEARTBEAT * 1e9))
        missing = []
        for name in SERVICES:
            pid, state, at = self.beats.get(name.split(".", 1)[0], (0, ServiceState.STOPPING, 0))
            if pid != self.fleet.processes[name].pid or state is not ServiceState.READY or at < fresh:
                missing.append(name)
        return missing

    def _probe_filled_at_client(self, probe: str) -> bool:
        return any(isinstance(e, OrderFilled) and e.client_order_id == probe for _, e in self.received)

    async def _wait_recovered(self, fault: Fault) -> None:
        assert self.client is not None
        deadline = time.monotonic() + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            missing = self._not_ready(since=fault.restarted)
            if not missing and not fault.services_ready:
                fault.services_ready = time.time_ns()
            if not self._probe_filled_at_client(fault.probe):
                missing.append("the probe's fill at the client")
            elif not fault.probe_answered:
                fault.probe_answered = time.time_ns()
            if not missing:
                with contextlib.suppress(Exception):  # the order manager may not answer yet
                    record = await self.client.order("paper", PROBE_ACCOUNT, fault.probe)
                    if record is not None and record.status is OrderStatus.FILLED:
                        fault.recovered = time.time_ns()
                        return
                missing.append("the probe filled in the order manager")
            fault.missing = ", ".join(missing)
            await asyncio.sleep(0.1)

    # --- afterwards ---------------------------------------------------------------------
    async def _collect(self, nc: nats.NATS) -> Collected:
        js = nc.jetstream()
        collected = Collected(self.plan, self.started, self.sent, self.received, self.faults, self.exits)
        cmd_decoder = decoder(Family.COMMAND)
        collected.cmd = [(m.metadata.sequence.stream, cmd_decoder.decode(m.data))
                         for m in await read_stream(js, "CMD", f"{subjects.PREFIX}.cmd.>")]
        collected.route = [(m.metadata.sequence.stream, _route.decode(m.data))
                           for m in await read_stream(js, "ROUTE", f"{subjects.PREFIX}.route.>")]
        collected.events = [(m.metadata.sequence.stream, _event.decode(m.data))
                            for m in await read_stream(js, "EVENTS", subjects.ALL_ANSWERS)]
        assert self.client is not None
        collected.records = await self.client.orders(all=True)
        collected.stream_total = sum([(await js.stream_info(name)).state.messages for name in ("CMD", "ROUTE", "EVENTS")])
        collected.rebuild_code, collected.rebuild = await self._cli("oms", "rebuild")
        collected.verify_code, collected.verify = await self._cli("audit", "verify")
        return collected

    async def _cli(self, *argv: str) -> tuple[int, str]:
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "tradebus.cli.main", *argv],
                                       env=self.fleet.env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr

    def _heartbeats_live(self) -> dict[str, bool]:
        return {name: name not in self._not_ready() for name in SERVICES}

    def _stop_all(self) -> dict[str, tuple[int | None, float]]:
        """SIGTERM each service in turn: (exit code, seconds to exit); None when it had to be killed."""
        stops: dict[str, tuple[int | None, float]] = {}
        for name, process in self.fleet.processes.items():
            if process.poll() is not None:
                stops[name] = (process.returncode, 0.0)
                continue
            try:
                stops[name] = self.fleet.terminate(name, timeout=30)
            except AssertionError:
                stops[name] = (None, 30.0)
        return stops


async def _expected(error: Exception) -> None:
    """Connection errors while nats-server is down are the point of the run, not news."""


def final_event(events: list[object]) -> object | None:
    """The terminal event of an order's events (in stream order), if any."""
    return next((e for e in reversed(events) if isinstance(e, TERMINAL_EVENTS)), None)
