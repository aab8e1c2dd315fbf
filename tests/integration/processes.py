"""The fleet as real processes (`tradebus run ...`, started by launcher.py), for tests that
kill and restart them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import nats

from tradebus.shared import launcher
from tradebus.shared.launcher import ChildProcess, LaunchError, isolated_env, service_command
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.topology import (
    AUDIT_CONSUMERS,
    BUCKETS,
    OMS_EVENTS,
    OMS_ROUTES,
    StreamSettings,
    ensure_bucket,
    ensure_streams,
)

# JetStream hands what a killed (or cut off) order manager or audit logger had not
# acknowledged to its successor only after the durable's ack_wait (30 s), behind newer
# messages; risk and the connectors take their durable over at once instead (takeover.py).
# A service creates its durable only when it is missing and never changes one that exists,
# so a test fleet may create these durables first with a shorter ack_wait: the same late
# redelivery behind newer messages, without waiting out 30 s. Long enough that a restarted
# process is consuming new messages before the redelivery comes (a start takes 2-5 s here).
REDELIVERY_AFTER = 8.0


async def create_durables_with_short_ack_wait(nats_url: str, ack_wait: float = REDELIVERY_AFTER, *,
                                              replicas: int = 1) -> None:
    """Create the streams, the buckets (with `replicas`: 3 on a cluster) and the order
    manager's and audit logger's durables before any service starts, with `ack_wait`
    seconds instead of the product's 30."""
    nc = await nats.connect(nats_url.split(","))
    try:
        js = nc.jetstream(timeout=10)
        settings = StreamSettings(replicas=replicas)
        await ensure_streams(js, settings)
        for bucket in BUCKETS:
            await ensure_bucket(js, bucket, settings)
        for consumer in (OMS_ROUTES, OMS_EVENTS, *AUDIT_CONSUMERS):
            await js.add_consumer(consumer.stream.name, dataclasses.replace(consumer, ack_wait=ack_wait).config())
    finally:
        await nc.close()


class ProcessFleet:
    """Services as subprocesses on one bus, each with its own log file."""

    def __init__(self, nats_url: str, work: Path, *, env: dict[str, str] | None = None) -> None:
        self.nats_url = nats_url
        self.work = work
        self.env = isolated_env(TRADEBUS_NATS_URL=nats_url, TRADEBUS_DATA_DIR=str(work / "data"),
                                TRADEBUS_LOG_JSON="false", TRADEBUS_HEARTBEAT_INTERVAL="0.2", PYTHONUNBUFFERED="1",
                                **(env or {}))
        self.children: dict[str, ChildProcess] = {}

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The latest process of each service started."""
        return {name: child.process for name, child in self.children.items() if child.process is not None}

    def start(self, name: str) -> None:
        """Start `name` ("risk", "oms", "audit" or "connector.<venue>") and wait until it is ready."""
        self.launch(name)
        self.wait_ready(name)

    def launch(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` (again) without waiting for anything."""
        child = self.children.setdefault(name, ChildProcess(service_command(name), self.work / f"{name}.log"))
        return child.start(self.env)

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        """Wait for a READY heartbeat from this very process (matched by pid)."""

        async def ready() -> None:
            nc = await nats.connect(self.nats_url.split(","))
            try:
                await launcher.wait_ready(nc, name.split(".", 1)[0], self.children[name], timeout)
            except LaunchError as exc:
                raise AssertionError(f"{exc}:\n{self.log(name)}") from None
            finally:
                await nc.close()

        asyncio.run(ready())

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no goodbye, as in a crash."""
        self.children[name].kill()

    def terminate(self, name: str, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM, as a supervisor stops a service: (exit code, seconds it took to exit)."""
        child = self.children[name]
        started = time.monotonic()
        if not child.stop(timeout):
            raise AssertionError(f"{name} ignored SIGTERM for {timeout}s:\n{self.log(name)}")
        code = child.exited()
        assert code is not None
        return code, time.monotonic() - started

    def freeze(self, name: str) -> None:
        """SIGSTOP: the process holds whatever the bus delivers to it, answering nothing."""
        self.children[name].signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.children[name].signal(signal.SIGCONT)

    def alive(self) -> dict[str, bool]:
        return {name: child.running() for name, child in self.children.items()}

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM to every service: their exit codes (-9 for one still running 20 s later)."""
        launcher.stop_all(list(self.children.values()), 20)
        return {name: child.exited() for name, child in self.children.items()}


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
