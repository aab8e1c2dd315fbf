"""The fleet as real processes (`tradebus run ...`), for tests that kill and restart them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import nats

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import ServiceState
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.topology import AUDIT_CONSUMERS, OMS_EVENTS, OMS_ROUTES, StreamSettings, ensure_streams

_status = decoder(Family.STATUS)

# JetStream hands what a killed (or cut off) order manager or audit logger had not
# acknowledged to its successor only after the durable's ack_wait (30 s), behind newer
# messages; risk and the connectors take their durable over at once instead (takeover.py).
# A service creates its durable only when it is missing and never changes one that exists,
# so a test fleet may create these durables first with a shorter ack_wait: the same late
# redelivery behind newer messages, without waiting out 30 s. Long enough that a restarted
# process is consuming new messages before the redelivery comes (a start takes 2-5 s here).
REDELIVERY_AFTER = 8.0


async def create_durables_with_short_ack_wait(nats_url: str, ack_wait: float = REDELIVERY_AFTER) -> None:
    """Create the streams and the order manager's and audit logger's durables before any
    service starts, with `ack_wait` seconds instead of the product's 30."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, StreamSettings())
        for consumer in (OMS_ROUTES, OMS_EVENTS, *AUDIT_CONSUMERS):
            await js.add_consumer(consumer.stream.name, dataclasses.replace(consumer, ack_wait=ack_wait).config())
    finally:
        await nc.close()


class ProcessFleet:
    """Services as subprocesses on one bus, each with its own log file."""

    def __init__(self, nats_url: str, work: Path, *, env: dict[str, str] | None = None) -> None:
        self.nats_url = nats_url
        self.work = work
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
        self.env.update(TRADEBUS_NATS_URL=nats_url, TRADEBUS_DATA_DIR=str(work / "data"), TRADEBUS_LOG_JSON="false",
                        TRADEBUS_HEARTBEAT_INTERVAL="0.2", PYTHONUNBUFFERED="1", **(env or {}))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        """Start `name` ("risk", "oms", "audit" or "connector.<venue>") and wait until it is ready."""
        self.launch(name)
        self.wait_ready(name)

    def launch(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` without waiting for anything."""
        argv = [sys.executable, "-m", "tradebus.cli.main", "run"]
        argv += ["connector", "--venue", name.split(".", 1)[1]] if name.startswith("connector.") else [name]
        with open(self.work / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self.processes[name]

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        """Wait for a READY heartbeat from this very process (matched by pid)."""
        service = name.split(".", 1)[0]
        process = self.processes[name]

        async def ready() -> None:
            nc = await nats.connect(self.nats_url)
            heartbeats = await nc.subscribe(f"{subjects.PREFIX}.status.{service}.*")
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    assert process.poll() is None, f"{name} exited:\n{self.log(name)}"
                    try:
                        status = _status.decode((await heartbeats.next_msg(timeout=0.5)).data)
                    except nats.errors.TimeoutError:
                        continue
                    if status.pid == process.pid and status.state is ServiceState.READY:
                        return
                raise AssertionError(f"{name} not ready in {timeout}s:\n{self.log(name)}")
            finally:
                await nc.close()

        asyncio.run(ready())

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no goodbye, as in a crash."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def terminate(self, name: str, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM, as a supervisor stops a service: (exit code, seconds it took to exit)."""
        process = self.processes[name]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{name} ignored SIGTERM for {timeout}s:\n{self.log(name)}") from None
        return code, time.monotonic() - started

    def freeze(self, name: str) -> None:
        """SIGSTOP: the process holds whatever the bus delivers to it, answering nothing."""
        self.processes[name].send_signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGCONT)

    def alive(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop_all(self) -> dict[str, int]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return {name: process.wait(20) for name, process in self.processes.items()}


@contextlib.contextmanager
def process_fleet(work: Path, services: Sequence[str], *, env: dict[str, str] | None = None) -> Iterator[ProcessFleet]:
    """A nats-server of its own and `services` as processes, all ready; when the block ends,
    SIGTERM must stop every service with exit code 0."""
    server = NatsServer(store_dir=work / "nats", port=free_port())
    server.start()
    fleet = ProcessFleet(server.url, work, env=env)
    try:
        for name in services:
            fleet.start(name)
        yield fleet
    finally:
        codes = fleet.stop_all()
        server.stop()
    assert codes == dict.fromkeys(services, 0), {name: fleet.log(name) for name, code in codes.items() if code}


# Limits that refuse nothing a test sends by the thousand: no throttle, no open-order cap.
UNTHROTTLED = """
[risk.limits.rate]
per_account = 100000
per_venue = 100000
burst = 100000
"""
UNLIMITED = UNTHROTTLED + """
[risk.limits.defaults]
allowed_symbols = ["*"]
max_open_orders = 100000
"""


@contextlib.asynccontextmanager
async def configured_fleet(nats_url: str, work: Path, config: str, *names: str) -> AsyncIterator[ProcessFleet]:
    """A fleet configured by `config` (TOML), `names` started in order; every process still
    running at the end must stop cleanly on SIGTERM."""
    (work / "tradebus.toml").write_text(config)
    fleet = ProcessFleet(nats_url, work, env={"TRADEBUS_CONFIG": str(work / "tradebus.toml")})
    try:
        for name in names:
            await asyncio.to_thread(fleet.start, name)
        yield fleet
    finally:
        codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), {name: fleet.log(name) for name in codes}
