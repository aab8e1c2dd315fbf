"""`tradebus up`'s own nats-server, supervised like its services.

A server that exits is started again at once, on the same port and the same JetStream store
(and with the data-dir lock handed on, datadirlock.py). A server whose process lives but does
not answer (frozen, SIGSTOPped, wedged) is found by a probe: a new TCP connection must get
the server's INFO line, which nats-server sends first on every connection, within
PROBE_TIMEOUT. After UNANSWERED_PROBES failures in a row it is SIGKILLed (a frozen process
handles no other signal) and started again. The services need nothing from `up` for this:
their connections reconnect by themselves (bus.py), and their durable consumers live in the
store the new server reopens.
"""

from __future__ import annotations

import asyncio
import os
import time

from tradebus.shared.natsserver import NatsServer, NatsServerError

from .datadirlock import DataDirLock
from .liveness import Row
from .supervisor import Notes, describe_exit, restart_delay

PROBE_TIMEOUT = 2.0
UNANSWERED_PROBES = 3
NAME = "nats-server"


async def answers(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a nats-server on host:port greets a new connection within `timeout`."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            return (await reader.readline()).startswith(b"INFO ")
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()


class BusGuard:
    """Watches the embedded server from `up`'s loop, one `check` a round."""

    def __init__(self, server: NatsServer, lock: DataDirLock, notes: Notes, name: str = NAME) -> None:
        self.server = server
        self.name = name  # the node's name in a cluster (`up --cluster`)
        self.lock = lock
        self.notes = notes
        self.restarts = 0
        self.failures = 0  # restarts in a row that did not get a listening server
        self.unanswered = 0  # probes in a row
        self.last_exit = ""
        self.retry_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.server.process.pid if self.server.process is not None else None

    def describe_holder(self) -> None:
        self.lock.describe(f"tradebus up, pid {os.getpid()}; its {self.name}, pid {self.pid}, at {self.server.url}")

    async def check(self) -> None:
        assert self.server.process is not None
        code = self.server.process.poll()
        if code is not None:
            if self.retry_at is None:
                self.last_exit = describe_exit(code)
                self.notes.add(f"{self.name} (pid {self.pid}) exited ({self.last_exit}); starting it again on "
                               f"{self.server.url} with its store {self.server.store_dir}")
                self.retry_at = time.monotonic()
            if time.monotonic() >= self.retry_at:
                await self._restart()
            return
        if await answers(self.server.host, self.server.port):
            self.unanswered = 0
            return
        self.unanswered += 1
        if self.unanswered >= UNANSWERED_PROBES:
            self.notes.add(f"{self.name} (pid {self.pid}) is hung: its process lives but it did not answer "
                           f"{self.unanswered} probes of {PROBE_TIMEOUT:g}s; killing it (SIGKILL) to start it again")
            await asyncio.to_thread(self.server.kill)
            self.last_exit = "hung; killed"
            self.retry_at = time.monotonic()
            await self._restart()

    async def _restart(self) -> None:
        """Launch on this thread (the main one: parentdeath.py), wait for it off the loop. The
        round waits too: nothing else needs `up` while its bus is down."""
        self.unanswered = 0
        try:
            self.server.launch()
            await asyncio.to_thread(self.server.wait_listening)
        except NatsServerError as exc:
            self.failures += 1
            self.retry_at = time.monotonic() + restart_delay(self.failures)
            self.notes.add(f"{self.name} did not start again: {exc}; next try in {restart_delay(self.failures):.0f}s")
            return
        self.restarts += 1
        self.failures, self.retry_at = 0, None
        self.describe_holder()
        self.notes.add(f"{self.name} started again (pid {self.pid}) on {self.server.url}")

    def row(self) -> Row:
        process = self.server.process
        detail = f"{self.server.url}, store {self.server.store_dir}"
        if process is None or process.poll() is not None:
            state = "restarting"
        elif self.unanswered:
            state, detail = "silent", f"{self.unanswered} probe(s) unanswered; {detail}"  # hung at UNANSWERED_PROBES
        else:
            state = "running"  # it answers probes; a nats-server states no readiness of its own
        if self.last_exit:
            detail = f"{detail}; last exit: {self.last_exit}"
        return Row(key=self.name, state=state, pid=self.pid if state != "restarting" else None,
                   restarts=self.restarts, detail=detail)
